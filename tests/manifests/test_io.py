"""Manifest IO: schema-exact atomic writes; wrong, old or truncated files are refused with a message naming the file."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from talkbench.errors import ManifestError
from talkbench.manifests import io as mio
from talkbench.manifests.schemas import SCHEMA_VERSION, SORT_KEYS, TABLES, table_schema


def _rejections(n=3):
    return [{"stage": "probe", "item_id": f"v{i}", "source_id": f"v{i}", "reason": "corrupt", "value": None,
             "threshold": None, "detail": None} for i in reversed(range(n))]


def test_write_is_sorted_validated_and_reproducible(tmp_path):
    path = tmp_path / "r.parquet"
    mio.write_table(_rejections(), path, "rejections")
    rows = mio.read_rows(path, "rejections")
    assert [r["item_id"] for r in rows] == ["v0", "v1", "v2"]  # sorted by the table's keys
    first = path.read_bytes()
    mio.write_table(list(reversed(_rejections())), path, "rejections")
    assert path.read_bytes() == first  # input order does not change the bytes
    meta = pq.read_schema(path).metadata
    assert meta[b"talkbench.table"] == b"rejections" and meta[b"talkbench.schema_version"] == SCHEMA_VERSION.encode()
    assert [p.name for p in tmp_path.iterdir()] == ["r.parquet"]  # no temporary file left


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "r.parquet"
    mio.write_table(_rejections(), path, "rejections")
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ManifestError, match=r"cannot write .*r\.parquet: No space left on device"):
        mio.write_table(_rejections(5), path, "rejections")
    monkeypatch.undo()
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["r.parquet"]


def test_write_refuses_rows_that_do_not_fit(tmp_path):
    with pytest.raises(ManifestError, match=r"row 0 has columns not in the schema: \['bogus'\]"):
        mio.write_table([{**_rejections(1)[0], "bogus": 1}], tmp_path / "x.parquet", "rejections")
    with pytest.raises(ManifestError, match="column 'reason' must not be null"):
        mio.write_table([{**_rejections(1)[0], "reason": None}], tmp_path / "x.parquet", "rejections")
    with pytest.raises(ManifestError, match="column 'value' does not fit double"):
        mio.write_table([{**_rejections(1)[0], "value": "high"}], tmp_path / "x.parquet", "rejections")
    with pytest.raises(ValueError, match="unknown table 'nope'"):
        table_schema("nope")
    assert not list(tmp_path.iterdir())


def test_wrong_table_is_refused(tmp_path):
    path = tmp_path / "r.parquet"
    mio.write_table(_rejections(), path, "rejections")
    with pytest.raises(ManifestError, match=r"r\.parquet: expected a 'videos' manifest, found rejections"):
        mio.read_table(path, "videos")
    pq.write_table(pa.table({"a": [1]}), tmp_path / "plain.parquet")
    with pytest.raises(ManifestError, match="plain.parquet: expected a 'videos' manifest, found a Parquet file "
                                            "without talkbench metadata"):
        mio.read_table(tmp_path / "plain.parquet", "videos")


def test_wrong_version_is_refused(tmp_path):
    table = mio.to_table(_rejections(), "rejections")
    table = table.replace_schema_metadata({**table.schema.metadata, b"talkbench.schema_version": b"0"})
    pq.write_table(table, tmp_path / "old.parquet")
    with pytest.raises(ManifestError, match=rf"old\.parquet: rejections schema version 0 is not supported "
                                            rf"\(expected {SCHEMA_VERSION}\)"):
        mio.read_table(tmp_path / "old.parquet", "rejections")


def test_truncated_and_missing_files_are_refused(tmp_path):
    path = tmp_path / "r.parquet"
    mio.write_table(_rejections(50), path, "rejections")
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 3, 0):
        (tmp_path / "cut.parquet").write_bytes(data[:cut])
        with pytest.raises(ManifestError, match=r"cut\.parquet: not a readable Parquet file \(truncated or corrupt"):
            mio.read_table(tmp_path / "cut.parquet", "rejections")
    with pytest.raises(ManifestError, match=r"gone\.parquet: no such manifest file"):
        mio.read_table(tmp_path / "gone.parquet", "rejections")


def test_missing_or_retyped_columns_are_refused(tmp_path):
    table = mio.to_table(_rejections(), "rejections")
    meta = table.schema.metadata
    pq.write_table(table.drop(["detail"]).replace_schema_metadata(meta), tmp_path / "a.parquet")
    with pytest.raises(ManifestError, match=r"a\.parquet: column 'detail' is missing"):
        mio.read_table(tmp_path / "a.parquet", "rejections")
    retyped = table.set_column(4, "value", pa.array(["x"] * 3)).replace_schema_metadata(meta)
    pq.write_table(retyped, tmp_path / "b.parquet")
    with pytest.raises(ManifestError, match=r"b\.parquet: column 'value' has type string, expected double"):
        mio.read_table(tmp_path / "b.parquet", "rejections")
    # Newer extra columns are tolerated by default and dropped from what is returned.
    extra = table.append_column("later", pa.array([1, 2, 3])).replace_schema_metadata(meta)
    pq.write_table(extra, tmp_path / "c.parquet")
    assert mio.read_table(tmp_path / "c.parquet", "rejections").column_names == table.column_names
    with pytest.raises(ManifestError, match=r"unexpected columns \['later'\]"):
        mio.read_table(tmp_path / "c.parquet", "rejections", allow_newer_columns=False)


def test_every_table_round_trips_an_empty_manifest(tmp_path):
    for name in TABLES:
        mio.write_table([], tmp_path / f"{name}.parquet", name)
        table = mio.read_table(tmp_path / f"{name}.parquet", name)
        assert table.num_rows == 0 and table.schema.names == TABLES[name].names
        assert set(SORT_KEYS[name]) <= set(TABLES[name].names)


def test_atomic_text_write(tmp_path):
    mio.atomic_write_text(tmp_path / "a" / "b.txt", "hello")
    assert (tmp_path / "a" / "b.txt").read_text() == "hello"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.txt"]
