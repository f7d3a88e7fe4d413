"""Read, validate and write manifest tables. Writes are atomic; reads refuse wrong or truncated files."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ManifestError, ManifestWriteError
from .schemas import SCHEMA_VERSION, SORT_KEYS, table_schema

META_TABLE = b"talkbench.table"
META_VERSION = b"talkbench.schema_version"


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc), else set and restored under a lock."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then os.replace: readers see the old or the new file.

    mkstemp creates the file 0600; it gets the mode ``open()`` would give (0666 minus the umask), so a table copied
    to a web folder stays readable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _sort_key(value):
    # None sorts first; mixed types never occur within one column of a valid table.
    return (value is not None, value if value is not None else 0)


def rows_key(keys: Sequence[str]):
    """The sort key of a row dict for the columns ``keys``: the manifests' order (None first). One home for it: the
    manifests, their external sort and the executor's part files sort with it."""
    keys = tuple(keys)
    return lambda row: tuple(_sort_key(row.get(k)) for k in keys)


def to_table(rows: Iterable[Mapping] | pa.Table, name: str) -> pa.Table:
    """Build a table with the exact schema of ``name``, rows sorted by its key columns; unknown columns are refused."""
    schema = table_schema(name)
    if isinstance(rows, pa.Table):
        rows = rows.to_pylist()
    rows = list(rows)
    names = set(schema.names)
    for i, row in enumerate(rows):
        extra = set(row) - names
        if extra:
            raise ManifestError(f"{name}: row {i} has columns not in the schema: {sorted(extra)}")
    keys = SORT_KEYS[name]
    rows.sort(key=rows_key(keys))
    columns = {}
    for field in schema:
        values = [row.get(field.name) for row in rows]
        if not field.nullable and any(v is None for v in values):
            raise ManifestError(f"{name}: column {field.name!r} must not be null")
        try:
            columns[field.name] = pa.array(values, type=field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
            raise ManifestError(f"{name}: column {field.name!r} does not fit {field.type}: {exc}") from exc
    table = pa.table(columns, schema=schema)
    return table.replace_schema_metadata({META_TABLE: name.encode(), META_VERSION: SCHEMA_VERSION.encode()})


def table_bytes(rows: Iterable[Mapping] | pa.Table, name: str) -> bytes:
    """The exact Parquet bytes ``write_table`` writes for these rows (sorted, validated, no timestamps)."""
    sink = pa.BufferOutputStream()
    pq.write_table(to_table(rows, name), sink, compression="zstd", write_statistics=False)
    return sink.getvalue().to_pybytes()


def write_table(rows: Iterable[Mapping] | pa.Table, path: str | os.PathLike, name: str) -> bool:
    """Validate rows against the schema and write them atomically as Parquet.

    The file is left untouched (mtime included) when it already holds exactly these bytes, so a rerun is a no-op.
    Returns whether it wrote. A failing write raises ``ManifestWriteError`` naming the file.
    """
    path = Path(path)
    data = table_bytes(rows, name)
    if path.exists() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise ManifestWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return True


def read_table(path: str | os.PathLike, name: str, *, allow_newer_columns: bool = True) -> pa.Table:
    """Read a manifest and check it is the named table at this schema version with the expected columns."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: no such manifest file")
    try:
        parquet = pq.ParquetFile(path)
        table = parquet.read()
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(f"{path}: not a readable Parquet file (truncated or corrupt?): {exc}") from exc
    meta = table.schema.metadata or {}
    found = meta.get(META_TABLE, b"").decode() or None
    if found != name:
        raise ManifestError(f"{path}: expected a {name!r} manifest, found {found or 'a Parquet file without talkbench metadata'}")
    version = meta.get(META_VERSION, b"").decode()
    if version != SCHEMA_VERSION:
        raise ManifestError(f"{path}: {name} schema version {version or '?'} is not supported (expected {SCHEMA_VERSION})")
    schema = table_schema(name)
    for field in schema:
        if field.name not in table.schema.names:
            raise ManifestError(f"{path}: column {field.name!r} is missing")
        got = table.schema.field(field.name).type
        if got != field.type:
            raise ManifestError(f"{path}: column {field.name!r} has type {got}, expected {field.type}")
    if not allow_newer_columns and len(table.schema) != len(schema):
        extra = sorted(set(table.schema.names) - set(schema.names))
        raise ManifestError(f"{path}: unexpected columns {extra}")
    return table.select(schema.names)


def read_rows(path: str | os.PathLike, name: str) -> list[dict]:
    return read_table(path, name).to_pylist()
