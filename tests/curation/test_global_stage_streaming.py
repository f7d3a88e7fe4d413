"""The global stages stream: select holds one identity, split one chunk, the report one row group — not n rows.

Rows held are counted from outside: rows the stage has pulled from its input minus rows it has handed back. A stage
that gathered its input first (as ``select_clips`` does) holds all 50k at its first output, and these tests fail.
"""

from __future__ import annotations

from collections import Counter

import pytest

from talkbench.curation import report
from talkbench.curation.config import SelectConfig, SplitConfig
from talkbench.curation.scale import synthetic_candidates
from talkbench.curation.select import select_clips, select_stream
from talkbench.curation.split import assign_split, split_stream
from talkbench.manifests.io import read_rows
from talkbench.manifests.stream import write_table_chunks, write_table_sorted

N = 50_000
CHUNK = 500


@pytest.fixture(scope="module")
def candidates() -> list[dict]:
    """50k synthetic candidate rows (curation.scale), identities from the mixture's truth, grouped by identity."""
    syn = synthetic_candidates(N, seed=3)
    rows = [{"candidate_id": c, "source_id": s, "identity_id": f"id-{int(t):05d}", "start_s": float(a),
             "end_s": float(b), "yaw_max": float(y), "pitch_max": 2.0, "roll_max": 1.0, "sharpness": float(sh)}
            for c, s, t, a, b, y, sh in zip(syn.candidate_ids, syn.source_ids, syn.truth, syn.start_s, syn.end_s,
                                             syn.yaw_max, syn.sharpness)]
    return sorted(rows, key=lambda r: (r["identity_id"], r["candidate_id"]))


class Meter:
    """Feeds rows in chunks and counts how many the consumer has pulled."""

    def __init__(self, rows, size):
        self.rows, self.size, self.pulled = rows, size, 0

    def __iter__(self):
        for start in range(0, len(self.rows), self.size):
            chunk = self.rows[start:start + self.size]
            self.pulled += len(chunk)
            yield chunk


def test_select_stream_gives_select_clips_rows_holding_one_identity(candidates):
    config = SelectConfig(max_clips=3, min_clips=2, seed=5)
    meter = Meter(candidates, CHUNK)
    selected, rejections, handed, held = [], [], 0, []
    for chosen, rejected in select_stream(meter, config):
        handed += len(chosen) + len(rejected)
        held.append(meter.pulled - handed)
        selected += chosen
        rejections += rejected
    largest = max(Counter(r["identity_id"] for r in candidates).values())
    assert handed == N and len(held) > 100
    assert max(held) <= CHUNK + largest < N // 20, (max(held), largest)
    # the same rows and rejections, in the same order, as the whole-list function (shuffled input)
    want_sel, want_rej = select_clips(candidates[::-1], config)
    assert [r["candidate_id"] for r in selected] == [r["candidate_id"] for r in want_sel]
    assert rejections == want_rej
    assert {r["reason"] for r in rejections} == {"not_selected"} and len(selected) > 500


def test_select_stream_refuses_rows_out_of_identity_order(candidates):
    rows = candidates[:2000]
    with pytest.raises(ValueError, match="sorted by"):
        list(select_stream([rows[1000:], rows[:1000]], SelectConfig()))


def test_split_stream_labels_like_assign_split_holding_a_chunk(candidates):
    config = SplitConfig(test_fraction=0.2, seed=11)
    meter = Meter(candidates, CHUNK)
    out, held = [], []
    for chunk in split_stream(meter, {r["identity_id"] for r in candidates}, config):
        out += chunk
        held.append(meter.pulled - len(out))
    assert max(held) == 0 and len(held) == N // CHUNK  # each chunk handed back before the next is read
    assert out == assign_split(candidates, config)
    by_id = {}
    for r in out:
        assert by_id.setdefault(r["identity_id"], r["split"]) == r["split"]  # no identity in both splits
    assert set(by_id.values()) == {"train", "test"}


