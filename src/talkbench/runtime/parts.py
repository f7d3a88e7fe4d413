"""Rank outputs as Parquet part files, and the lazy merge over them that ``Executor.merge`` returns.

A rank writes ``output/{rank:05d}.parquet`` (its rows) and ``output/{rank:05d}.rejections.parquet`` (its dropped
rows with their reasons). The row part holds:

* ``_row``: each row as JSON (data that cannot run code; numpy arrays are tagged with their dtype and shape, as
  before), one string per row, in row groups of ``ROW_GROUP_ROWS`` rows;
* the stage's key columns and any other columns it names (``columns``), as real Parquet columns when the values
  round-trip exactly through Arrow (checked: the JSON of the values read back equals the JSON of the values
  written, so ``1`` stays an int and ``1.0`` a float; 1-d numeric numpy arrays keep their dtype). Such a value is
  replaced in ``_row`` by a placeholder, so a row comes back with its keys in the same order. A column whose values
  do not round-trip stays inside ``_row`` for that part, and ``read_columns`` decodes it from there.

Rows of a part are sorted (stably) by the stage's key, so the stage's output is a k-way merge of the parts:
:class:`MergedRows` iterates it lazily, holding about one row group per part, and gives the rows in the order a
stable sort of the rank-order concatenation gives (ties keep rank order, then row order). Without a key the rows
come in rank order, a part at a time. The driver never holds the whole output unless its caller makes a list.
"""

from __future__ import annotations

import heapq
import json
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import StepOutputError
from ..manifests.io import atomic_write_bytes, rows_key

PART_FORMAT = "talkbench-step-part/1"
ROW_GROUP_ROWS = 1000  # rows per row group of a part: the merge holds about one group per part
_META_FORMAT = b"talkbench.part"
_META_COLUMNS = b"talkbench.part.columns"
_META_KEY = b"talkbench.part.key"
_ROW = "_row"
_COLUMN_TAG = "__column__"
_ARRAY_TAG = "__ndarray__"
REJECTION_COLUMNS = ("stage", "item_id", "source_id", "reason", "value", "threshold", "detail")
_REJECTION_SCHEMA = pa.schema([(k, pa.float64() if k in ("value", "threshold") else pa.string())
                               for k in REJECTION_COLUMNS]).with_metadata({_META_FORMAT: PART_FORMAT.encode()})


# ----------------------------------------------------------------------------------------------------------------
# JSON, never pickle: a run folder can come from anywhere, and loading a pickle runs code.
# ----------------------------------------------------------------------------------------------------------------

def plain(value):
    """A JSON-ready copy of a row value: numpy scalars become Python numbers, arrays a tagged list."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"step output keys must be strings, got {bad[0]!r}")
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {_ARRAY_TAG: {"dtype": value.dtype.str, "shape": list(value.shape), "data": value.ravel().tolist()}}
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"step output values must be JSON data or numeric arrays, got {type(value).__name__}")


def from_json(obj: dict):
    if _ARRAY_TAG not in obj:
        return obj
    spec = obj[_ARRAY_TAG]
    dtype = np.dtype(spec["dtype"])
    if dtype.kind not in "biuf":
        raise ValueError(f"array dtype {spec['dtype']!r} is not numeric")
    return np.asarray(spec["data"], dtype=dtype).reshape(spec["shape"])


sort_key = rows_key  # the key of a row for its key columns: the manifests' order (None first)


# ----------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------

def _typed_column(values: list) -> tuple[pa.Array, dict] | None:
    """``values`` (None where a row has no value) as one Arrow array that reads back exactly, or None."""
    present = [v for v in values if v is not None]
    if not present:  # absent or None in every row: a column of nulls (the rows keep their own None or absence)
        return pa.nulls(len(values)), {"kind": "arrow"}
    arrays = [v for v in present if isinstance(v, np.ndarray)]
    if arrays:
        dtype = arrays[0].dtype
        if (len(arrays) != len(present) or dtype.kind not in "biuf"
                or any(a.ndim != 1 or a.dtype != dtype for a in arrays)):
            return None
        try:
            array = pa.array([None if v is None else v.tolist() for v in values],
                             type=pa.list_(pa.from_numpy_dtype(dtype)))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return None
        back = array.to_pylist()
        if any((a is None) != (v is None) or (v is not None and not np.array_equal(np.asarray(a, dtype=dtype), v))
               for a, v in zip(back, values)):
            return None
        return array, {"kind": "ndarray", "dtype": dtype.str}
    try:
        array = pa.array(values)
        if json.dumps(array.to_pylist()) != json.dumps(values):
            return None
    except (TypeError, ValueError, pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None  # numpy scalars, nested arrays, mixed types: they stay in the row's JSON
    if pa.types.is_null(array.type) or pa.types.is_struct(array.type):
        return None
    return array, {"kind": "arrow"}


def _atomic_parquet(table: pa.Table, path: Path, row_group_rows: int) -> None:
    sink = pa.BufferOutputStream()  # a rank's output is in memory already; the manifests' atomic write places it
    pq.write_table(table, sink, row_group_size=max(1, row_group_rows), compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def write_part(path: str | os.PathLike, rows: list[dict], key: Sequence[str] | None = None,
               columns: Sequence[str] = (), row_group_rows: int = ROW_GROUP_ROWS) -> None:
    """One rank's rows → a part file sorted (stably) by ``key``, written atomically."""
    key = tuple(key or ())
    names = list(dict.fromkeys([*key, *columns]))
    if _ROW in names:
        raise ValueError(f"{_ROW!r} is reserved in step outputs")
    if key:
        try:
            rows = sorted(rows, key=sort_key(key))
        except (KeyError, TypeError) as exc:
            raise TypeError(f"step output rows cannot be sorted by {list(key)}: {exc}") from exc
    typed: dict[str, tuple[pa.Array, dict]] = {}
    for name in names:
        column = _typed_column([row.get(name) for row in rows])
        if column is not None:
            typed[name] = column
    payloads = []
    for row in rows:
        out = {k: ({_COLUMN_TAG: k} if k in typed and v is not None else v) for k, v in row.items()}
        payloads.append(json.dumps(plain(out), separators=(",", ":")))
    fields = {_ROW: pa.array(payloads, type=pa.string())}
    fields.update({name: array for name, (array, _) in typed.items()})
    meta = {_META_FORMAT: PART_FORMAT.encode(), _META_KEY: json.dumps(list(key)).encode(),
            _META_COLUMNS: json.dumps({name: spec for name, (_, spec) in typed.items()}).encode()}
    table = pa.table(fields).replace_schema_metadata(meta)
    _atomic_parquet(table, Path(path), row_group_rows)


