"""Chunked manifests: one Parquet file in row groups, atomic, byte-identical on rerun, one logical table."""

from __future__ import annotations

import importlib.util
import os

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from talkbench.errors import ManifestError
from talkbench.manifests.io import read_table, to_table, write_table
from talkbench.manifests.stream import iter_table_chunks, open_table, write_table_chunks


def _rejections(n):
    return [{"stage": "select", "item_id": f"vid{i // 7:06d}/0/{i % 7}/0", "source_id": f"vid{i // 7:06d}",
             "reason": "not_selected", "value": i / 10, "threshold": None, "detail": None} for i in range(n)]


def _chunks(rows, size):
    return (rows[s:s + size] for s in range(0, len(rows), size))


def test_chunks_make_one_table_equal_to_write_table(tmp_path):
    rows = _rejections(2500)
    assert write_table_chunks(_chunks(rows, 1000), tmp_path / "r.parquet", "rejections")
    meta = pq.ParquetFile(tmp_path / "r.parquet").metadata
    assert meta.num_row_groups == 3 and meta.num_rows == 2500
    whole = read_table(tmp_path / "r.parquet", "rejections")
    assert whole.equals(to_table(rows, "rejections"))
    write_table(rows, tmp_path / "single.parquet", "rejections")
    assert read_table(tmp_path / "single.parquet", "rejections").equals(whole)
    got = list(iter_table_chunks(tmp_path / "r.parquet", "rejections"))
    assert [t.num_rows for t in got] == [1000, 1000, 500]
    assert pa.concat_tables(got).equals(whole)
    assert sum(t.num_rows for t in iter_table_chunks(tmp_path / "r.parquet", "rejections", batch_size=300)) == 2500
    # Other readers see one logical table.
    assert ds.dataset(tmp_path / "r.parquet").to_table().num_rows == 2500
    if importlib.util.find_spec("pandas"):
        import pandas as pd

        frame = pd.read_parquet(tmp_path / "r.parquet")
        assert len(frame) == 2500 and frame["item_id"].iloc[-1] == rows[-1]["item_id"]
    if importlib.util.find_spec("duckdb"):
        import duckdb

        count = duckdb.sql(f"select count(*) from read_parquet('{tmp_path / 'r.parquet'}')").fetchone()[0]
        assert count == 2500


def test_rerun_is_byte_identical_and_leaves_the_file_untouched(tmp_path):
    rows = _rejections(1200)
    path = tmp_path / "r.parquet"
    write_table_chunks(_chunks(rows, 500), path, "rejections")
    first = path.read_bytes()
    os.utime(path, (1, 1))
    assert write_table_chunks(_chunks(rows, 500), path, "rejections") is False
    assert path.stat().st_mtime == 1 and path.read_bytes() == first
    rows[5]["value"] = 99.0
    assert write_table_chunks(_chunks(rows, 500), path, "rejections") is True
    assert path.read_bytes() != first
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_out_of_order_chunks_and_bad_rows_fail_before_the_file_is_replaced(tmp_path):
    rows = _rejections(900)
    path = tmp_path / "r.parquet"
    write_table_chunks(_chunks(rows, 300), path, "rejections")
    before = path.read_bytes()
    shuffled = rows[300:600] + rows[:300] + rows[600:]
    with pytest.raises(ManifestError, match="chunk 1 starts before the end of chunk 0"):
        write_table_chunks(_chunks(shuffled, 300), path, "rejections")
    bad = [dict(r) for r in rows]
    bad[700]["value"] = "high"
    with pytest.raises(ManifestError, match="column 'value' does not fit double"):
        write_table_chunks(_chunks(bad, 300), path, "rejections")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.parquet"]


def test_empty_input_and_wrong_table_name(tmp_path):
    write_table_chunks(iter(()), tmp_path / "c.parquet", "clips")
    assert read_table(tmp_path / "c.parquet", "clips").num_rows == 0
    with pytest.raises(ManifestError, match="expected a 'rejections' manifest, found clips"):
        open_table(tmp_path / "c.parquet", "rejections")
