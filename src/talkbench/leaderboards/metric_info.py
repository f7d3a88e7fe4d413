"""Direction and display name of every metric a result file or a paper table can hold.

Leaderboards read result files only (they do not import the metrics package), so the direction of each metric is
listed here; a test checks it agrees with ``talkbench.metrics.evaluate.HIGHER_IS_BETTER``.
"""

from __future__ import annotations

HIGHER_IS_BETTER: dict[str, bool] = {
    "psnr": True,
    "ssim": True,
    "lpips": False,
    "csim": True,
    "akd": False,
    "aed": False,
    "fid": False,
    "fid_clean": False,
    "fvd": False,
    "sync_c": True,
    "sync_d": False,
    "diversity": True,
    "hkc": True,
    "mos_ls": True,
    "mos_n": True,
    "fps": True,
}

LABELS: dict[str, str] = {
    "psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS", "csim": "CSIM", "akd": "AKD", "aed": "AED", "fid": "FID",
    "fid_clean": "FID (clean)", "fvd": "FVD", "sync_c": "Sync-C", "sync_d": "Sync-D", "av_offset": "AV offset",
    "diversity": "Diversity", "hkc": "HKC", "mos_ls": "MOS-LS", "mos_n": "MOS-N", "fps": "FPS",
    "akd_driver": "AKD↔driver",
}

# Display order of columns; metrics not listed follow in name order.
ORDER = ["psnr", "ssim", "lpips", "psnr_vs_gt", "ssim_vs_gt", "lpips_vs_gt", "csim", "akd", "akd_driver", "aed",
         "fid", "fid_clean", "fvd", "sync_c", "sync_d", "av_offset", "diversity", "hkc", "mos_ls", "mos_n", "fps"]


def base_metric(name: str) -> str:
    """``psnr_vs_gt`` → ``psnr``, ``akd_driver`` → ``akd``: task labels keep the metric's direction."""
    for suffix in ("_vs_gt", "_driver"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def higher_is_better(name: str) -> bool | None:
    """True/False for ranked metrics; None for ones with no better direction (AV offset is a diagnostic)."""
    return HIGHER_IS_BETTER.get(base_metric(name))


def label(name: str) -> str:
    if name in LABELS:
        return LABELS[name]
    base = base_metric(name)
    if base != name and base in LABELS:
        return f"{LABELS[base]} vs GT" if name.endswith("_vs_gt") else f"{LABELS[base]} ({name[len(base) + 1:]})"
    return name


def arrow(name: str) -> str:
    hib = higher_is_better(name)
    return "" if hib is None else ("↑" if hib else "↓")


def column_order(metrics) -> list[str]:
    known = [m for m in ORDER if m in metrics]
    return known + sorted(m for m in metrics if m not in ORDER)
