"""Render a Leaderboard as Markdown, LaTeX, CSV, HTML (sortable tables + per-metric bar plots) and rich tables."""

from __future__ import annotations

import csv
import html
import io
import math
import re
from pathlib import Path

from ..manifests.io import atomic_write_bytes, atomic_write_text
from ..metrics.spec import arrow, label
from .model import UNRANKED_METHODS, Board, Cell, Leaderboard, Row
from .plots import PLOT_WIDTH_PX
from .reported import UNVERIFIED

NON_STANDARD = "†"
UNVERIFIED_MARK = "‡"


def format_number(metric: str, value) -> str:
    if value is None or value == "nan":
        return "—"
    if isinstance(value, str):  # json_number's "inf"
        return {"inf": "∞", "-inf": "-∞"}.get(value, value)
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    a = abs(value)
    digits = 1 if a >= 100 else 2 if a >= 10 else 3
    return f"{value:.{digits}f}"


def cell_text(metric: str, cell: Cell | None) -> str:
    if cell is None:
        return ""
    if cell.est.mean is None:
        return "null"
    text = format_number(metric, cell.est.mean)
    half = cell.est.half_width
    if cell.level == "clip" and half is not None and half > 0:
        text += f" ± {format_number(metric, half)}"
    return text


def source_numbers(board: Leaderboard) -> dict[str, int]:
    return {key: i + 1 for i, key in enumerate(board.sources)}


def row_label(row: Row, numbers: dict[str, int], sources: dict) -> str:
    """Method name with its markers: [k] reported source footnotes, ‡ unverified, † non-standard, * ceiling."""
    text = row.method
    if row.kind == "reported":
        refs = ",".join(str(numbers[s]) for s in row.sources)
        unverified = any(not sources[s].verified for s in row.sources)
        text += f" (reported [{refs}]{UNVERIFIED_MARK if unverified else ''})"
    elif not row.standard:
        text += f" {NON_STANDARD}"
    elif row.method in UNRANKED_METHODS:
        text += " *"
    return text


def notes(board: Leaderboard) -> list[str]:
    numbers = source_numbers(board)
    lines = ["Cells: mean over clips ± half-width of the seeded 95 % percentile-bootstrap CI; FID/FVD are set-level "
             "(one value per run). Best ranked value in bold, second underlined. n = clips scored.",
             "* gt is the ground truth (the ceiling of every reference metric) and is not ranked.",
             f"{NON_STANDARD} non-standard protocol run (unofficial weights): shown, not ranked.",
             "Reported rows are figures published by the papers under their own protocols (data, resolution, "
             "metric code): shown for context, never ranked with measured rows."]
    if board.reported_version is not None:
        lines.append(f"Reported figures: talkbench/data/reported_v{board.reported_version}.yaml.")
    for key, src in board.sources.items():
        mark = f" {UNVERIFIED_MARK} {UNVERIFIED}: check against the paper before citing." if not src.verified else ""
        lines.append(f"[{numbers[key]}] {src.cite} ({src.setting}; {src.status}).{mark}")
    return lines


# ---------------------------------------------------------------------------------------------------------------
# Markdown


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(board: Leaderboard) -> str:
    numbers = source_numbers(board)
    out = ["# talkbench leaderboard", ""]
    for b in board.boards:
        out += [f"## {b.title}", ""]
        header = ["Method", "n"] + [f"{label(m)} {arrow(m)}".strip() for m in b.metrics]
        out.append("| " + " | ".join(header) + " |")
        out.append("| --- | ---: | " + " | ".join("---:" for _ in b.metrics) + " |")
        for row in b.rows:
            cells = [_md_escape(row_label(row, numbers, board.sources)), "" if row.n is None else str(row.n)]
            for m in b.metrics:
                c = row.cells.get(m)
                text = cell_text(m, c)
                if c is not None and c.rank == 1:
                    text = f"**{text}**"
                elif c is not None and c.rank == 2:
                    text = f"<ins>{text}</ins>"
                elif row.kind == "reported" and text:
                    text = f"*{text}*"
                cells.append(text)
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out += ["### Notes", ""] + [f"- {_md_escape(line).replace('*', chr(92) + '*')}" for line in notes(board)] + [""]
    return "\n".join(out)


def write_markdown(board: Leaderboard, out: Path) -> list[Path]:
    path = out / "leaderboard.md"
    atomic_write_text(path, markdown(board))
    return [path]


# ---------------------------------------------------------------------------------------------------------------
# LaTeX


