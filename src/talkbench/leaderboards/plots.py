"""Per-metric bar plots (PNG bytes) for the HTML leaderboard: measured rows with their 95 % CI, reported rows hatched.

Every plot of a table lists the same rows in the table's order (measured, then reported), drawn the same way in each:
a row without a finite value keeps its line with its text ("–" not measured, "∞" for an unbounded PSNR of the ground
truth), so gt and reported rows never appear in one plot and vanish from the next. The PNG is shown at its pixel
size (``PLOT_WIDTH_PX``) and its smallest text is ``MIN_FONT_PX`` pixels high.
"""

from __future__ import annotations

import io
import math

from ..metrics.spec import arrow, label
from .model import Board

DPI = 100
PLOT_WIDTH_PX = 480
MIN_FONT_PT = 9.5  # tick labels; at 100 dpi: 13.2 px
MIN_FONT_PX = MIN_FONT_PT * DPI / 72


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return "∞" if value > 0 else "-∞"


def bar_plot(board: Board, metric: str) -> bytes | None:
    """One line per row of the table; None when no row has a finite value (nothing to plot)."""
    rows = sorted(board.rows, key=lambda r: r.kind == "reported")
    bars = []
    for row in rows:
        cell = row.cells.get(metric)
        mean = None if cell is None else cell.est.mean
        err = None
        if mean is not None and math.isfinite(mean) and cell.est.ci_low is not None and cell.est.ci_high is not None \
                and math.isfinite(cell.est.ci_high) and math.isfinite(cell.est.ci_low):
            err = (mean - cell.est.ci_low, cell.est.ci_high - mean)
        bars.append((row.method + (" (reported)" if row.kind == "reported" else ""), mean, err, row))
    finite = [b[1] for b in bars if b[1] is not None and math.isfinite(b[1])]
    if not finite:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(PLOT_WIDTH_PX / DPI, 0.5 * len(bars) + 1.3), dpi=DPI)
    try:
        top = max(finite + [0.0])
        for i, (name, value, err, row) in enumerate(bars):
            if row.kind == "reported":
                style = {"color": "#f0d9a8", "hatch": "//", "edgecolor": "#9a7a3a"}
            elif row.ranked:
                style = {"color": "#4c78a8"}
            else:
                style = {"color": "#a8b8cc"}
            if value is None or not math.isfinite(value):
                ax.text(0, i, f" {_text(value)}", va="center", ha="left", fontsize=MIN_FONT_PT + 1, color="#555")
                continue
            xerr = None if err is None else [[max(err[0], 0)], [max(err[1], 0)]]
            ax.barh(i, value, xerr=xerr, capsize=3, **style)
            ax.text(value if value > 0 else 0, i, f" {value:.3g}", va="bottom" if err else "center", ha="left",
                    fontsize=MIN_FONT_PT, color="#222")
        ax.set_yticks(range(len(bars)), [b[0] for b in bars])
        ax.set_ylim(len(bars) - 0.5, -0.5)
        low = min(finite + [0.0])
        ax.set_xlim(low * 1.15, top * 1.15 if top > low else low + 1)
        ax.set_title(f"{label(metric)} {arrow(metric)}  ·  {board.task}", fontsize=MIN_FONT_PT + 2)
        ax.tick_params(labelsize=MIN_FONT_PT)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
        return buf.getvalue()
    finally:
        plt.close(fig)
