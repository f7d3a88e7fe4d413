"""Leaderboards from result files: ranking rules, reported rows, formats, and the HTML page in headless Chromium."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from talkbench.cli.bench import main
from talkbench.leaderboards.publish import build, load_results, publish
from talkbench.leaderboards.reported import UNVERIFIED, load_reported
from talkbench.manifests import get_protocol, write_table
from talkbench.metrics.spec import METRICS, base_metric
from talkbench.results.stats import bootstrap_ci

PROTO = "talkbench-v1-256"


def results_file(path: Path, method: str, psnr: list[float], *, task="self-reenact", protocol=PROTO, fid=None,
                 standard=True, lpips=None, digest=None, diversity=None) -> Path:
    rows = []
    for i, v in enumerate(psnr):
        rows.append({"metric": "psnr", "clip_id": f"clip{i}", "value": v, "n": 19})
        rows.append({"metric": "lpips", "clip_id": f"clip{i}", "value": None if lpips is None else lpips[i],
                     "null_reason": None if lpips else "missing weights: talkbench weights fetch lpips-alex", "n": 19})
    for i, v in enumerate(diversity or []):
        rows.append({"metric": "diversity", "clip_id": f"clip{i}", "value": v, "n": 19})
    rows.append({"metric": "fid", "clip_id": None, "value": fid, "n": len(psnr),
                 "null_reason": None if fid is not None else "missing weights"})
    common = {"protocol_id": protocol, "protocol_digest": digest or get_protocol(protocol).digest,
              "protocol_standard": standard, "method": method, "task": task,
              "split": "test", "talkbench_version": "0.1.0"}
    path.mkdir(parents=True, exist_ok=True)
    write_table([{**common, **r} for r in rows], path / "results.parquet", "results")
    return path / "results.parquet"


@pytest.fixture()
def runs(tmp_path):
    return [
        results_file(tmp_path / "gt", "gt", [float("inf")] * 4, fid=0.0, lpips=[0.0] * 4),
        results_file(tmp_path / "static", "static", [18.0, 19.5, 17.2, 20.1], fid=80.0, lpips=[0.3, 0.28, 0.35, 0.31]),
        results_file(tmp_path / "ours", "ours", [24.0, 26.5, 22.2, 25.1], fid=30.0, lpips=[0.12, 0.1, 0.15, 0.11]),
        results_file(tmp_path / "folder", "folder:sadtalker", [21.0, 22.0, 20.5, 23.0], fid=45.0,
                     lpips=[0.2, 0.18, 0.22, 0.19]),
        results_file(tmp_path / "nonstd", "ours-retrained-sync", [30.0, 31.0, 29.0, 30.5], fid=5.0,
                     lpips=[0.01] * 4, standard=False),
    ]


def test_bootstrap_ci_seeded_and_inf():
    x = [18.0, 19.5, 17.2, 20.1]
    a, b = bootstrap_ci(x), bootstrap_ci(list(reversed(x)) and x)
    assert a == b and a.mean == pytest.approx(np.mean(x)) and a.ci_low < a.mean < a.ci_high
    assert min(x) <= a.ci_low and a.ci_high <= max(x) and a.n == 4
    assert bootstrap_ci([float("inf")] * 3).ci_low == float("inf")
    mixed = bootstrap_ci([float("inf"), 3.0])
    assert mixed.mean == float("inf") and mixed.ci_low is None
    assert bootstrap_ci([]).mean is None


def test_ranking_rules(runs):
    board = build(load_results([str(p) for p in runs] + [str(runs[0].parent)]))  # the same file twice counts once
    (table,) = board.boards
    assert (table.task, table.protocol_id) == ("self-reenact", PROTO)
    rows = {r.method: r for r in table.rows}
    # gt (ceiling), the non-standard run and reported rows are shown but never ranked
    assert rows["gt"].cells["psnr"].rank is None and rows["ours-retrained-sync"].cells["psnr"].rank is None
    assert rows["ours"].cells["psnr"].rank == 1 and rows["folder:sadtalker"].cells["psnr"].rank == 2
    assert rows["static"].cells["psnr"].rank is None
    assert rows["ours"].cells["lpips"].rank == 1 and rows["folder:sadtalker"].cells["lpips"].rank == 2  # lower wins
    assert rows["ours"].cells["fid"].rank == 1 and rows["ours"].cells["fid"].level == "set"
    assert rows["AniTalker"].kind == "reported" and rows["AniTalker"].cells["psnr"].rank is None
    assert rows["AniTalker"].cells["psnr"].est.mean == pytest.approx(29.071)
    assert rows["ours"].n == 4
    est = rows["ours"].cells["psnr"].est
    assert est == bootstrap_ci([24.0, 26.5, 22.2, 25.1])


def test_formats(runs, tmp_path):
    out = tmp_path / "lb"
    board = publish([str(p.parent) for p in runs], str(out))
    names = sorted(p.relative_to(out).as_posix() for p in board.files)
    assert names[:4] == ["index.html", "leaderboard.csv", "leaderboard.md", "leaderboard.tex"]
    assert "plots/self-reenact__talkbench-v1-256__psnr.png" in names
    md = (out / "leaderboard.md").read_text()
    assert "## self-reenact · talkbench-v1-256" in md
    assert "| Method | n | PSNR ↑ | SSIM ↑ | LPIPS ↓ | FID ↓ |" in md
    ours = next(line for line in md.splitlines() if line.startswith("| ours |"))
    half = (bootstrap_ci([24.0, 26.5, 22.2, 25.1]).ci_high - bootstrap_ci([24.0, 26.5, 22.2, 25.1]).ci_low) / 2
    assert f"**24.45 ± {half:.3f}**" in ours and "**30.00**" in ours
    assert "<ins>21.62 ±" in next(line for line in md.splitlines() if line.startswith("| folder:sadtalker"))
    assert "| gt * | 4 | ∞ |" in md and "ours-retrained-sync †" in md
    assert "| AniTalker (reported [1,2]‡) |  | *29.07* | *0.905* | *0.079* |  |" in md
    assert UNVERIFIED in md and "arXiv:2405.03121" in md
    tex = (out / "leaderboard.tex").read_text()
    assert r"\textbf{24.45 $\pm$" in tex and r"\underline{21.62 $\pm$" in tex and r"PSNR $\uparrow$" in tex
    rows = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    gt_psnr = next(r for r in rows if r["method"] == "gt" and r["metric"] == "psnr")
    assert gt_psnr["mean"] == "inf" and gt_psnr["ranked"] == "False"
    rep = next(r for r in rows if r["kind"] == "reported" and r["metric"] == "lpips")
    assert rep["mean"] == "0.079" and "secondary reading note" in rep["source"]


def test_reported_data_file_cites_every_figure():
    sources, rows, version = load_reported()
    assert version == 1
    t1 = {r.method: r for r in rows if r.task == "upper-body"}
    assert sorted(t1) == ["ChatAnyone", "FOMM", "LIA", "MRAA", "TPSMM"]
    assert t1["TPSMM"].figures["fvd"] == (384.663, "chatanyone-t1") and t1["FOMM"].figures["fps"][0] == 87
    t3 = [r for r in rows if r.task == "audio-driven" and "chatanyone-t3" in r.source_keys]
    assert {r.method: r.figures["sync_c"][0] for r in t3} == {"SadTalker": 4.120, "AniTalker": 4.066,
                                                              "ChatAnyone": 5.668}
    for row in rows:
        for metric, (value, src) in row.figures.items():
            assert src in sources and base_metric(metric) in METRICS
            if row.method in ("AniTalker", "MakeItTalk") and "chatanyone" not in src:
                assert sources[src].status == UNVERIFIED  # AniTalker figures: secondary sources, flagged


def test_metrics_without_a_direction_are_shown_not_ranked(tmp_path):
    """Diversity has no direction in the registry: the table shows it, bolds nobody, and says no arrow."""
    a = results_file(tmp_path / "a", "a", [20.0, 21.0], diversity=[0.01, 0.02])
    b = results_file(tmp_path / "b", "b", [22.0, 23.0], diversity=[0.05, 0.06])
    board = publish([str(a), str(b)], str(tmp_path / "lb"), formats=["md"], with_reported=False)
    (table,) = board.boards
    assert "diversity" in table.metrics
    assert {r.method: r.cells["diversity"].rank for r in table.rows} == {"a": None, "b": None}
    assert {r.method: r.cells["psnr"].rank for r in table.rows} == {"a": 2, "b": 1}
    md = (tmp_path / "lb" / "leaderboard.md").read_text()
    assert "| Method | n | PSNR ↑ | LPIPS ↓ | FID ↓ | Diversity |" in md
    assert "| b | 2 | **22.50 ± 0.500** | null | null | 0.055 ± 0.005 |" in md  # no bold: diversity is not ranked


def test_one_protocol_id_with_two_digests_is_refused(runs, tmp_path, capsys):
    """Rows of one protocol id made under another definition (say another resize kernel) never share a table."""
    from dataclasses import replace

    other_def = replace(get_protocol(PROTO), resize="pil-lanczos")
    assert other_def.digest != get_protocol(PROTO).digest  # frame reading is part of the protocol's identity
    odd = results_file(tmp_path / "odd", "odd", [21.0, 22.0], digest=other_def.digest)
    out = tmp_path / "lb"
    code = main(["publish", str(runs[1]), str(odd), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0
    assert f"protocol {PROTO!r} has two definitions: digest {get_protocol(PROTO).digest}" in err
    assert other_def.digest in err and not out.exists()
    # the same digest publishes
    assert main(["publish", str(runs[1]), str(runs[2]), "--out", str(out), "--quiet"]) == 0


def test_bad_inputs_one_line_nothing_written(runs, tmp_path, capsys):
    other = results_file(tmp_path / "other", "ours", [20.0], protocol="talkbench-v1-512")
    out = tmp_path / "lb"
    code = main(["publish", str(runs[1]), str(other), "--protocol", PROTO, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0
    assert "results of protocol 'talkbench-v1-512' cannot go into a 'talkbench-v1-256' table" in err
    copy = tmp_path / "copy" / "results.parquet"
    copy.parent.mkdir()
    shutil.copy(runs[2], copy)
    code = main(["publish", str(runs[2]), str(copy), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "appears in both" in err
    code = main(["publish", str(tmp_path / "nothing"), "--out", str(out)])
    assert code == 1 and "no results file" in capsys.readouterr().err
    code = main(["publish", str(runs[1]), "--format", "md,pdf", "--out", str(out)])
    assert code == 1 and "unknown format 'pdf'" in capsys.readouterr().err
    assert not out.exists()
    # two protocols without --protocol: two tables, never mixed
    board = build(load_results([str(runs[1]), str(other)]))
    assert [(b.task, b.protocol_id) for b in board.boards] == [("self-reenact", PROTO),
                                                               ("self-reenact", "talkbench-v1-512")]


def _chromium(*args: str) -> str:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _methods_in_order(dom: str, table_id: str) -> list[str]:
    table = dom[dom.index(f'id="{table_id}"'):]
    table = table[: table.index("</table>")]
    return re.findall(r'<tr class="[^"]*" data-method="([^"]+)"', table)


def test_html_renders_and_sorts_in_chromium(runs, tmp_path):
    out = tmp_path / "lb"
    publish([str(p) for p in runs], str(out), formats=["html"])
    page = (out / "index.html").as_uri()
    tid = "t-self-reenact__talkbench-v1-256"
    dom = _chromium("--dump-dom", page)
    assert _methods_in_order(dom, tid) == ["folder:sadtalker", "gt", "ours", "ours-retrained-sync", "static",
                                           "AniTalker"]  # as written: measured by name, then reported
    assert 'src="plots/self-reenact__talkbench-v1-256__psnr.png"' in dom
    # the page's own script sorts on load from the URL hash; empty cells stay last
    dom = _chromium("--dump-dom", f"{page}#sort={tid}:psnr:desc")
    assert 'data-sorted="psnr:desc"' in dom
    # reported rows sort in their own band, below the measured ones (issue 12)
    assert _methods_in_order(dom, tid) == ["gt", "ours-retrained-sync", "ours", "folder:sadtalker", "static",
                                           "AniTalker"]
    dom = _chromium("--dump-dom", f"{page}#sort={tid}:lpips:asc")
    assert _methods_in_order(dom, tid)[:2] == ["gt", "ours-retrained-sync"]
    assert _methods_in_order(dom, tid)[-2:] == ["static", "AniTalker"]
    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,900", f"{page}#sort={tid}:psnr:desc")
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (900, 1200) and img.std() > 10  # something was drawn, not a blank page
