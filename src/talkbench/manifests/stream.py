"""Manifests too large for one in-memory table: written and read in row groups, still one Parquet file.

``write_table_chunks`` takes an iterable of chunks (lists of row dicts or Arrow tables) that are already in the
table's sort order, validates each chunk against the schema exactly as ``io.to_table`` does, and writes each as one
row group of a single Parquet file (zstd, no statistics, no timestamps — the same settings as ``io.write_table``).
The file is written to a temporary name in the same folder and moved into place (``os.replace``), so readers see
the old or the new file; a rerun with the same chunks gives the same bytes, and an unchanged file is left untouched.
Memory is bounded by one chunk. The result is one logical table: pandas, ``pyarrow.dataset`` and DuckDB read it
as any Parquet file, and ``io.read_table`` reads it whole.

``write_table_sorted`` takes rows in any order (an iterator: a stage's output as it is produced): it sorts runs of
``chunk_rows`` rows, spills each run to a temporary Parquet file beside the target, then merges the runs (a stable
k-way merge, reading each run in batches) into ``write_table_chunks``. The file has the bytes ``write_table_chunks``
writes for the fully sorted rows cut into ``chunk_rows`` chunks, and memory is about two chunks, not n rows.

``iter_table_chunks`` reads it back one row group (or ``batch_size`` rows) at a time after checking the metadata
and schema, so a consumer never holds more than one chunk.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import tempfile
from pathlib import Path
from itertools import islice
from typing import Iterable, Iterator, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ManifestError, ManifestWriteError
from .io import META_TABLE, META_VERSION, _sort_key, rows_key, to_table
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


def _key_fn(name: str):
    return rows_key(SORT_KEYS[name])


def _read_run(path: Path, batch_rows: int) -> Iterator[dict]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        yield from batch.to_pylist()


def _rechunk(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    while True:
        chunk = list(islice(rows, size))
        if not chunk:
            return
        yield chunk


def write_table_sorted(rows: Iterable[Mapping], path: str | os.PathLike, name: str, *,
                       chunk_rows: int = 100_000) -> bool:
    """Rows in any order → one manifest sorted by the table's keys, in row groups of ``chunk_rows``; returns whether
    it wrote. Memory is bounded by about two chunks (one run being sorted, or one batch per run plus the chunk being
    written): sorted runs are spilled to temporary Parquet files beside ``path`` and merged stably, so rows with equal
    keys keep their input order, as ``sorted`` would. Rows are validated when their run is spilled, so a bad row
    stops the write before ``path`` is touched.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be ≥ 1, found {chunk_rows}")
    path = Path(path)
    key = _key_fn(name)
    it = iter(rows)
    first = list(islice(it, chunk_rows))
    nxt = list(islice(it, 1))
    if not nxt:  # one chunk: no spill
        return write_table_chunks([sorted(first, key=key)], path, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=f".{path.name}.runs.", dir=path.parent) as folder:
            runs: list[Path] = []
            buffer, pending = first, nxt
            while buffer:
                run = Path(folder) / f"{len(runs):06d}.parquet"
                pq.write_table(to_table(buffer, name), run, compression="zstd", write_statistics=False)
                runs.append(run)
                buffer = pending + list(islice(it, chunk_rows - len(pending)))
                pending = []
            batch_rows = max(1, chunk_rows // len(runs))
            merged = heapq.merge(*(_read_run(run, batch_rows) for run in runs), key=key)
            return write_table_chunks(_rechunk(merged, chunk_rows), path, name)
    except OSError as exc:
        raise ManifestWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc


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
