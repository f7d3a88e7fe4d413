"""LocalExecutor and RayExecutor: identical outputs for any worker count, per-rank stats, completion markers, resume."""

from __future__ import annotations

import json
import pickle
import sys

import pytest

import numpy as np

from talkbench.errors import MissingDependencyError, StepOutputError
import pyarrow as pa
import pyarrow.parquet as pq

from talkbench.runtime import Filter, Step, make_executor
from talkbench.runtime.parts import read_part, read_rejections


class Square(Step):
    """Squares ``x``; appends every row it sees to a log file so tests can tell which ranks really ran."""

    def __init__(self, log: str | None = None, fail_on: int | None = None):
        self.log, self.fail_on = log, fail_on

    def run(self, rows, rank=0, world_size=1):
        for row in rows:
            if self.log:
                with open(self.log, "a") as handle:
                    handle.write(f"{row['id']}\n")
            if row["id"] == self.fail_on:
                raise RuntimeError(f"row {row['id']} is broken")
            self.count("squared")
            yield {**row, "sq": row["x"] * row["x"]}


class DropOdd(Filter):
    def filter(self, row):
        return True if row["x"] % 2 == 0 else (False, "odd", row["x"], 0)


class BadFilter(Filter):
    def filter(self, row):
        return "yes"


def _counts(stats: dict) -> dict:
    """Stats without timings, which differ from run to run."""
    return {**stats, "steps": [{k: v for k, v in s.items() if k != "seconds"} for s in stats["steps"]]}


def _rows(n=12):
    return [{"id": i, "item_id": f"r{i}", "x": (i * 7) % 11} for i in range(n)]


def _run(tmp_path, name, workers, steps=None, rows=None, tasks=None, config=None):
    executor = make_executor("local", workers=workers, quiet=True, tasks=tasks)
    return executor.run(steps or [Square(), DropOdd()], rows or _rows(), tmp_path / name, config=config)


def test_workers_1_and_2_give_the_same_output(tmp_path):
    one = _run(tmp_path, "w1", 1)
    two = _run(tmp_path, "w2", 2)
    key = lambda r: r["id"]  # noqa: E731
    assert sorted(one.rows, key=key) == sorted(two.rows, key=key)
    assert sorted(one.rejections, key=lambda r: r["item_id"]) == sorted(two.rejections, key=lambda r: r["item_id"])
    assert _counts(one.stats) == _counts(two.stats)
    kept = [r for r in _rows() if r["x"] % 2 == 0]
    assert sorted(r["id"] for r in one.rows) == [r["id"] for r in kept]
    assert all(r["sq"] == r["x"] ** 2 for r in one.rows)
    assert {r["reason"] for r in one.rejections} == {"odd"} and len(one.rejections) == 12 - len(kept)
    assert one.rejections[0]["stage"] == "DropOdd" and one.rejections[0]["threshold"] == 0.0
    steps = {s["name"]: s for s in one.stats["steps"]}
    assert steps["Square"]["counters"] == {"squared": 12}
    assert steps["DropOdd"]["dropped"] == {"odd": 12 - len(kept)}
    assert steps["DropOdd"]["counters"] == {"kept": len(kept)}
    assert (steps["DropOdd"]["rows_in"], steps["DropOdd"]["rows_out"]) == (12, len(kept))


def test_per_rank_files_and_completion_markers(tmp_path):
    result = _run(tmp_path, "s", 1, tasks=4)
    d = tmp_path / "s"
    assert sorted(p.name for p in d.glob("0*.json")) == [f"{r:05d}.json" for r in range(4)]
    assert sorted(p.name for p in (d / "completions").iterdir()) == [f"{r:05d}" for r in range(4)]
    stats = json.loads((d / "00001.json").read_text())
    assert (stats["rank"], stats["world_size"], stats["rows_in"]) == (1, 4, 3)  # rows[1::4]
    shard = read_part(d / "output" / "00001.parquet")
    assert [r["id"] for r in shard] == [i for i in (1, 5, 9) if _rows()[i]["x"] % 2 == 0]
    assert [r["item_id"] for r in read_rejections(d / "output" / "00001.rejections.parquet")] == [
        f"r{i}" for i in (1, 5, 9) if _rows()[i]["x"] % 2]
    assert json.loads((d / "summary.json").read_text()) == result.stats
    assert json.loads((d / "stage.json").read_text())["world_size"] == 4