def write_rejections(path: str | os.PathLike, rejections: list[dict]) -> None:
    bad = [r for r in rejections if not isinstance(r, dict) or set(r) != set(REJECTION_COLUMNS)]
    if bad:
        raise TypeError(f"rejections must be objects with the keys {sorted(REJECTION_COLUMNS)}, got {bad[0]!r}")
    table = pa.Table.from_pylist(rejections, schema=_REJECTION_SCHEMA)
    _atomic_parquet(table, Path(path), max(1, len(rejections)))


# ----------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------

def _bad(path: Path, why: str) -> StepOutputError:
    return StepOutputError(f"{path}: not a talkbench step output ({why}); delete {path.parent.parent} and rerun")


def _open(path: Path) -> pq.ParquetFile:
    try:
        parquet = pq.ParquetFile(path)
    except FileNotFoundError as exc:
        raise _bad(path, "missing") from exc
    except (pa.ArrowInvalid, OSError) as exc:
        raise _bad(path, f"unreadable Parquet: {str(exc)[:80]}") from exc
    meta = parquet.schema_arrow.metadata or {}
    if meta.get(_META_FORMAT, b"").decode(errors="replace") != PART_FORMAT:
        raise _bad(path, f"expected format {PART_FORMAT!r}")
    return parquet


def _part_info(path: Path, parquet: pq.ParquetFile) -> tuple[list[str], dict]:
    meta = parquet.schema_arrow.metadata or {}
    try:
        key = json.loads(meta.get(_META_KEY, b"[]"))
        columns = json.loads(meta.get(_META_COLUMNS, b"{}"))
    except ValueError as exc:
        raise _bad(path, "bad metadata") from exc
    if (_ROW not in parquet.schema_arrow.names or not isinstance(columns, dict)
            or any(name not in parquet.schema_arrow.names for name in columns)):
        raise _bad(path, "columns missing")
    return key, columns


def _decode(path: Path, table: pa.Table, columns: dict, drop: Sequence[str] = ()) -> list[dict]:
    try:
        rows = [json.loads(p, object_hook=from_json) for p in table.column(_ROW).to_pylist()]
    except (TypeError, ValueError, KeyError) as exc:
        raise _bad(path, f"unreadable JSON: {str(exc)[:80]}") from exc
    if not all(isinstance(r, dict) for r in rows):
        raise _bad(path, "rows must be objects")
    for name in drop:
        for row in rows:
            row.pop(name, None)
    for name, spec in columns.items():
        if name in drop:
            continue
        values = table.column(name).to_pylist()
        dtype = np.dtype(spec["dtype"]) if spec.get("kind") == "ndarray" else None
        if dtype is not None and dtype.kind not in "biuf":
            raise _bad(path, f"array dtype {spec['dtype']!r} is not numeric")
        for row, value in zip(rows, values):
            slot = row.get(name)
            if isinstance(slot, dict) and slot.get(_COLUMN_TAG) == name and len(slot) == 1:
                row[name] = value if dtype is None else np.asarray(value, dtype=dtype)
    return rows


