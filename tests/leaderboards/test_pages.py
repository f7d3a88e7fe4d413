"""The leaderboard page and the qualitative page, checked in headless Chromium: empty cells, legible plots, a lone
ranked row, first click best first, the URL hash, the reported band; synchronised videos, error maps, frame strip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from talkbench.leaderboards.plots import MIN_FONT_PX, PLOT_WIDTH_PX
from talkbench.leaderboards.publish import publish
from talkbench.manifests import get_protocol, write_table

PROTO = "talkbench-v1-256"
TID = "t-self-reenact__talkbench-v1-256"


def _chromium(*args: str) -> str:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
               f"--user-data-dir={profile}", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _run_in_page(page: Path, script: str, budget_ms: int = 3000) -> dict:
    """Load a copy of ``page`` (same folder, so relative links hold) with ``script`` appended; the script stores
    its findings with ``report(obj)``; returns them."""
    harness = page.with_name(f"_harness_{page.name}")
    text = page.read_text().replace("</body>", "<script>function report(o){document.body.dataset.result="
                                               "JSON.stringify(o);}\n" + script + "</script></body>")
    harness.write_text(text)
    try:
        dom = _chromium(f"--virtual-time-budget={budget_ms}", "--dump-dom", harness.as_uri())
    finally:
        harness.unlink()
    found = re.search(r'data-result="([^"]*)"', dom)
    assert found, "the harness script did not report"
    import html

    return json.loads(html.unescape(found.group(1)))


def _results(path: Path, method: str, psnr: list[float | None], lpips: list[float] | None = None) -> Path:
    rows = []
    for i, v in enumerate(psnr):
        rows.append({"metric": "psnr", "clip_id": f"clip{i}", "value": v, "n": 19,
                     "null_reason": None if v is not None else "bad_output_shape"})
        rows.append({"metric": "lpips", "clip_id": f"clip{i}", "value": None if lpips is None else lpips[i],
                     "null_reason": None if lpips else "missing weights: talkbench weights fetch lpips-alex", "n": 19})
    common = {"protocol_id": PROTO, "protocol_digest": get_protocol(PROTO).digest, "protocol_standard": True,
              "method": method, "task": "self-reenact", "split": "test", "talkbench_version": "0.1.0"}
    path.mkdir(parents=True, exist_ok=True)
    write_table([{**common, **r} for r in rows], path / "results.parquet", "results")
    return path / "results.parquet"


@pytest.fixture(scope="module")
def board_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pages")
    runs = [_results(root / "gt", "gt", [float("inf")] * 3, [0.0] * 3),
            _results(root / "ours", "ours", [28.0, 29.0, 30.0], [0.10, 0.12, 0.11]),
            _results(root / "static", "static", [20.0, 21.0, 22.0], None)]
    out = root / "lb"
    publish([str(p) for p in runs], str(out), formats=["html"])
    return out


def test_leaderboard_cells_plots_and_lone_ranked_rows(board_dir):
    dom = _chromium("--dump-dom", (board_dir / "index.html").as_uri())
    table = dom[dom.index(f'id="{TID}"'):]
    table = table[: table.index("</table>")]
    ours = re.search(r'<tr class="measured" data-method="ours">(.*?)</tr>', table, re.S).group(1)
    static = re.search(r'<tr class="measured" data-method="static">(.*?)</tr>', table, re.S).group(1)
    # static has no LPIPS: the cell shows "–" with the reason, never a blank or "null"
    assert re.search(r'<td data-value="" class="empty" title="missing weights[^"]*">–</td>', static), static
    assert "null" not in table.replace("null_reason", "")
    # LPIPS has one ranked value (ours): a lone row is not "best"; PSNR has two ranked rows, ours is bold
    lpips_cell = re.findall(r"<td[^>]*>(.*?)</td>", ours)[3]
    assert "<b>" not in lpips_cell and "<u>" not in lpips_cell
    assert "<b>" in re.findall(r"<td[^>]*>(.*?)</td>", ours)[2]
    # plots are shown at their pixel width, so their smallest text is ≥ 12 px on screen
    from PIL import Image

    srcs = re.findall(r'<img src="(plots/[^"]+)" alt="[^"]*" width="(\d+)"', dom)
    assert srcs and MIN_FONT_PX >= 12
    for src, width in srcs:
        assert Image.open(board_dir / src).size[0] == int(width) == PLOT_WIDTH_PX


def test_every_plot_lists_gt_and_reported_rows_the_same_way(board_dir):
    """PSNR of gt is ∞ (not drawable) and LPIPS of gt is 0: gt keeps its line in both plots, in the same place."""
    from PIL import Image

    heights = {m: Image.open(board_dir / "plots" / f"self-reenact__{PROTO}__{m}.png").size[1] for m in ("psnr", "lpips")}
    assert heights["psnr"] == heights["lpips"]  # same rows → same height


def test_first_click_sorts_best_first_updates_the_hash_and_keeps_the_reported_band(board_dir):
    script = f"""
    const t = document.getElementById('{TID}');
    const order = () => Array.from(t.tBodies[0].rows).map(r => r.dataset.method);
    const th = k => t.tHead.querySelector('th[data-key="' + k + '"]');
    th('psnr').click(); const psnr1 = order(); const hash1 = location.hash;
    th('psnr').click(); const psnr2 = order();
    th('lpips').click(); const lpips1 = order(); const hash2 = location.hash;
    report({{psnr1, psnr2, lpips1, hash1, hash2,
             kinds: Array.from(t.tBodies[0].rows).map(r => r.classList.contains('reported') ? 'r' : 'm').join('')}});
    """
    got = _run_in_page(board_dir / "index.html", script)
    measured_psnr = [m for m in got["psnr1"] if m in ("gt", "ours", "static")]
    assert measured_psnr == ["gt", "ours", "static"]  # higher is better: first click puts the best first
    assert got["hash1"] == f"#sort={TID}:psnr:desc" and got["hash2"] == f"#sort={TID}:lpips:asc"
    assert [m for m in got["psnr2"] if m in ("gt", "ours", "static")] == ["static", "ours", "gt"]
    assert [m for m in got["lpips1"] if m in ("gt", "ours", "static")] == ["gt", "ours", "static"]  # lower first
    assert re.fullmatch(r"m+r*", got["kinds"]), got["kinds"]  # reported rows stay below, in their own band


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """`bench run --method static` on two real clips, published: the qualitative page comes from its folder."""
    from talkbench.cli.bench import main

    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_conftest_pages",
                                                  Path(__file__).resolve().parents[1] / "bench" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = tmp_path_factory.mktemp("qual")
    manifest = module.build_manifest(root / "data", n=12)
    assert main(["run", "--method", "static", "--task", "self-reenact", "--manifest", str(manifest), "--out",
                 str(root / "runs" / "static"), "--limit", "2", "--metrics", "psnr", "--quiet", "--bootstrap",
                 "10"]) == 0
    assert main(["publish", str(root / "runs" / "static"), "--out", str(root / "lb"), "--format", "html",
                 "--quiet", "--no-reported"]) == 0
    return root


def test_qualitative_page_per_run_with_synchronised_videos_error_map_and_strip(real_run):
    lb = real_run / "lb"
    index = (lb / "index.html").read_text()
    link = re.search(r'<a class="qual" href="(qualitative/[^"]+\.html)">videos</a>', index)
    assert link, "index.html links the run's qualitative page"
    page = lb / link.group(1)
    text = page.read_text()
    assert text.count('class="clip-row"') == 2 and text.count("<video") == 6  # ground truth, method, error
    for src in re.findall(r'<(?:video|img)[^>]* src="([^"]+)"', text):
        assert (page.parent / src).resolve().is_file(), src
    from PIL import Image

    strip = np.asarray(Image.open(next(lb.glob("qualitative/*/strip.png"))))
    assert strip.shape[0] == 6 * (112 + 4) + 4 and strip.std() > 10  # 2 clips × (truth, output, error)
    got = _run_in_page(page, """
    const btn = document.getElementById('play-all');
    btn.click();
    setTimeout(() => {
      const states = Array.from(document.querySelectorAll('tr.clip-row')).map(r => r.dataset.state);
      const paused = Array.from(document.querySelectorAll('video')).map(v => v.paused);
      const ready = Array.from(document.querySelectorAll('video')).map(v => v.readyState);
      btn.click();  // pause all, then seek the first row's leading video: the others follow
      const row = document.querySelector('tr.clip-row');
      row.querySelector('video.lead').currentTime = 0.2;
      // the followers seek asynchronously: wait until they are with the lead, or 4 s (a loaded machine is slow)
      const t0 = Date.now();
      const poll = () => {
        const times = Array.from(row.querySelectorAll('video')).map(v => v.currentTime);
        if ((Math.max(...times) - Math.min(...times) < 0.05 && Math.max(...times) > 0.1) || Date.now() - t0 > 4000) {
          report({states, paused, ready,
                  after: Array.from(document.querySelectorAll('tr.clip-row')).map(r => r.dataset.state), times});
        } else { setTimeout(poll, 100); }
      };
      setTimeout(poll, 200);
    }, 400);
    """, budget_ms=9000)
    assert got["states"] == ["playing", "playing"] and got["after"] == ["paused", "paused"]
    assert all(r >= 1 for r in got["ready"]), got  # every video decodes (metadata known)
    assert not any(got["paused"]), got
    times = got["times"]  # a seek of the leading video moves the whole row
    assert max(times) - min(times) < 0.05 and max(times) > 0.1, got
