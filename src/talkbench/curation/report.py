"""Curation report: DIR/report.html plus PNG plots in DIR/report/, built only from the manifests and stage stats.

The funnel reads ``DIR/stats/<stage>/summary.json`` (rows in/out, labelled by ``stages.STAGES``) and the manifests;
drops per reason come from ``rejections.parquet``. ``curate report DIR`` rebuilds it at any time.

Only the kept clips are read whole (the report lists each of them); sources, videos and rejections — a million rows
at VoxCeleb2 size — are counted from the columns the report needs, one row group (or ``REPORT_CHUNK_ROWS`` rows) at
a time, so the report's memory does not grow with the number of candidates.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import ManifestError
from ..manifests.io import atomic_write_text, read_rows
from ..manifests.stream import iter_table_chunks, open_table
from .stages import STAGES

PLOTS = ("funnel", "pose", "face_size", "duration", "clips_per_identity", "contact_sheet")
# Funnel steps counted in sources/videos (one source is one video); every other step counts clips (spans of video).
VIDEO_STEPS = ("sources", "downloaded", "segments")
UNITS = {"videos": "sources and videos", "clips": "clips"}


def funnel_unit(step: str) -> str:
    return "videos" if step in VIDEO_STEPS else "clips"


def _summary(out_dir: Path, stage: str) -> dict | None:
    path = out_dir / "stats" / stage / "summary.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _rows(out_dir: Path, name: str) -> list[dict] | None:
    path = out_dir / f"{name}.parquet"
    return read_rows(path, name) if path.exists() else None


REPORT_CHUNK_ROWS = 100_000


def _counts(out_dir: Path, name: str, columns: list[str]) -> Counter | None:
    """Counts of the value tuples of ``columns`` in DIR/name.parquet, read a chunk at a time (None: no file)."""
    path = out_dir / f"{name}.parquet"
    if not path.exists():
        return None
    counts: Counter = Counter()
    for chunk in iter_table_chunks(path, name, columns=columns, batch_size=REPORT_CHUNK_ROWS):
        counts.update(zip(*(chunk.column(c).to_pylist() for c in columns)))
    return counts


def _num_rows(out_dir: Path, name: str) -> int | None:
    path = out_dir / f"{name}.parquet"
    return open_table(path, name).metadata.num_rows if path.exists() else None


def funnel(out_dir: Path, clips: list[dict], downloaded: int | None, sources: int | None) -> list[tuple]:
    """[(step, count)] from sources to kept clips; steps whose numbers are unknown are left out."""
    steps = []
    if sources is not None:
        steps.append(("sources", sources))
    if downloaded is not None:
        steps.append(("downloaded", downloaded))
    for stage in STAGES:
        label_in, label_out = stage.funnel
        summary = _summary(out_dir, stage.name) if (label_in or label_out) else None
        if summary:
            if label_in:
                steps.append((label_in, summary["rows_in"]))
            if label_out:
                steps.append((label_out, summary["rows_out"]))
    steps.append(("kept", len(clips)))
    return steps


def _hist(ax, values, title, xlabel, bins=20):
    from matplotlib.ticker import MaxNLocator

    values = [v for v in values if v is not None]
    if values:
        ax.hist(values, bins=min(bins, max(3, len(set(values)))), color="#4477aa", edgecolor="white")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("clips")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts are whole clips


def _save(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    tmp.replace(path)


def contact_sheet(out_dir: Path, clips: list[dict], thumb: int = 128, cols: int = 6) -> np.ndarray | None:
    """First frame of every kept clip, tiled (clip_id order)."""
    from ..media import iter_frames

    thumbs = []
    for clip in clips:
        path = out_dir / clip["path"] if clip.get("path") else None
        if path is None or not path.exists():
            continue
        for chunk in iter_frames(path, size=thumb, duration=0.04, chunk=1):
            thumbs.append(chunk[0])
            break
    if not thumbs:
        return None
    rows = (len(thumbs) + cols - 1) // cols
    sheet = np.full((rows * thumb, min(cols, len(thumbs)) * thumb, 3), 255, np.uint8)
    for i, t in enumerate(thumbs):
        r, c = divmod(i, cols)
        sheet[r * thumb:(r + 1) * thumb, c * thumb:(c + 1) * thumb] = t
    return sheet


def make_plots(out_dir: Path, clips: list[dict], steps: list[tuple], drops: Counter) -> dict[str, str]:
    """Write the PNG plots into DIR/report/; returns {plot: relative path}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = out_dir / "report"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}

    from matplotlib.ticker import MaxNLocator

    # one unit per chart: sources and videos, then clips; drops by reason beside them
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5), gridspec_kw={"width_ratios": [0.8, 1, 1.3]})
    for ax, unit, color in ((axes[0], "videos", "#117733"), (axes[1], "clips", "#228833")):
        part = [(s, n) for s, n in steps if funnel_unit(s) == unit]
        ax.barh([s for s, _ in part][::-1], [n for _, n in part][::-1], color=color)
        for i, (_, n) in enumerate(part[::-1]):
            ax.text(n, i, f" {n}", va="center")
        ax.set_title(f"funnel: {UNITS[unit]}")
        ax.set_xlabel(UNITS[unit] if unit == "clips" else "sources / videos")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    reasons = sorted(drops.items(), key=lambda kv: (-kv[1], kv[0]))
    if reasons:
        axes[2].barh([f"{s}: {r}" for (s, r), _ in reasons][::-1], [n for _, n in reasons][::-1], color="#cc6677")
        axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        axes[2].text(0.5, 0.5, "no rejections", ha="center", va="center", transform=axes[2].transAxes)
    axes[2].set_title("drops by stage: reason")
    axes[2].set_xlabel("items dropped (videos or clips, by stage)")
    fig.tight_layout()
    _save(fig, folder / "funnel.png")
    plt.close(fig)
    written["funnel"] = "report/funnel.png"

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, angle in zip(axes, ("yaw", "pitch", "roll")):
        _hist(ax, [c.get(f"{angle}_max") for c in clips], f"max |{angle}| per clip", "degrees")
    fig.tight_layout()
    _save(fig, folder / "pose.png")
    plt.close(fig)
    written["pose"] = "report/pose.png"

    for name, key, title, xlabel in (("face_size", "face_size_median", "median face size", "pixels (source)"),
                                     ("duration", None, "clip duration", "seconds")):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        values = ([c.get(key) for c in clips] if key else
                  [c["end_s"] - c["start_s"] for c in clips if c.get("end_s") is not None])
        _hist(ax, values, title, xlabel)
        fig.tight_layout()
        _save(fig, folder / f"{name}.png")
        plt.close(fig)
        written[name] = f"report/{name}.png"

    fig, ax = plt.subplots(figsize=(6, 3.5))
    per_id = Counter(c["identity_id"] for c in clips)
    counts = Counter(per_id.values())
    if counts:
        xs = sorted(counts)
        ax.bar([str(x) for x in xs], [counts[x] for x in xs], color="#aa3377")
    ax.set_title("clips per identity")
    ax.set_xlabel("clips")
    ax.set_ylabel("identities")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    _save(fig, folder / "clips_per_identity.png")
    plt.close(fig)
    written["clips_per_identity"] = "report/clips_per_identity.png"

    sheet = contact_sheet(out_dir, clips)
    if sheet is not None:
        from PIL import Image

        tmp = folder / ".contact_sheet.png.tmp"
        Image.fromarray(sheet).save(tmp, format="PNG")
        tmp.replace(folder / "contact_sheet.png")
        written["contact_sheet"] = "report/contact_sheet.png"
    return written