def read_part(path: str | os.PathLike) -> list[dict]:
    """All the rows of one part (tests and small stages); ``MergedRows`` reads them a row group at a time."""
    path = Path(path)
    parquet = _open(path)
    _, columns = _part_info(path, parquet)
    return [row for i in range(parquet.num_row_groups) for row in _decode(path, parquet.read_row_group(i), columns)]


def read_rejections(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    parquet = _open(path)
    if parquet.schema_arrow.remove_metadata() != _REJECTION_SCHEMA.remove_metadata():
        raise _bad(path, f"rejections must be objects with the keys {sorted(REJECTION_COLUMNS)}")
    return parquet.read().to_pylist()


class MergedRows:
    """A stage's output rows, read lazily from its part files: the k-way merge by ``key`` (rank order without one).

    Iterable more than once (each pass reads the parts again), ``len`` from the Parquet footers. ``max_held`` is the
    largest number of rows decoded and not yet handed out during a pass: about parts × ``ROW_GROUP_ROWS``, not n.
    Comparing with a list (``==``) reads every row (tests).
    """

    def __init__(self, paths: Iterable[str | os.PathLike], key: Sequence[str] | None = None,
                 drop: Sequence[str] = ()):
        self.paths = [Path(p) for p in paths]
        self.key = tuple(key or ())
        self.drop = tuple(drop)
        self.max_held = 0
        self._len: int | None = None
        self._decoded = 0

    def __len__(self) -> int:
        if self._len is None:
            self._len = sum(_open(p).metadata.num_rows for p in self.paths)
        return self._len

    def __repr__(self) -> str:
        return f"MergedRows({len(self.paths)} parts, key={list(self.key)}, drop={list(self.drop)})"

    def without(self, *names: str) -> "MergedRows":
        """The same rows without the fields ``names`` (their Parquet columns are not even read)."""
        return MergedRows(self.paths, self.key, (*self.drop, *names))

    def _layout(self, path: Path) -> tuple[list[str], int, list[str]]:
        """A part's named columns, its row-group count and the columns to read (the JSON plus those not dropped)."""
        parquet = _open(path)
        _, columns = _part_info(path, parquet)
        n_groups = parquet.num_row_groups
        parquet.close()
        return columns, n_groups, [_ROW, *(name for name in columns if name not in self.drop)]

    def _groups(self, path: Path) -> Iterator[list[dict]]:
        columns, n_groups, wanted = self._layout(path)
        for i in range(n_groups):
            # reopened per group: a merge over 1,024 parts does not hold 1,024 open files
            with pq.ParquetFile(path) as handle:
                rows = _decode(path, handle.read_row_group(i, columns=wanted), columns, self.drop)
            self._decoded += len(rows)
            yield rows

    def _rows(self, path: Path) -> Iterator[dict]:
        for group in self._groups(path):
            yield from group

    def __iter__(self) -> Iterator[dict]:
        self._decoded = 0
        handed = 0
        source = (heapq.merge(*(self._rows(p) for p in self.paths), key=sort_key(self.key)) if self.key
                  else (row for p in self.paths for row in self._rows(p)))
        for row in source:
            self.max_held = max(self.max_held, self._decoded - handed)
            handed += 1
            yield row

    def __eq__(self, other) -> bool:
        if isinstance(other, (list, MergedRows)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None

    def pick(self, column: str, values: set) -> Iterator[dict]:
        """The rows whose ``column`` is in ``values``, in rank order (not merged). Where ``column`` is a Parquet
        column only those rows' JSON is decoded; the others are never turned into dicts."""
        for path in self.paths:
            columns, n_groups, wanted = self._layout(path)
            for i in range(n_groups):
                with pq.ParquetFile(path) as handle:
                    if column in columns:
                        keys = handle.read_row_group(i, columns=[column]).column(column).to_pylist()
                        mask = [k in values for k in keys]
                        if not any(mask):
                            continue
                        table = handle.read_row_group(i, columns=wanted).filter(pa.array(mask))
                        yield from _decode(path, table, columns, self.drop)
                    else:
                        rows = _decode(path, handle.read_row_group(i, columns=wanted), columns, self.drop)
                        yield from (row for row in rows if row.get(column) in values)

    def read_columns(self, names: Sequence[str]) -> Iterator[pa.Table]:
        """Only ``names``, one table per part in rank order (not merged: sort by the key when order matters). A
        column a part keeps inside its JSON is decoded from there for that part (as one Arrow column: ints mixed
        with floats read as floats there; the rows themselves keep their types)."""
        for path in self.paths:
            parquet = _open(path)
            _, columns = _part_info(path, parquet)
            typed = [n for n in names if n in columns]
            if len(typed) == len(names):
                yield parquet.read(columns=list(names))
                continue
            rows = read_part(path)
            yield pa.table({n: (parquet.read(columns=[n]).column(n) if n in typed else
                                pa.array([plain(r.get(n)) for r in rows])) for n in names})


def iter_rejections(paths: Iterable[str | os.PathLike]) -> Iterator[dict]:
    for path in paths:
        yield from read_rejections(path)
