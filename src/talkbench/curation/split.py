"""Split: train/test by identity with a seed, so no identity appears in both splits.

The split of an identity depends only on the set of identity ids and the seed, so ``split_stream`` labels rows one
chunk at a time once the ids are known (the curation's split stage holds a chunk and the id set, not every row).
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from .config import SplitConfig


def split_identities(identity_ids, config: SplitConfig) -> dict[str, str]:
    """identity_id → "train" | "test". With ≥ 2 identities at least one is test and at least one is train."""
    ids = sorted(set(identity_ids))
    n = len(ids)
    if n == 0:
        return {}
    if n == 1:
        return {ids[0]: "train"}
    n_test = min(n - 1, max(1, int(round(config.test_fraction * n))))
    order = np.random.default_rng(config.seed).permutation(n)
    test = {ids[i] for i in order[:n_test]}
    return {i: ("test" if i in test else "train") for i in ids}


def assign_split(rows: list[dict], config: SplitConfig) -> list[dict]:
    mapping = split_identities((r["identity_id"] for r in rows), config)
    return [{**r, "split": mapping[r["identity_id"]]} for r in rows]


def split_stream(chunks: Iterable[Iterable[dict]], identity_ids: Iterable[str],
                 config: SplitConfig) -> Iterator[list[dict]]:
    """``assign_split`` one chunk at a time: ``identity_ids`` are every row's ids (or just the distinct ones)."""
    mapping = split_identities(identity_ids, config)
    for chunk in chunks:
        yield [{**r, "split": mapping[r["identity_id"]]} for r in chunk]