class Link(str):
    """A table cell shown as a link to itself (a path relative to the report)."""


def _cell(v) -> str:
    if isinstance(v, Link):
        return f'<a href="{html.escape(v)}">{html.escape(v)}</a>'
    return html.escape("–" if v is None or v == "" else str(v))


def _table(headers, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _thumbs(out_dir: Path, clips: list[dict], thumb: int = 160) -> str:
    """The contact sheet as captioned figures: first frame, identity, clip, duration, pose; each links its clip."""
    from PIL import Image

    from ..media import iter_frames

    folder = out_dir / "report" / "thumbs"
    folder.mkdir(parents=True, exist_ok=True)
    figures = []
    for c in clips:
        path = out_dir / c["path"] if c.get("path") else None
        if path is None or not path.exists():
            continue
        png = folder / f"{c['clip_id']}.png"
        if not png.exists():
            for chunk in iter_frames(path, size=thumb, duration=0.04, chunk=1):
                tmp = png.with_name(f".{png.name}.tmp")
                Image.fromarray(chunk[0]).save(tmp, format="PNG")
                tmp.replace(png)
                break
        if not png.exists():
            continue
        seconds = (c["end_s"] - c["start_s"]) if c.get("end_s") is not None else None
        pose = (f"max |yaw| {c['yaw_max']:.0f}°, |pitch| {c['pitch_max']:.0f}°, |roll| {c['roll_max']:.0f}°"
                if c.get("yaw_max") is not None else "pose –")
        figures.append(
            f'<figure><a href="{html.escape(c["path"])}"><img src="report/thumbs/{html.escape(png.name)}" '
            f'width="{thumb}" height="{thumb}" alt="first frame of {html.escape(c["clip_id"])}"></a>'
            f'<figcaption><b>{html.escape(str(c["identity_id"]))}</b> · {html.escape(c["split"] or "–")}<br>'
            f'<a href="{html.escape(c["path"])}">{html.escape(c["clip_id"][:13])}</a>'
            f'{f" · {seconds:.1f} s" if seconds is not None else ""}<br>{html.escape(pose)}</figcaption></figure>')
    return '<div class="sheet">' + "".join(figures) + "</div>"


def _identity_note(out_dir: Path, per_id: Counter, drops: Counter) -> str:
    """Say why the clustering's identity count differs from the kept one (identities left without a clip)."""
    summary = _summary(out_dir, "cluster")
    counters = summary["steps"][0].get("counters", {}) if summary and summary.get("steps") else {}
    found = counters.get("identities")
    if found is None or found == len(per_id):
        return ""
    reasons: Counter = Counter()
    for (stage, reason), n in drops.items():
        if stage in ("select", "export", "split"):
            reasons[reason] += n
    why = ", ".join(f"{r} ×{n}" for r, n in sorted(reasons.items())) or "no clip selected"
    return (f"<p class='note'>Identities: clustering found {found} among {summary['rows_in']} candidate clips; "
            f"{len(per_id)} keep at least one clip, {found - len(per_id)} lost all theirs after clustering "
            f"(clips dropped by select/export: {html.escape(why)}).</p>")


def build_report(out_dir: str | Path) -> Path:
    """(Re)build DIR/report.html and DIR/report/*.png from DIR's manifests and stats; returns the HTML path."""
    out_dir = Path(out_dir)
    clips = _rows(out_dir, "clips")
    if clips is None:
        raise ManifestError(f"{out_dir}: no clips.parquet; run `curate build-manifest` first")
    drops = _counts(out_dir, "rejections", ["stage", "reason"]) or Counter()
    videos = _counts(out_dir, "videos", ["status"])
    steps = funnel(out_dir, clips, None if videos is None else videos[("ok",)], _num_rows(out_dir, "sources"))
    plots = make_plots(out_dir, clips, steps, drops)

    per_id = Counter(c["identity_id"] for c in clips)
    ident_rows = []
    for ident in sorted(per_id):
        members = [c for c in clips if c["identity_id"] == ident]
        labels = sorted({c["source_label"] for c in members if c.get("source_label")})
        ident_rows.append((ident, per_id[ident], members[0]["split"], ", ".join(labels),
                           f"{min(c['identity_score'] for c in members if c['identity_score'] is not None):.3f}"
                           if any(c["identity_score"] is not None for c in members) else ""))
    split_counts = Counter(c["split"] for c in clips)
    backends = sorted({(c["detector_backend"], c["identity_backend"]) for c in clips})
    clip_rows = [(c["clip_id"], c["source_id"], c["identity_id"], c["split"], f"{c['start_s']:.2f}–{c['end_s']:.2f}",
                  f"{c['end_s'] - c['start_s']:.2f}", c["n_frames"], c["crop_size"], c["crop_padded"],
                  f"{c['yaw_max']:.1f} / {c['pitch_max']:.1f} / {c['roll_max']:.1f}", Link(c["path"]))
                 for c in clips]
    identity_note = _identity_note(out_dir, per_id, drops)
    notes = []
    for stage in STAGES:
        summary = _summary(out_dir, stage.name) if stage.note else None
        if summary and summary.get("steps"):
            notes.append(f"<p>{html.escape(stage.note(summary))}</p>")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>talkbench curation report</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}img{max-width:100%;margin:0.5em 0}"
        ".sheet{display:flex;flex-wrap:wrap;gap:10px}.sheet figure{margin:0;width:170px;font-size:13px}"
        ".sheet img{margin:0;display:block}.note{background:#f6f6f0;padding:.5em 1em;border-left:3px solid #bb9}</style>",
        "</head><body><h1>talkbench curation report</h1>",
        f"<p>{len(clips)} clips, {len(per_id)} identities kept, split (clips): "
        + ", ".join(f"{k} {v}" for k, v in sorted(split_counts.items()))
        + (f"; backends (detector / identity): {html.escape(', '.join(f'{d} / {i}' for d, i in backends))}" if backends else "") + "</p>",
        identity_note,
        "".join(notes),
        "<h2>Funnel</h2>",
        _table(["step", "sources / videos"], [(s, n) for s, n in steps if funnel_unit(s) == "videos"]),
        _table(["step", "clips"], [(s, n) for s, n in steps if funnel_unit(s) == "clips"]),
        "<h2>Drops by reason</h2>",
        _table(["stage", "reason", "dropped"], [(s, r, n) for (s, r), n in sorted(drops.items())]),
    ]
    captions = {"funnel": "funnel (left: sources and videos; middle: clips) and drops by stage and reason",
                "pose": "maximum |yaw|, |pitch|, |roll| per clip (degrees; y: clips)",
                "face_size": "median face size per clip (pixels in the source; y: clips)",
                "duration": "clip duration (seconds; y: clips)",
                "clips_per_identity": "identities by number of kept clips"}
    for name in PLOTS:
        if name in plots and name != "contact_sheet":
            parts.append(f"<h3>{html.escape(captions[name])}</h3><img src='{plots[name]}' alt='{name}'>")
    sheet = (f" (one image for print: <a href='{plots['contact_sheet']}'>{plots['contact_sheet']}</a>)"
             if "contact_sheet" in plots else "")
    parts.append(f"<h3>contact sheet: first frame of every kept clip{sheet}</h3>" + _thumbs(out_dir, clips))
    parts += ["<h2>Identities</h2>",
              _table(["identity_id", "clips", "split", "source labels", "min score"], ident_rows),
              "<h2>Clips</h2>", _table(["clip_id", "source", "identity", "split", "span (s)", "duration (s)",
                                        "frames", "crop (px)", "padded", "max |yaw| / |pitch| / |roll| (°)", "path"],
                                       clip_rows),
              "</body></html>\n"]
    target = out_dir / "report.html"
    atomic_write_text(target, "\n".join(parts))
    return target