def test_completed_ranks_are_skipped(tmp_path):
    log = tmp_path / "log.txt"
    first = _run(tmp_path, "s", 1, steps=[Square(str(log)), DropOdd()], tasks=4)
    assert sorted(int(x) for x in log.read_text().split()) == list(range(12))
    log.write_text("")
    (tmp_path / "s" / "completions" / "00002").unlink()  # as if rank 2 had been killed
    again = _run(tmp_path, "s", 2, steps=[Square(str(log)), DropOdd()], tasks=4)
    assert sorted(int(x) for x in log.read_text().split()) == [2, 6, 10]
    assert again.skipped_ranks == 3 and again.rows == first.rows and _counts(again.stats) == _counts(first.stats)
    log.write_text("")
    _run(tmp_path, "s", 1, steps=[Square(str(log)), DropOdd()], tasks=4)
    assert log.read_text() == ""  # all complete: nothing runs


def test_changed_input_or_config_restarts_the_stage(tmp_path):
    log = tmp_path / "log.txt"
    _run(tmp_path, "s", 1, steps=[Square(str(log))], tasks=3, config={"v": 1})
    log.write_text("")
    _run(tmp_path, "s", 1, steps=[Square(str(log))], tasks=3, config={"v": 2})
    assert len(log.read_text().split()) == 12
    log.write_text("")
    result = _run(tmp_path, "s", 1, steps=[Square(str(log))], rows=_rows(5), tasks=3, config={"v": 2})
    assert len(log.read_text().split()) == 5 and len(result.rows) == 5


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_rank_raises_and_the_rest_resume(tmp_path, workers):
    log = tmp_path / "log.txt"
    with pytest.raises(RuntimeError, match="row 5 is broken"):
        _run(tmp_path, "s", workers, steps=[Square(str(log), fail_on=5)], tasks=12)
    done = {p.name for p in (tmp_path / "s" / "completions").iterdir()}
    assert "00005" not in done and "00000" in done
    log.write_text("")
    result = _run(tmp_path, "s", workers, steps=[Square(str(log))], tasks=12)
    ran = {int(x) for x in log.read_text().split()}
    assert 5 in ran and ran.isdisjoint(int(n) for n in done)
    assert sorted(r["id"] for r in result.rows) == list(range(12))


def test_filter_must_return_true_or_a_reason(tmp_path):
    with pytest.raises(TypeError, match="must return True or"):
        _run(tmp_path, "s", 1, steps=[BadFilter()])


