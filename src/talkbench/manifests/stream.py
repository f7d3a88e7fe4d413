"""Manifests too large for one in-memory table: written and read in row groups, still one Parquet file.

``write_table_chunks`` takes an iterable of chunks (lists of row dicts or Arrow tables) that are already in the
table's sort order, validates each chunk against the schema exactly as ``io.to_table`` does, and writes each as one
row group of a single Parquet file (zstd, no statistics, no timestamps — the same settings as ``io.write_table``).
The file is written to a temporary name in the same folder and moved into place (``os.replace``), so readers see
the old or the new file; a rerun with the same chunks gives the same bytes, and an unchanged file is left untouched.
Memory is bounded by one chunk. The result is one logical table: pandas, ``pyarrow.dataset`` and DuckDB read it
as any Parquet file, and ``io.read_table`` reads it whole.

``iter_table_chunks`` reads it back one row group (or ``batch_size`` rows) at a time after checking the metadata
and schema, so a consumer never holds more than one chunk.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ManifestError, ManifestWriteError
from .io import META_TABLE, META_VERSION, _sort_key, to_table
from .schemas import SCHEMA_VERSION, SORT_KEYS, table_schema


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_table_chunks(chunks: Iterable[Iterable[Mapping] | pa.Table], path: str | os.PathLike, name: str) -> bool:
    """Write sorted chunks of rows as row groups of one Parquet manifest, atomically; returns whether it wrote.

    Each chunk is sorted by the table's key columns (as ``write_table`` would), and chunks must follow each other in
    key order (the last key of a chunk ≤ the first key of the next), else ``ManifestError`` — before the file is
    replaced. An empty iterable writes an empty table.
    """
    path = Path(path)
    schema = table_schema(name).with_metadata({META_TABLE: name.encode(), META_VERSION: SCHEMA_VERSION.encode()})
    keys = SORT_KEYS[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        previous = None
        writer = pq.ParquetWriter(tmp, schema, compression="zstd", write_statistics=False)
        try:
            for i, chunk in enumerate(chunks):
                table = to_table(chunk, name)
                if table.num_rows == 0:
                    continue
                first = tuple(_sort_key(table.column(k)[0].as_py()) for k in keys)
                if previous is not None and first < previous:
                    raise ManifestError(f"{name}: chunk {i} starts before the end of chunk {i - 1} in key order "
                                        f"{keys}; chunks must arrive sorted")
                previous = tuple(_sort_key(table.column(k)[table.num_rows - 1].as_py()) for k in keys)
                writer.write_table(table, row_group_size=table.num_rows)
            if previous is None:
                writer.write_table(to_table([], name))
        finally:
            writer.close()
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if path.exists() and path.stat().st_size == tmp_path.stat().st_size and _file_digest(path) == _file_digest(tmp_path):
            tmp_path.unlink()
            return False
        os.replace(tmp, path)
        return True
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise ManifestWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def open_table(path: str | os.PathLike, name: str) -> pq.ParquetFile:
    """Open a manifest lazily after checking its name, version and column types (no rows are read)."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: no such manifest file")
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(f"{path}: not a readable Parquet file (truncated or corrupt?): {exc}") from exc
    arrow = parquet.schema_arrow
    meta = arrow.metadata or {}
    found = meta.get(META_TABLE, b"").decode() or None
    if found != name:
        raise ManifestError(f"{path}: expected a {name!r} manifest, found {found or 'a Parquet file without talkbench metadata'}")
    version = meta.get(META_VERSION, b"").decode()
    if version != SCHEMA_VERSION:
        raise ManifestError(f"{path}: {name} schema version {version or '?'} is not supported (expected {SCHEMA_VERSION})")
    for field in table_schema(name):
        if field.name not in arrow.names:
            raise ManifestError(f"{path}: column {field.name!r} is missing")
        if arrow.field(field.name).type != field.type:
            raise ManifestError(f"{path}: column {field.name!r} has type {arrow.field(field.name).type}, "
                                f"expected {field.type}")
    return parquet


def iter_table_chunks(path: str | os.PathLike, name: str, *, batch_size: int | None = None,
                      columns: list[str] | None = None) -> Iterator[pa.Table]:
    """The manifest's rows as Arrow tables, one row group at a time (or ``batch_size`` rows at a time)."""
    parquet = open_table(path, name)
    if batch_size is None:
        for i in range(parquet.num_row_groups):
            yield parquet.read_row_group(i, columns=columns)
    else:
        for batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
            yield pa.Table.from_batches([batch])
