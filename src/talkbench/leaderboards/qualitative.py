"""The qualitative page of a run: look at the videos before the numbers.

For each scored clip, one row: the source portrait | the ground truth (the driver for cross-reenactment) | the
method's output | an error map |output − ground truth| (reenactment tasks with a ground truth), as ``<video>``
elements that play, pause and seek together (one button per row, one for the page), plus ``strip.png``: a few frames
of each row for print. Written by ``publish`` (HTML format) beside index.html, which links it from the method's row.

Everything is read from the run folder (run.json, results.parquet, videos/) and the manifest it names; a run folder
without videos (a results file alone) gets no page.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

import numpy as np

from ..manifests.io import atomic_write_bytes, atomic_write_text, read_table

MAX_CLIPS = 12  # rows on a page (the first by clip_id); the strip shows the first STRIP_CLIPS
STRIP_CLIPS = 4
STRIP_FRAMES = 5
THUMB = 112
ERROR_GAIN = 4.0  # |difference| × 4, clipped: a 64-level error is white

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em} .meta{color:#555;font-size:.9em}
table.qual{border-collapse:collapse} table.qual th{font-size:.9em;text-align:left;padding:.2em .4em;color:#444}
table.qual td{padding:.3em .4em;vertical-align:top;border-top:1px solid #ddd}
table.qual video,table.qual img.src{width:224px;height:224px;background:#111;display:block}
.clip{font-size:.85em;max-width:14em;word-break:break-all} .clip small{color:#666}
button{font-size:1em;padding:.3em .9em;margin:.2em 0;cursor:pointer}
img.strip{max-width:100%;border:1px solid #ccc}
.legend{font-size:.85em;color:#555}
@media print{video,button,.screen{display:none} .print{display:block}}
@media screen{.print-only{display:none}}
"""

JS = r"""
// Each row's videos play, pause and seek together; the page button drives every row.
function videos(row) { return Array.from(row.querySelectorAll('video')); }
function setState(row, playing) {
  row.dataset.state = playing ? 'playing' : 'paused';
  const b = row.querySelector('button.sync'); if (b) b.textContent = playing ? '❚❚ pause' : '▶ play';
}
function play(row, on) {
  const vs = videos(row); if (!vs.length) return;
  const lead = row.querySelector('video.lead') || vs[0], t = lead.currentTime;
  vs.forEach(v => { if (Math.abs(v.currentTime - t) > 0.04) v.currentTime = t;
                    if (on) { const p = v.play(); if (p) p.catch(() => {}); } else v.pause(); });
  setState(row, on);
}
document.querySelectorAll('tr.clip-row').forEach(row => {
  setState(row, false);
  row.querySelector('button.sync').addEventListener('click', () => play(row, row.dataset.state !== 'playing'));
  // the method's video (the one with sound) leads: a seek moves the others, and drift over 0.1 s is corrected
  const vs = videos(row), lead = row.querySelector('video.lead') || vs[0];
  const rest = vs.filter(v => v !== lead);
  // 'seeking' fires as soon as the lead is asked to move (its currentTime is already the target), so the others start
  // at once instead of after the lead's decode; 'seeked' repeats it in case the lead moved again meanwhile
  const follow = () => rest.forEach(v => { if (v.currentTime !== lead.currentTime) v.currentTime = lead.currentTime; });
  lead.addEventListener('seeking', follow);
  lead.addEventListener('seeked', follow);
  lead.addEventListener('timeupdate', () => rest.forEach(v => {
    if (!lead.paused && Math.abs(v.currentTime - lead.currentTime) > 0.1) v.currentTime = lead.currentTime; }));
  lead.addEventListener('ended', () => { vs.forEach(v => { v.pause(); v.currentTime = 0; }); setState(row, false); });
  vs.forEach(v => v.addEventListener('loadedmetadata', () => {
    row.dataset.loaded = String(videos(row).filter(x => x.readyState >= 1).length); }));
});
const all = document.getElementById('play-all');
all.addEventListener('click', () => {
  const on = all.dataset.state !== 'playing';
  document.querySelectorAll('tr.clip-row').forEach(row => play(row, on));
  all.dataset.state = on ? 'playing' : 'paused'; all.textContent = on ? '❚❚ pause all' : '▶ play all';
});
"""


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(Path(target).resolve(), Path(start).resolve())).as_posix()