def test_unknown_executor_and_missing_ray(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown executor 'dask'; choose from \['local', 'ray'\]"):
        make_executor("dask")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'talkbench\[ray\]'"):
        make_executor("ray")


def test_steps_pickle_without_their_context(tmp_path):
    step = Square()
    _run(tmp_path, "s", 1, steps=[step])
    step._lazy_model = object()  # loaded models never travel to workers
    state = pickle.loads(pickle.dumps(step)).__dict__
    assert "_ctx" not in state and "ctx" not in state and "_lazy_model" not in state


class Marker:
    """Unpickling this creates ``path``: the proof that a pickle was executed."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.mark.parametrize("name", ["00000.pkl", "00000.parquet"])
def test_a_planted_pickle_is_refused_with_one_line_and_never_run(tmp_path, name):
    first = _run(tmp_path, "s", 1, tasks=2)
    marker = tmp_path / "pwned"
    (tmp_path / "s" / "output" / name).write_bytes(pickle.dumps(Marker(marker)))
    with pytest.raises(StepOutputError) as info:
        _run(tmp_path, "s", 1, tasks=2)
    message = str(info.value)
    assert "\n" not in message and name in message
    assert ("pickled step outputs are refused" if name.endswith(".pkl") else "unreadable Parquet") in message
    assert not marker.exists()
    # The saved output is data: once the planted file is gone, the same run merges the same rows again.
    (tmp_path / "s" / "output" / name).unlink()
    if name.endswith(".parquet"):
        (tmp_path / "s" / "completions" / "00000").unlink()
    assert _run(tmp_path, "s", 1, tasks=2).rows == first.rows
    assert not marker.exists()


def test_outputs_are_validated_on_read(tmp_path):
    _run(tmp_path, "s", 1, tasks=2)
    path = tmp_path / "s" / "output" / "00001.rejections.parquet"
    pq.write_table(pa.table({"stage": ["x"]}).replace_schema_metadata(pq.read_schema(path).metadata), path)
    with pytest.raises(StepOutputError, match="rejections must be objects with the keys"):
        _run(tmp_path, "s", 1, tasks=2)
    path = tmp_path / "s" / "output" / "00000.parquet"
    pq.write_table(pa.table({"_row": ["[1]"]}), path)  # no talkbench metadata: refused before any row is read
    with pytest.raises(StepOutputError, match="not a talkbench step output"):
        _run(tmp_path, "s", 1, tasks=2)


def test_numpy_values_round_trip_exactly(tmp_path):
    class Arrays(Step):
        def run(self, rows, rank=0, world_size=1):
            for row in rows:
                yield {**row, "vec": np.arange(3, dtype=np.float32) / 3, "n": np.int64(row["x"]), "t": (1, 2)}

    result = _run(tmp_path, "s", 1, steps=[Arrays()], tasks=3)
    rows = sorted(result.rows, key=lambda r: r["id"])
    assert rows[4]["vec"].dtype == np.float32
    assert rows[4]["vec"].tolist() == (np.arange(3, dtype=np.float32) / 3).tolist()
    assert rows[4]["n"] == _rows()[4]["x"] and rows[4]["t"] == [1, 2]


def test_steps_count_and_reject_outside_an_executor():
    """The base Step owns a default context, so a step runs on its own and still counts and records drops."""
    square, odd = Square(), DropOdd()
    kept = list(odd.run(square.run(_rows(6))))
    assert [r["id"] for r in kept] == [r["id"] for r in _rows(6) if r["x"] % 2 == 0]
    assert square.ctx.counters == {"squared": 6}
    assert odd.ctx.dropped == {"odd": 6 - len(kept)} and odd.ctx.counters == {"kept": len(kept)}
    assert [r["item_id"] for r in odd.ctx.rejections] == [r["item_id"] for r in _rows(6) if r["x"] % 2]


def test_curate_refuses_a_planted_pickle_in_its_run_folder_with_one_line(tmp_path, capsys):
    """The CLI path: a pickle planted in OUT/stats/acquire/output/ stops the rerun with one line and exit 1."""
    from talkbench.cli.main import main

    (tmp_path / "list.csv").write_text("url\nmissing.mp4\n")  # a source that fails fast: one rank, one rejection
    args = ["curate", "build-manifest", str(tmp_path / "list.csv"), "--out", str(tmp_path / "out"), "--until",
            "acquire", "--quiet"]
    assert main(args) == 1  # every source failed: a non-zero exit (issue 11.11), the run folder is still written
    assert "no usable video" in capsys.readouterr().err
    output = tmp_path / "out" / "stats" / "acquire" / "output"
    assert sorted(p.name for p in output.iterdir()) == ["00000.parquet", "00000.rejections.parquet"]
    marker = tmp_path / "pwned"
    (output / "00000.pkl").write_bytes(pickle.dumps(Marker(marker)))
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and "pickled step outputs are refused" in err
    assert not marker.exists()