_TEX = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}", "±": r"$\pm$",
        "↑": r"$\uparrow$", "↓": r"$\downarrow$", "∞": r"$\infty$", "†": r"$^\dagger$", "‡": r"$^\ddagger$",
        "—": "--", "·": r"$\cdot$", "↔": r"$\leftrightarrow$"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)


def latex(board: Leaderboard) -> str:
    numbers = source_numbers(board)
    out = ["% talkbench leaderboard; needs \\usepackage{booktabs}", ""]
    for b in board.boards:
        out += [r"\begin{table}[t]", r"\centering", rf"\caption{{{tex_escape(b.title)}}}",
                r"\begin{tabular}{l r " + " ".join("r" for _ in b.metrics) + "}", r"\toprule"]
        header = ["Method", "n"] + [f"{label(m)} {arrow(m)}".strip() for m in b.metrics]
        out.append(" & ".join(tex_escape(h) for h in header) + r" \\")
        out.append(r"\midrule")
        reported_started = False
        for row in b.rows:
            if row.kind == "reported" and not reported_started:
                out.append(r"\midrule")
                reported_started = True
            cells = [tex_escape(row_label(row, numbers, board.sources)), "" if row.n is None else str(row.n)]
            for m in b.metrics:
                c = row.cells.get(m)
                text = tex_escape(cell_text(m, c))
                if c is not None and c.rank == 1:
                    text = rf"\textbf{{{text}}}"
                elif c is not None and c.rank == 2:
                    text = rf"\underline{{{text}}}"
                elif row.kind == "reported" and text:
                    text = rf"\textit{{{text}}}"
                cells.append(text)
            out.append(" & ".join(cells) + r" \\")
        # The notes are visible text under every table (a % comment never reaches the reader of the PDF).
        out += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip", r"\begin{minipage}{\linewidth}\footnotesize"]
        out += [tex_escape(line) + r"\par" for line in notes(board)]
        out += [r"\end{minipage}", r"\end{table}", ""]
    return "\n".join(out) + "\n"


def write_latex(board: Leaderboard, out: Path) -> list[Path]:
    path = out / "leaderboard.tex"
    atomic_write_text(path, latex(board))
    return [path]


# ---------------------------------------------------------------------------------------------------------------
# CSV (long format: one line per table × method × metric, exact numbers)

CSV_COLUMNS = ["task", "protocol", "method", "kind", "protocol_standard", "ranked", "n", "metric", "level", "mean",
               "ci_low", "ci_high", "rank", "source"]


def _csv_number(v):
    if v is None:
        return ""
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(float(v))


def _csv_n(row: Row, cell: Cell):
    """Clips behind the value: a clip-level cell's own n (ranked rows may be compared on common clips)."""
    if row.kind == "measured" and cell.level == "clip":
        return cell.est.n
    return "" if row.n is None else row.n


def csv_text(board: Leaderboard) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for b in board.boards:
        for row in b.rows:
            for m in b.metrics:
                c = row.cells.get(m)
                if c is None:
                    continue
                src = board.sources[c.source].cite if c.source else ""
                # measured rows: the table's protocol id; reported rows: "reported (<paper>)", never ours
                writer.writerow([b.task, row.protocol or b.protocol_id, row.method, row.kind, row.standard, row.ranked,
                                 _csv_n(row, c), m, c.level, _csv_number(c.est.mean),
                                 _csv_number(c.est.ci_low), _csv_number(c.est.ci_high), c.rank or "", src])
    return buf.getvalue()


def write_csv(board: Leaderboard, out: Path) -> list[Path]:
    path = out / "leaderboard.csv"
    atomic_write_text(path, csv_text(board))
    return [path]


