"""Rank outputs as Parquet parts and the lazy k-way merge: the same rows in the same order as the old concatenation
(then a stable sort by the key), memory bounded by parts × row group, and column reads that touch only the columns
asked for."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from talkbench.runtime import MergedRows, Step, make_executor, stable_hash
from talkbench.runtime.executor import plan_hashes
from talkbench.runtime.parts import read_part, write_part


class Explode(Step):
    """Each input row → ``x % 3 + 1`` rows with a repeated key (ties across and within ranks), mixed value types."""

    def run(self, rows, rank=0, world_size=1):
        for row in rows:
            for j in range(row["x"] % 3 + 1):
                self.count("out")
                yield {"id": f"{row['id']}-{j}", "k": row["x"] % 4, "j": j, "f": row["x"] / 7, "i": row["x"],
                       "one": 1.0 if j else 1, "vec": np.arange(j + 2, dtype=np.float32) * row["x"],
                       "emb": [float(row["x"]), 0.5 * j], "nested": {"a": [j, None]}, "maybe": None if j else "s"}


def _rows(n):
    return [{"id": i, "x": (i * 7) % 11} for i in range(n)]


def _old_concatenation(rows, world_size):
    """What Executor.merge returned before: each rank's output in rank order, concatenated."""
    out = []
    for r in range(world_size):
        out += list(Explode().run(rows[r::world_size]))
    return out


def _same(a: list[dict], b: list[dict]) -> bool:
    """Rows equal value by value, numpy arrays by dtype and content, ints and floats told apart."""
    def norm(v):
        if isinstance(v, np.ndarray):
            return ["nd", v.dtype.str, v.tolist()]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        return v
    return json.dumps([[list(r), norm(r)] for r in a]) == json.dumps([[list(r), norm(r)] for r in b])


def test_merge_equals_the_old_concatenation_sorted_by_key(tmp_path):
    rows = _rows(23)
    executor = make_executor("local", quiet=True, tasks=5)
    result = executor.run([Explode()], rows, tmp_path / "s", key=("k",), columns=("vec", "emb", "one"))
    old = _old_concatenation(rows, 5)
    assert len(result.rows) == len(old) == sum(r["x"] % 3 + 1 for r in rows)
    expected = sorted(old, key=lambda r: r["k"])  # the stable sort the stages did after the old merge
    assert _same(list(result.rows), expected)
    assert not _same(list(result.rows), old)  # the key really orders them (the concatenation is not sorted)
    assert _same(list(result.rows), expected)  # iterable again
    # Parts are sorted by the key and carry it and the named columns as Parquet columns with exact types.
    schema = pq.read_schema(tmp_path / "s" / "output" / "00001.parquet")
    assert {"_row", "k", "vec", "emb"} <= set(schema.names) and "one" not in schema.names  # 1 and 1.0: kept in JSON
    assert schema.field("vec").type.value_type == pa.float32()
    part = read_part(tmp_path / "s" / "output" / "00001.parquet")
    assert [r["k"] for r in part] == sorted(r["k"] for r in part)
    # Without a key the merge is the old concatenation itself.
    plain = executor.run([Explode()], rows, tmp_path / "p")
    assert _same(list(plain.rows), old)


def test_planning_hashes_stream_and_equal_the_list_hashes():
    rows = [{"id": i, "v": np.arange(3) * i, "s": "é" * i, "f": i / 3, "n": None, "l": [1, {"b": 2}]}
            for i in range(17)]
    total, per_rank, n = plan_hashes(iter(rows), 4)
    assert n == 17 and total == stable_hash(rows)
    assert per_rank == [stable_hash(rows[r::4]) for r in range(4)]
    assert plan_hashes(iter([]), 1)[:2] == (stable_hash([]), [stable_hash([])])


class Counting:
    """A re-iterable input with a length (like MergedRows) that counts its passes and the rows it hands out."""

    def __init__(self, rows):
        self.rows, self.passes, self.handed = rows, 0, 0

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        self.passes += 1
        for row in self.rows:
            self.handed += 1
            yield row


