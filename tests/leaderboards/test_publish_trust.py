"""No wrong ranking and no mislabelled figure (issue 11, points 2 and 6).

- one table ranks runs of one manifest, split and clip set, and refuses others naming the difference;
- a method that failed on hard clips does not win: ranked rows are compared on the common clips, with n;
- reported rows say ``reported (<paper>)`` as their protocol in the CSV; the LaTeX notes are visible text.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from talkbench.errors import ConfigError
from talkbench.leaderboards.publish import build, load_results, publish
from talkbench.leaderboards.render import latex, notes, tex_escape
from talkbench.manifests import get_protocol, write_table

PROTO = "talkbench-v1-256"


def run(path: Path, method: str, psnr: list, *, manifest="a" * 64, split="test", clip_set="s" * 64,
        fid=None, real=None) -> Path:
    """A results file as `bench run` writes it: a failed clip has a null row with the method's reason."""
    rows = [{"metric": "psnr", "clip_id": f"clip{i}", "value": v, "n": 19,
             "null_reason": None if v is not None else "missing_output"} for i, v in enumerate(psnr)]
    rows.append({"metric": "fid", "clip_id": None, "value": fid, "n": real, "null_reason": None,
                 "extra": json.dumps({"real": real, "fake": real})})
    common = {"protocol_id": PROTO, "protocol_digest": get_protocol(PROTO).digest, "protocol_standard": True,
              "method": method, "task": "self-reenact", "split": split, "manifest_sha256": manifest,
              "clip_set": clip_set, "talkbench_version": "0.1.0"}
    path.mkdir(parents=True, exist_ok=True)
    write_table([{**common, **r} for r in rows], path / "results.parquet", "results")
    return path / "results.parquet"


@pytest.mark.parametrize("change, what", [
    ({"manifest": "b" * 64}, "different manifest sha256s (aaaaaaaaaaaa, 4 clips vs bbbbbbbbbbbb, 4 clips)"),
    ({"split": "val"}, "different splits (test, 4 clips vs val, 4 clips)"),
    ({"clip_set": "t" * 64}, "different clip sets"),
])
def test_runs_scored_on_different_clips_are_refused(tmp_path, change, what):
    a = run(tmp_path / "a", "static", [18.0, 19.0, 20.0, 21.0])
    b = run(tmp_path / "b", "ours", [24.0, 25.0, 26.0, 27.0], **change)
    with pytest.raises(ConfigError) as err:
        load_results([str(a), str(b)])
    assert what in str(err.value) and "static" in str(err.value) and "ours" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError):
        publish([str(a), str(b)], str(tmp_path / "board"))
    assert not (tmp_path / "board").exists()


def test_a_method_that_fails_on_hard_clips_does_not_win(tmp_path):
    # clip0 is hard: A scores it badly, B's output for it failed. On its own clips B would win (24.67 > 21.25).
    a = run(tmp_path / "a", "method-a", [10.0, 25.0, 25.0, 25.0], fid=30.0, real=76)
    b = run(tmp_path / "b", "method-b", [None, 26.0, 24.0, 24.0], fid=10.0, real=57)
    gt = run(tmp_path / "gt", "gt", [float("inf")] * 4, fid=0.0, real=76)
    board = build(load_results([str(a), str(b), str(gt)]), with_reported=False, n_boot=200).boards[0]
    rows = {r.method: r for r in board.rows}
    assert rows["method-a"].cells["psnr"].est.mean == pytest.approx(25.0)
    assert rows["method-b"].cells["psnr"].est.mean == pytest.approx(74 / 3)
    assert rows["method-a"].cells["psnr"].rank == 1 and rows["method-b"].cells["psnr"].rank == 2
    assert rows["method-a"].cells["psnr"].est.n == 3 == rows["method-b"].cells["psnr"].est.n
    assert "psnr: n = 3, 3 own" in rows["method-b"].note and "psnr: n = 3, 4 own" in rows["method-a"].note
    # FID over B's 3 clips is shown, not ranked against A's over 4
    assert rows["method-b"].cells["fid"].unranked and rows["method-b"].cells["fid"].rank is None
    assert rows["method-a"].cells["fid"].rank == 1
    assert rows["gt"].cells["psnr"].est.n == 4  # unranked rows keep their own clips
    text = (publish([str(a), str(b)], str(tmp_path / "lb"), formats=["csv"], with_reported=False).files[0]
            .read_text())
    b_psnr = next(r for r in csv.DictReader(io.StringIO(text)) if r["method"] == "method-b" and r["metric"] == "psnr")
    a_psnr = next(r for r in csv.DictReader(io.StringIO(text)) if r["method"] == "method-a" and r["metric"] == "psnr")
    assert b_psnr["n"] == "3" == a_psnr["n"] and b_psnr["rank"] == "2" and a_psnr["rank"] == "1"


def test_reported_rows_carry_their_papers_protocol_in_the_csv(tmp_path):
    a = run(tmp_path / "a", "static", [18.0, 19.0, 20.0, 21.0])
    publish([str(a)], str(tmp_path / "lb"), formats=["csv", "tex"])
    rows = list(csv.DictReader(io.StringIO((tmp_path / "lb" / "leaderboard.csv").read_text())))
    measured = {r["protocol"] for r in rows if r["kind"] == "measured"}
    reported = {r["method"]: r["protocol"] for r in rows if r["kind"] == "reported"}
    assert measured == {PROTO}
    assert reported["AniTalker"].startswith("reported (") and "AniTalker" in reported["AniTalker"]
    assert all(p.startswith("reported (") and PROTO not in p for p in reported.values())


def test_latex_notes_are_visible_text(tmp_path):
    a = run(tmp_path / "a", "static", [18.0, 19.0, 20.0, 21.0])
    board = build(load_results([str(a)]), with_reported=True, n_boot=200)
    tex = latex(board)
    visible = [line for line in tex.splitlines() if not line.lstrip().startswith("%")]
    for line in notes(board):
        assert any(tex_escape(line) in v for v in visible), line
    assert [line for line in tex.splitlines() if line.startswith("%")] == [
        "% talkbench leaderboard; needs \\usepackage{booktabs}"]


def test_a_partial_run_is_shown_and_never_ranked(tmp_path):
    """`bench run --metrics` writes partial: true in summary.json; publish shows the row and does not rank it."""
    full = run(tmp_path / "full", "static", [18.0, 19.0, 20.0, 21.0])
    part = run(tmp_path / "part", "ours-psnr-only", [30.0, 31.0, 32.0, 33.0])
    (tmp_path / "part" / "summary.json").write_text(json.dumps({"partial": True}))
    board = build(load_results([str(full), str(part)]), with_reported=False, n_boot=10).boards[0]
    rows = {r.method: r for r in board.rows}
    assert rows["static"].ranked and not rows["ours-psnr-only"].ranked
    assert "partial run" in rows["ours-psnr-only"].note