def test_report_counts_rejections_a_row_group_at_a_time(candidates, tmp_path, monkeypatch):
    rejections = [{"stage": "select", "item_id": r["candidate_id"], "source_id": r["source_id"],
                   "reason": ("not_selected", "identity_too_few_clips", "nan_embedding")[i % 3] if i % 7 else "x",
                   "value": None, "threshold": None, "detail": "{}"} for i, r in enumerate(candidates[:20_000])]
    rejections.sort(key=lambda r: (r["stage"], r["item_id"], r["reason"]))
    write_table_chunks((rejections[s:s + 4000] for s in range(0, len(rejections), 4000)),
                       tmp_path / "rejections.parquet", "rejections")
    seen = []
    real = report.iter_table_chunks

    def spy(*args, **kwargs):
        for chunk in real(*args, **kwargs):
            seen.append(chunk.num_rows)
            assert chunk.column_names == ["stage", "reason"]  # only the columns counted are read
            yield chunk

    monkeypatch.setattr(report, "iter_table_chunks", spy)
    monkeypatch.setattr(report, "REPORT_CHUNK_ROWS", 1000)
    counts = report._counts(tmp_path, "rejections", ["stage", "reason"])
    assert max(seen) == 1000 and sum(seen) == 20_000
    assert counts == Counter((r["stage"], r["reason"])
                             for r in read_rows(tmp_path / "rejections.parquet", "rejections"))
    assert report._counts(tmp_path, "videos", ["status"]) is None  # no file: unknown, not zero


def test_write_table_sorted_spills_runs_and_gives_the_bytes_of_the_sorted_chunks(candidates, tmp_path):
    import random
    import tracemalloc

    from talkbench.manifests.io import _sort_key

    # 12k rejections in shuffled order, with repeated keys (same stage, item and reason, other detail): the merge
    # must keep their input order as sorted() does.
    rows = [{"stage": "select", "item_id": r["candidate_id"], "source_id": r["source_id"], "reason": "not_selected",
             "value": float(i), "threshold": None, "detail": f'{{"i": {i}}}'}
            for i, r in enumerate(candidates[:10_000] + candidates[:2_000])]
    random.Random(0).shuffle(rows)
    ordered = sorted(rows, key=lambda r: tuple(_sort_key(r[k]) for k in ("stage", "item_id", "reason")))
    want = tmp_path / "want.parquet"
    write_table_chunks((ordered[s:s + 1000] for s in range(0, len(ordered), 1000)), want, "rejections")
    got = tmp_path / "out" / "rejections.parquet"

    def produced():  # rows made one at a time, as a stage hands them out
        yield from (dict(r) for r in rows)

    assert write_table_sorted(produced(), got, "rejections", chunk_rows=1000)
    assert got.read_bytes() == want.read_bytes()
    assert [p.name for p in got.parent.iterdir()] == ["rejections.parquet"]  # the spilled runs are gone
    import pandas as pd
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    # one logical table in 12 row groups, for pandas and pyarrow.dataset alike
    assert pq.ParquetFile(got).num_row_groups == 12
    frame = pd.read_parquet(got)
    assert frame["item_id"].tolist() == [r["item_id"] for r in ordered]
    assert ds.dataset(got).to_table().column("detail").to_pylist() == [r["detail"] for r in ordered]
    assert not write_table_sorted(iter(rows), got, "rejections", chunk_rows=1000)  # rerun: same bytes, untouched
    # Peak memory follows the chunk, not n (about three chunks of rows: a run being sorted, or a batch per run plus
    # the row group being written): 500-row chunks over 12k rows stay well under one 12k-row chunk. Warmed up first,
    # so one-off import costs are not counted.
    write_table_sorted(produced(), tmp_path / "warm.parquet", "rejections", chunk_rows=500)
    peaks = {}
    for size in (500, len(rows)):
        tracemalloc.start()
        write_table_sorted(produced(), tmp_path / f"{size}.parquet", "rejections", chunk_rows=size)
        peaks[size] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[500] < peaks[len(rows)] / 3, peaks
    assert read_rows(tmp_path / "500.parquet", "rejections") == read_rows(want, "rejections")  # same table
