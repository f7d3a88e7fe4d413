"""Select: at most ``max_clips`` clips per identity, identities with fewer than ``min_clips`` dropped.

The choice is a seeded weighted draw without replacement (Efraimidis–Spirakis keys ``u ** (1 / w)``), so it prefers
longer, sharper, more frontal clips without always taking the same top ones, and it is reproducible: the random
stream of an identity depends only on the seed and the identity id, never on the order rows arrive in.

``select_stream`` does the same over rows that arrive sorted by (identity_id, candidate_id), one identity at a time,
so the curation's select stage holds one identity's rows rather than every candidate's.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Iterable, Iterator

import numpy as np

from .config import SelectConfig


# The fields selection reads (with candidate_id and identity_id): the cluster stage hands on only these, read as
# columns from the identity stage's parts, and the select stage reads the whole rows of the clips it keeps.
SELECT_COLUMNS = ("source_id", "start_s", "end_s", "yaw_max", "pitch_max", "roll_max", "sharpness")


def quality(row: dict, sharpness_ref: float | None) -> float:
    """A positive weight: duration × frontalness × relative sharpness (each in a bounded range)."""
    duration = max(0.0, float(row["end_s"]) - float(row["start_s"]))
    worst = max(float(row.get("yaw_max") or 0.0), float(row.get("pitch_max") or 0.0), float(row.get("roll_max") or 0.0))
    frontal = max(0.05, 1.0 - min(worst, 90.0) / 90.0)  # 0° → 1, 60° → 0.33
    sharp = 1.0
    if sharpness_ref and row.get("sharpness") is not None:
        # Relative to the identity's sharpest clip, floored so a soft but long clip still has a chance.
        sharp = max(0.1, min(1.0, float(row["sharpness"]) / sharpness_ref))
    return duration * frontal * sharp


def _rng(seed: int, identity_id: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}|{identity_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def select_clips(rows: list[dict], config: SelectConfig) -> tuple[list[dict], list[dict]]:
    """Returns (selected rows, rejections) ; every row not selected gets a rejection with its reason."""
    by_identity: dict[str, list[dict]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["candidate_id"]):
        by_identity[row["identity_id"]].append(row)
    selected, rejections = [], []
    for identity_id in sorted(by_identity):
        chosen, rejected = select_group(identity_id, by_identity[identity_id], config)
        selected += chosen
        rejections += rejected
    return selected, rejections


def select_group(identity_id: str, group: list[dict], config: SelectConfig) -> tuple[list[dict], list[dict]]:
    """One identity's (selected rows, rejections); ``group`` is its rows in candidate_id order."""
    if len(group) < config.min_clips:
        return [], [_rejection(row, "identity_too_few_clips", len(group), config.min_clips) for row in group]
    sharp = [float(r["sharpness"]) for r in group if r.get("sharpness") is not None]
    ref = max(sharp) if sharp else None
    weights = np.array([quality(r, ref) for r in group]) + 1e-9
    u = _rng(config.seed, identity_id).random(len(group))
    keys = np.log(u) / weights  # log of u ** (1 / w): larger is better, no underflow
    order = np.argsort(-keys, kind="stable")
    chosen = set(order[: config.max_clips].tolist())
    selected, rejections = [], []
    for i, row in enumerate(group):
        if i in chosen:
            selected.append(row)
        else:
            rejections.append(_rejection(row, "not_selected", float(weights[i]), None,
                                         identity_id=identity_id, max_clips=config.max_clips))
    return selected, rejections


def select_stream(chunks: Iterable[Iterable[dict]], config: SelectConfig) -> Iterator[tuple[list[dict], list[dict]]]:
    """``select_clips`` over chunks of rows sorted by (identity_id, candidate_id): yields (selected, rejections)
    per identity, in the order ``select_clips`` gives them (the same rows, the same draws).

    Only the identity being read is held, so memory is bounded by the largest identity, not by the number of rows
    (a chunk is consumed row by row). Rows out of that order raise ``ValueError``: a group seen twice would be
    selected twice.
    """
    group: list[dict] = []
    current = previous = None
    for chunk in chunks:
        for row in chunk:
            key = (row["identity_id"], row["candidate_id"])
            if previous is not None and key <= previous:
                raise ValueError(f"select_stream: rows must arrive sorted by (identity_id, candidate_id); "
                                 f"{key} follows {previous}")
            previous = key
            if row["identity_id"] != current:
                if group:
                    yield select_group(current, group, config)
                group, current = [], row["identity_id"]
            group.append(row)
    if group:
        yield select_group(current, group, config)


def _rejection(row: dict, reason: str, value, threshold, **detail) -> dict:
    import json

    detail = {"identity_id": row.get("identity_id"), **detail}
    return {
        "stage": "select",
        "item_id": row["candidate_id"],
        "source_id": row.get("source_id"),
        "reason": reason,
        "value": None if value is None else float(value),
        "threshold": None if threshold is None else float(threshold),
        "detail": json.dumps(detail, sort_keys=True),
    }
