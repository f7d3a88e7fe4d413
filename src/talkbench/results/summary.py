"""Per-metric summaries of result rows, computed once: `bench run` writes them to summary.json, and the
leaderboards turn them into cells.

A metric whose rows all have ``clip_id`` null is set-level (FID, FVD): one value per run, no interval. The others
are per clip: the mean over the clips with a value and its seeded bootstrap 95 % CI (see ``stats``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..metrics.spec import column_order, higher_is_better
from .stats import DEFAULT_BOOT, DEFAULT_SEED, Estimate, bootstrap_ci, json_number


@dataclass(frozen=True)
class MetricSummary:
    metric: str
    level: str  # clip | set
    est: Estimate
    n: int | None  # clips with a value (clip level) or the set's sample count as the row says (set level)
    null_reasons: dict[str, int]  # reason -> rows without a value

    @property
    def all_null(self) -> bool:
        return self.est.mean is None


def summarise_metrics(rows: list[dict], *, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED
                      ) -> dict[str, MetricSummary]:
    """metric -> summary, in the registry's column order."""
    by_metric: dict[str, list[dict]] = {}
    for r in rows:
        by_metric.setdefault(r["metric"], []).append(r)
    out = {}
    for name in column_order(by_metric):
        group = by_metric[name]
        values = [r["value"] for r in group if r["value"] is not None]
        reasons = Counter(r["null_reason"] or "unknown" for r in group if r["value"] is None)
        if all(r["clip_id"] is None for r in group):
            value = values[0] if values else None
            n = group[0]["n"]
            out[name] = MetricSummary(name, "set", Estimate(value, None, None, int(n or 0)), n, dict(reasons))
        else:
            est = bootstrap_ci(values, n_boot=n_boot, seed=seed)
            out[name] = MetricSummary(name, "clip", est, est.n, dict(reasons))
    return out


def run_summary(rows: list[dict], run_info: dict, missing: dict, records: dict, *, n_boot: int = DEFAULT_BOOT) -> dict:
    """The content of a bench run's summary.json (JSON-safe: inf and nan are strings)."""
    metrics = {}
    for name, s in summarise_metrics(rows, n_boot=n_boot, seed=DEFAULT_SEED).items():
        if s.level == "set":
            entry = {"level": "set", "value": json_number(s.est.mean), "n": s.n, "mean": json_number(s.est.mean),
                     "ci_low": None, "ci_high": None}
        else:
            entry = {"level": "clip", "mean": json_number(s.est.mean), "ci_low": json_number(s.est.ci_low),
                     "ci_high": json_number(s.est.ci_high), "n": s.n}
        entry.update({"n_null": sum(s.null_reasons.values()), "null_reasons": dict(sorted(s.null_reasons.items())),
                      "higher_is_better": higher_is_better(name)})
        metrics[name] = entry
    failed = {cid: rec["reason"] for cid, rec in sorted(records.items()) if not rec["ok"]}
    return {
        "run": {k: run_info.get(k) for k in ("method", "task", "protocol_id", "split", "talkbench_version", "seed",
                                              "manifest_sha256", "clip_set")},
        "protocol_standard": bool(rows[0]["protocol_standard"]) if rows else None,
        "n_clips": len(records),
        "n_scored": len(records) - len(failed),
        "failed_clips": failed,
        "ci": {"method": "percentile bootstrap over clips", "level": 0.95, "n_boot": n_boot, "seed": DEFAULT_SEED},
        "metrics": metrics,
        "missing_weights": dict(sorted(missing.items())),
    }