def _jobs(run_dir: Path, info: dict) -> list[dict]:
    """One job per clip with a generated video: clip_id, source clip, ground-truth/driver path, output path."""
    results = read_table(run_dir / "results.parquet", "results").to_pylist()
    sources = {}
    for r in results:
        if r.get("clip_id") and r["clip_id"] not in sources:
            extra = json.loads(r["extra"]) if r.get("extra") else {}
            sources[r["clip_id"]] = extra.get("source_clip_id", r["clip_id"])
    manifest = Path(info["manifest"])
    paths = {}
    if manifest.is_file():
        for c in read_table(manifest, "clips").to_pylist():
            paths[c["clip_id"]] = (manifest.parent / c["path"]).resolve()
    jobs = []
    for clip_id in sorted(sources):
        out = run_dir / "videos" / f"{clip_id}.mp4"
        if out.is_file() and clip_id in paths and sources[clip_id] in paths:
            jobs.append({"clip_id": clip_id, "source_clip_id": sources[clip_id], "truth": paths[clip_id],
                         "source": paths[sources[clip_id]], "output": out})
    return jobs[:MAX_CLIPS]


def _colormap(err: np.ndarray) -> np.ndarray:
    """(T, H, W) in [0, 1] → (T, H, W, 3) uint8 with matplotlib's magma (perceptually ordered, prints in grey)."""
    from matplotlib import colormaps

    lut = (colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    return lut[np.clip(err * 255, 0, 255).astype(np.uint8)]


def _error_frames(output: np.ndarray, truth: np.ndarray) -> np.ndarray:
    n = min(len(output), len(truth))
    diff = np.abs(output[:n].astype(np.float32) - truth[:n].astype(np.float32)).mean(axis=3) / 255.0
    return _colormap(np.clip(diff * ERROR_GAIN, 0, 1))


def _thumb(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    ys = (np.arange(THUMB) * h / THUMB).astype(int)
    xs = (np.arange(THUMB) * w / THUMB).astype(int)
    return frame[ys][:, xs]


def _strip(rows: list[list[np.ndarray]]) -> bytes:
    """Rows of thumbnails → one PNG with 4 px white gaps."""
    gap = 4
    n_cols = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (THUMB + gap) + gap, n_cols * (THUMB + gap) + gap, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = gap + i * (THUMB + gap), gap + j * (THUMB + gap)
            canvas[y:y + THUMB, x:x + THUMB] = _thumb(img)
    return _png(canvas)


def _png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def write_qualitative(results_file: Path, out: Path, name: str) -> Path | None:
    """Write OUT/qualitative/<run>.html (+ its error maps and strip.png); None when the run has no videos."""
    from ..media import read_frames, write_video

    run_dir = Path(results_file).parent
    try:
        info = json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    jobs = _jobs(run_dir, info)
    if not jobs:
        return None
    task = info.get("task", "")
    has_truth = task != "cross-reenact"
    key = slug(f"{name}__{task}__{run_dir.name}")
    folder = out / "qualitative" / key
    page = out / "qualitative" / f"{key}.html"
    esc = html.escape
    strip_rows, body = [], []
    for k, job in enumerate(jobs):
        output = read_frames(job["output"])
        truth = read_frames(job["truth"], size=(output.shape[2], output.shape[1]))
        source = read_frames(job["source"], size=(output.shape[2], output.shape[1]), duration=0.2)[0]
        src_png = folder / f"{job['clip_id']}_source.png"
        atomic_write_bytes(src_png, _png(source))
        mid = min(len(output), len(truth)) // 2  # posters: the middle frame, the same instant in every column

        def poster(kind: str, frame: np.ndarray) -> str:
            path = folder / f"{job['clip_id']}_{kind}.png"
            atomic_write_bytes(path, _png(frame))
            return esc(_rel(path, page.parent))

        cells = [f'<td><img class="src" src="{esc(_rel(src_png, page.parent))}" alt="source portrait"></td>',
                 f'<td><video muted preload="metadata" playsinline poster="{poster("truth", truth[mid])}" '
                 f'src="{esc(_rel(job["truth"], page.parent))}"></video></td>',
                 f'<td><video class="lead" preload="metadata" playsinline poster="{poster("output", output[mid])}" '
                 f'src="{esc(_rel(job["output"], page.parent))}"></video></td>']
        err = None
        if has_truth:
            err = _error_frames(output, truth)
            err_mp4 = folder / f"{job['clip_id']}_error.mp4"
            if not err_mp4.exists():
                write_video(err_mp4, err, 25.0)
            cells.append(f'<td><video muted preload="metadata" playsinline poster="{poster("error", err[mid])}" '
                         f'src="{esc(_rel(err_mp4, page.parent))}"></video></td>')
        clip_link = f'<a href="{esc(_rel(job["truth"], page.parent))}">{esc(job["clip_id"])}</a>'
        extra = "" if job["source_clip_id"] == job["clip_id"] else f"<br><small>source: {esc(job['source_clip_id'])}</small>"
        body.append(f'<tr class="clip-row" id="clip-{esc(job["clip_id"])}" data-clip="{esc(job["clip_id"])}">'
                    f'<td class="clip">{clip_link}{extra}<br><small>{len(output)} frames · '
                    f'{len(output) / 25:.1f} s</small><br><button class="sync">▶ play</button></td>'
                    + "".join(cells) + "</tr>")
        if k < STRIP_CLIPS:
            idx = np.linspace(0, min(len(output), len(truth)) - 1, STRIP_FRAMES).round().astype(int)
            strip_rows.append([source] + [truth[i] for i in idx])
            strip_rows.append([source] + [output[i] for i in idx])
            if err is not None:
                strip_rows.append([np.full_like(source, 255)] + [err[i] for i in idx])
    strip = folder / "strip.png"
    atomic_write_bytes(strip, _strip(strip_rows))
    truth_name = "ground truth" if has_truth else "driver"
    heads = ["clip", "source", truth_name, name] + (["error |output − ground truth| ×4"] if has_truth else [])
    strip_rows_text = f"source, then {STRIP_FRAMES} frames: {truth_name} / {name}" + (" / error" if has_truth else "")
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{esc(name)} · {esc(task)} · videos</title>", f"<style>{CSS}</style></head><body>",
             f'<p class="screen"><a href="../index.html">← leaderboard</a></p>',
             f"<h1>{esc(name)} · {esc(task)}</h1>",
             f'<p class="meta">{len(jobs)} clips · protocol {esc(str(info.get("protocol_id")))} · run folder '
             f'<a href="{esc(_rel(run_dir, page.parent))}">{esc(run_dir.name)}</a></p>',
             '<p class="screen"><button id="play-all">▶ play all</button> '
             '<span class="legend">each row plays, pauses and seeks together; sound from the method\'s video'
             + (". Error map: mean absolute difference per pixel ×4, magma colour map (black = equal)."
                if has_truth else "") + "</span></p>",
             '<table class="qual"><thead><tr>' + "".join(f"<th>{esc(h)}</th>" for h in heads) + "</tr></thead><tbody>",
             *body, "</tbody></table>",
             f'<h2>Frame strip</h2><p class="legend">{esc(strip_rows_text)} (first {min(len(jobs), STRIP_CLIPS)} '
             f'clips), for print.</p>',
             f'<img class="strip" src="{esc(_rel(strip, page.parent))}" alt="frame strip">',
             f"<script>{JS}</script></body></html>"]
    atomic_write_text(page, "\n".join(parts))
    return page
