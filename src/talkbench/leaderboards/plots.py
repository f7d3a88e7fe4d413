"""Per-metric bar plots (PNG bytes) for the HTML leaderboard: measured rows with their 95 % CI, reported rows hatched."""

from __future__ import annotations

import io
import math

from ..metrics.spec import arrow, label
from .model import Board


def bar_plot(board: Board, metric: str) -> bytes | None:
    """One bar per method with a finite value; None when no row has one (nothing to plot)."""
    bars = []
    for row in board.rows:
        cell = row.cells.get(metric)
        if cell is None or cell.est.mean is None or not math.isfinite(cell.est.mean):
            continue
        err = None
        if cell.est.ci_low is not None and cell.est.ci_high is not None and math.isfinite(cell.est.ci_high):
            err = (cell.est.mean - cell.est.ci_low, cell.est.ci_high - cell.est.mean)
        bars.append((row.method + (" (rep.)" if row.kind == "reported" else ""), cell.est.mean, err, row))
    if not bars:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 0.45 * len(bars) + 1.2), dpi=100)
    try:
        for i, (name, value, err, row) in enumerate(bars):
            if row.kind == "reported":
                style = {"color": "#f0d9a8", "hatch": "//", "edgecolor": "#9a7a3a"}
            elif row.ranked:
                style = {"color": "#4c78a8"}
            else:
                style = {"color": "#a8b8cc"}
            xerr = None if err is None else [[max(err[0], 0)], [max(err[1], 0)]]
            ax.barh(i, value, xerr=xerr, capsize=3, **style)
        ax.set_yticks(range(len(bars)), [b[0] for b in bars])
        ax.invert_yaxis()
        ax.set_title(f"{label(metric)} {arrow(metric)}  ·  {board.task}", fontsize=10)
        ax.tick_params(labelsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
        return buf.getvalue()
    finally:
        plt.close(fig)
