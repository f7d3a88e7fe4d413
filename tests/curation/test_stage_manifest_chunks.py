"""Large manifests go out in row groups (manifests.stream) and stay one table, byte-identical on rerun."""

from __future__ import annotations

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from talkbench.curation import stages
from talkbench.manifests.io import read_table


def _rejections(n: int) -> list[dict]:
    # Out of key order on purpose: the writer must sort before cutting chunks.
    return [{"stage": "cluster" if i % 2 else "filters", "item_id": f"vid{(7 * i) % n:04d}/0/0/0",
             "source_id": f"vid{(7 * i) % n:04d}", "reason": "embedding_nan" if i % 2 else "too_short",
             "value": float(i) if i % 3 else None, "threshold": 2.0, "detail": None} for i in range(n)]


def test_above_the_chunk_size_the_manifest_is_row_groups_of_the_same_table(tmp_path, monkeypatch):
    rows = _rejections(23)
    whole = tmp_path / "whole.parquet"
    assert stages.write_manifest(rows, whole, "rejections")  # 23 ≤ 100k: write_table, one row group
    monkeypatch.setattr(stages, "MANIFEST_CHUNK_ROWS", 5)
    chunked = tmp_path / "chunked.parquet"
    assert stages.write_manifest(list(reversed(rows)), chunked, "rejections")
    assert pq.ParquetFile(chunked).num_row_groups == 5 and pq.ParquetFile(whole).num_row_groups == 1
    # One logical table, the same rows in the same (key) order, for the project reader, pandas and pyarrow.dataset.
    assert read_table(chunked, "rejections").to_pylist() == read_table(whole, "rejections").to_pylist()
    pd.testing.assert_frame_equal(pd.read_parquet(chunked), pd.read_parquet(whole))
    assert ds.dataset(chunked).to_table().num_rows == 23
    # A rerun writes nothing (same bytes) and leaves the file untouched.
    before = chunked.stat().st_mtime_ns, chunked.read_bytes()
    assert not stages.write_manifest(rows, chunked, "rejections")
    assert (chunked.stat().st_mtime_ns, chunked.read_bytes()) == before