def test_run_takes_a_streamed_input_and_a_finished_rerun_reads_it_once(tmp_path):
    executor = make_executor("local", quiet=True, tasks=4)
    first = Counting(_rows(12))
    a = executor.run([Explode()], first, tmp_path / "s", key=("id",))
    assert first.passes == 2  # hashes, then the shards of the ranks to run
    again = Counting(_rows(12))
    b = executor.run([Explode()], again, tmp_path / "s", key=("id",))
    assert again.passes == 1 and b.skipped_ranks == 4 and _same(list(a.rows), list(b.rows))
    # A stage's lazy output feeds the next stage directly, with the result a list input gives.
    c = executor.run([Step()], list(a.rows), tmp_path / "t", key=("k", "id"))
    d = executor.run([Step()], MergedRows(a.rows.paths, key=("id",)), tmp_path / "u", key=("k", "id"))
    assert len(d.rows) == len(a.rows) and _same(list(c.rows), list(d.rows))


def _parts(folder, n, parts, group):
    """``n`` rows in random key order over ``parts`` part files of ``group``-row row groups."""
    keys = np.random.default_rng(0).permutation(n)
    paths = []
    for p in range(parts):
        rows = [{"candidate_id": f"c{k:06d}", "source_id": f"s{k // 7}", "score": float(k) / n, "pad": "x" * 40}
                for k in keys[p::parts]]
        paths.append(folder / f"{p:05d}.parquet")
        write_part(paths[-1], rows, key=("candidate_id",), row_group_rows=group)
    return MergedRows(paths, key=("candidate_id",))


def test_merge_holds_parts_times_row_group_rows_not_n(tmp_path):
    """50k rows in 8 parts with 500-row groups: the merge never holds more than 8 × 500 decoded rows at once."""
    n, parts, group = 50_000, 8, 500
    merged = _parts(tmp_path, n, parts, group)
    assert len(merged) == n
    count, previous, in_order = 0, "", True
    for row in merged:
        in_order &= row["candidate_id"] > previous
        previous = row["candidate_id"]
        count += 1
    assert count == n and in_order
    assert parts <= merged.max_held <= parts * group < n // 10


def test_merge_peak_memory_is_a_fraction_of_the_list(tmp_path):
    """tracemalloc: iterating the merge of 12k rows (6 parts × 200-row groups) peaks far below holding the list."""
    n = 12_000
    merged = _parts(tmp_path, n, 6, 200)
    tracemalloc.start()
    count = sum(1 for _ in merged)
    _, streaming_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tracemalloc.start()
    whole = list(merged)
    _, list_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == len(whole) == n
    assert [r["candidate_id"] for r in whole] == sorted(f"c{k:06d}" for k in range(n))
    assert merged.max_held <= 6 * 200
    assert streaming_peak < 0.25 * list_peak, (streaming_peak, list_peak)


def test_columns_that_do_not_round_trip_stay_in_the_json_and_are_still_read(tmp_path):
    """A named column with ints and floats mixed stays in each row's JSON; read_columns and pick decode it there."""
    rows = [{"id": f"r{i}", "v": i if i % 2 else i + 0.5, "w": float(i)} for i in range(6)]
    write_part(tmp_path / "00000.parquet", rows[:3], key=("id",), columns=("v", "w"))
    write_part(tmp_path / "00001.parquet", rows[3:], key=("id",), columns=("v", "w"))
    assert set(pq.read_schema(tmp_path / "00000.parquet").names) == {"_row", "id", "w"}
    merged = MergedRows([tmp_path / "00000.parquet", tmp_path / "00001.parquet"], key=("id",))
    tables = list(merged.read_columns(["id", "v", "w"]))
    assert [v for t in tables for v in t.column("v").to_pylist()] == [r["v"] for r in rows]
    assert [type(r["v"]) for r in merged] == [float, int] * 3  # the rows keep their own types
    assert list(merged.pick("id", {"r1", "r4"})) == [rows[1], rows[4]]
    assert list(merged.pick("v", {1, 3})) == [rows[1], rows[3]]  # v is not a Parquet column: rows are decoded
    assert list(merged.without("w")) == [{"id": r["id"], "v": r["v"]} for r in rows]