# ---------------------------------------------------------------------------------------------------------------
# HTML

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table.board{border-collapse:collapse;margin:1em 0;font-variant-numeric:tabular-nums}
table.board th,table.board td{border-bottom:1px solid #ddd;padding:.3em .7em;text-align:right}
table.board th:first-child,table.board td:first-child{text-align:left}
table.board th{cursor:pointer;background:#f3f3f3;user-select:none}
table.board th[aria-sort=ascending]::after{content:" ▲"}
table.board th[aria-sort=descending]::after{content:" ▼"}
tr.reported td{font-style:italic;color:#555;background:#fbf7ee}
tr.unranked td{color:#446}
tr.nonstandard td{background:#f4f0f8}
.plots img{max-width:100%;height:auto;margin:.3em;vertical-align:top}
table.board td.empty{color:#999}
tr.band td{border-bottom:2px solid #c9b27a}
a.qual{font-size:.85em;margin-left:.4em}
.notes{font-size:.9em;color:#444}
"""

JS = r"""
function cellValue(row, idx, numeric) {
  const cell = row.cells[idx];
  if (!numeric) return cell.textContent.trim().toLowerCase();
  const v = cell.dataset.value;
  return (v === undefined || v === '') ? null : parseFloat(v);
}
function sortTable(table, key, dir) {
  const heads = Array.from(table.tHead.rows[0].cells);
  const idx = heads.findIndex(th => th.dataset.key === key);
  if (idx < 0) return false;
  const numeric = heads[idx].dataset.type === 'num';
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  // measured rows first, reported rows in their own band below: published figures never interleave with ours
  const band = r => r.classList.contains('reported') ? 1 : 0;
  rows.sort((a, b) => {
    if (band(a) !== band(b)) return band(a) - band(b);
    const x = cellValue(a, idx, numeric), y = cellValue(b, idx, numeric);
    if (x === null && y === null) return 0;
    if (x === null) return 1;   // empty cells stay last in both directions
    if (y === null) return -1;
    const c = x < y ? -1 : (x > y ? 1 : 0);
    return dir === 'desc' ? -c : c;
  });
  rows.forEach(r => body.appendChild(r));
  heads.forEach(th => th.removeAttribute('aria-sort'));
  heads[idx].setAttribute('aria-sort', dir === 'desc' ? 'descending' : 'ascending');
  table.dataset.sorted = key + ':' + dir;
  return true;
}
// The first click on a column sorts best first (its arrow: higher or lower is better); the next one reverses.
// The view goes into the URL hash, so it can be linked.
function bestDir(th) { return th.dataset.better === 'lower' ? 'asc' : 'desc'; }
document.querySelectorAll('table.board').forEach(table => {
  table.tHead.querySelectorAll('th').forEach(th => th.addEventListener('click', () => {
    const cur = th.getAttribute('aria-sort');
    const dir = cur === null ? bestDir(th) : (cur === 'ascending' ? 'desc' : 'asc');
    sortTable(table, th.dataset.key, dir);
    history.replaceState(null, '', '#sort=' + table.id + ':' + th.dataset.key + ':' + dir);
  }));
});
// "#sort=<table id>:<column>:<asc|desc>[;...]" sorts on load, so a sorted view can be linked.
function sortFromHash() {
  const m = decodeURIComponent(location.hash).match(/^#sort=(.+)$/);
  if (!m) return;
  m[1].split(';').forEach(spec => {
    const [id, key, dir] = spec.split(':');
    const table = document.getElementById(id);
    if (table) sortTable(table, key, dir || 'asc');
  });
}
sortFromHash();
window.addEventListener('hashchange', sortFromHash);
"""


def html_id(board: Board) -> str:
    return "t-" + re.sub(r"[^A-Za-z0-9_-]+", "-", board.slug)


def _data_value(cell: Cell | None) -> str:
    if cell is None or cell.est.mean is None or math.isnan(cell.est.mean):
        return ""
    return "Infinity" if cell.est.mean == math.inf else ("-Infinity" if cell.est.mean == -math.inf else
                                                          repr(float(cell.est.mean)))


EMPTY = "–"  # an empty or all-null cell on the page


def shown_rank(b: Board, row: Row, metric: str) -> int | None:
    """The rank to mark: none when fewer than two ranked rows have a value (a lone row is not "best")."""
    cell = row.cells.get(metric)
    if cell is None or cell.rank is None:
        return None
    ranked = sum(1 for r in b.rows if r.cells.get(metric) is not None and r.cells[metric].rank is not None)
    return cell.rank if ranked >= 2 else None


def html_page(board: Leaderboard, plots: dict[tuple[str, str], str], qualitative: dict[str, str] | None = None) -> str:
    qualitative = qualitative or {}
    numbers = source_numbers(board)
    esc = html.escape
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>talkbench leaderboard</title>", f"<style>{CSS}</style></head><body>",
             "<h1>talkbench leaderboard</h1>",
             "<p>Click a column header to sort. Best ranked value in <b>bold</b>, second <u>underlined</u>.</p>"]
    for b in board.boards:
        tid = html_id(b)
        parts.append(f'<section><h2>{esc(b.title)}</h2>')
        parts.append(f'<table class="board" id="{tid}"><thead><tr>')
        parts.append('<th data-key="method" data-type="text">Method</th><th data-key="n" data-type="num">n</th>')
        for m in b.metrics:
            better = {"↑": "higher", "↓": "lower"}.get(arrow(m), "")
            parts.append(f'<th data-key="{esc(m)}" data-type="num" data-better="{better}" title="{esc(m)}">'
                         f'{esc(label(m))} {arrow(m)}</th>')
        parts.append("</tr></thead><tbody>")
        for row in sorted(b.rows, key=lambda r: r.kind == "reported"):  # reported rows in their own band
            classes = [row.kind] + ([] if row.ranked or row.kind == "reported" else ["unranked"]) + \
                      ([] if row.standard else ["nonstandard"])
            parts.append(f'<tr class="{" ".join(classes)}" data-method="{esc(row.method)}">')
            link = qualitative.get(row.files[0]) if row.files else None
            link = f' <a class="qual" href="{esc(link)}">videos</a>' if link else ""
            parts.append(f"<td>{esc(row_label(row, numbers, board.sources))}{link}</td>")
            parts.append(f'<td data-value="{"" if row.n is None else row.n}">{EMPTY if row.n is None else row.n}</td>')
            for m in b.metrics:
                c = row.cells.get(m)
                text = cell_text(m, c)
                empty = text in ("", "null")
                text = EMPTY if empty else esc(text)
                rank = shown_rank(b, row, m)
                if rank == 1:
                    text = f"<b>{text}</b>"
                elif rank == 2:
                    text = f"<u>{text}</u>"
                title = f' title="{esc(c.null_reason)}"' if c is not None and c.null_reason else (
                    ' title="not measured"' if empty else "")
                cls = ' class="empty"' if empty else ""
                parts.append(f'<td data-value="{_data_value(c)}"{cls}{title}>{text}</td>')
            parts.append("</tr>")
        parts.append("</tbody></table>")
        imgs = [(m, plots[(b.slug, m)]) for m in b.metrics if (b.slug, m) in plots]
        if imgs:
            parts.append('<div class="plots">')
            parts += [f'<img src="{esc(src)}" alt="{esc(label(m))} bar plot" width="{PLOT_WIDTH_PX}">'
                      for m, src in imgs]
            parts.append("</div>")
        parts.append("</section>")
    parts.append('<div class="notes"><ul>' + "".join(f"<li>{esc(n)}</li>" for n in notes(board)) + "</ul></div>")
    parts.append(f"<script>{JS}</script></body></html>")
    return "\n".join(parts)


def write_html(board: Leaderboard, out: Path) -> list[Path]:
    from .plots import bar_plot
    from .qualitative import write_qualitative

    files, plots = [], {}
    for b in board.boards:
        for m in b.metrics:
            png = bar_plot(b, m)
            if png is None:
                continue
            rel = f"plots/{b.slug}__{m}.png"
            atomic_write_bytes(out / rel, png)
            plots[(b.slug, m)] = rel
            files.append(out / rel)
    qualitative = {}
    for b in board.boards:
        for row in b.rows:
            if row.kind == "measured" and row.files and row.files[0] not in qualitative:
                page = write_qualitative(Path(row.files[0]), out, row.method)
                if page is not None:
                    qualitative[row.files[0]] = page.relative_to(out).as_posix()
                    files.append(page)
    path = out / "index.html"
    atomic_write_text(path, html_page(board, plots, qualitative))
    return [path] + files


# ---------------------------------------------------------------------------------------------------------------
# terminal


def rich_tables(board: Leaderboard) -> list:
    from rich.table import Table

    numbers = source_numbers(board)
    tables = []
    for b in board.boards:
        t = Table(title=b.title, caption="bold = best, underline = second; reported rows dim, never ranked")
        # the method column is what a reader looks up and types: never wrapped or cut; numbers wrap instead
        width = max([6] + [len(row_label(row, numbers, board.sources)) for row in b.rows])
        t.add_column("Method", no_wrap=True, min_width=width, overflow="ignore")
        t.add_column("n", justify="right")
        for m in b.metrics:
            t.add_column(f"{label(m)} {arrow(m)}".strip(), justify="right", overflow="fold")
        for row in b.rows:
            cells = [row_label(row, numbers, board.sources), "" if row.n is None else str(row.n)]
            for m in b.metrics:
                c = row.cells.get(m)
                text = cell_text(m, c).replace("[", r"\[")
                if c is not None and c.rank == 1:
                    text = f"[bold]{text}[/bold]"
                elif c is not None and c.rank == 2:
                    text = f"[underline]{text}[/underline]"
                cells.append(text)
            t.add_row(*cells, style="dim italic" if row.kind == "reported" else None)
        tables.append(t)
    return tables
