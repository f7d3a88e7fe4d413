"""Scalable identity clustering equals today's exact average linkage; bad embeddings are rejected, never merged.

Sizes: the exact side (scipy pdist + linkage) at n is n²/2 distances, so tests stay at n ≤ 5000 (12.5M pairs,
~0.1 GB); the 20k comparison (200M pairs, 1.6 GB) runs only in benchmarks/curation_scale.py --exact-check.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from talkbench.curation.clustering import (
    ClusterStats, cluster_scalable, graph_average_linkage, pair_scores, reject_invalid, split_invalid, unit_rows,
)
from talkbench.curation.identity import DEFAULT_THRESHOLDS, assign_identities, cluster_embeddings
from talkbench.curation.scale import assign_identities_columns, synthetic_candidates
from talkbench.errors import MediaError

ROOT = Path(__file__).resolve().parents[2]
T = DEFAULT_THRESHOLDS["dlib"]


def mixture(n, n_ids, within, between, dim=128, seed=0):
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=dim)
    centres = unit_rows(mean / np.linalg.norm(mean) + between * rng.normal(size=(n_ids, dim)) / np.sqrt(dim))
    labels = rng.integers(0, n_ids, n)
    return unit_rows(centres[labels] + within * rng.normal(size=(n, dim)) / np.sqrt(dim)), labels


def _pairwise_reference(labels, clusters):
    """The O(n²) pair precision/recall of benchmarks/identity_accuracy.py, to check the O(n) one."""
    n = len(labels)
    iu = np.triu_indices(n, 1)
    same_t = (labels[:, None] == labels[None])[iu]
    same_p = (clusters[:, None] == clusters[None])[iu]
    tp = (same_t & same_p).sum()
    return tp / same_p.sum(), tp / same_t.sum()


def test_pair_scores_match_the_quadratic_definition():
    rng = np.random.default_rng(3)
    truth, pred = rng.integers(0, 7, 400), rng.integers(0, 9, 400)
    p, r, f1 = pair_scores(truth, pred)
    rp, rr = _pairwise_reference(truth, pred)
    assert (p, r) == pytest.approx((rp, rr), abs=1e-12)
    assert 0.05 < p < 0.3 and f1 == pytest.approx(2 * p * r / (p + r))
    assert pair_scores(truth, truth) == (1.0, 1.0, 1.0)


def test_below_the_exact_size_it_is_todays_method():
    x, _ = mixture(600, 40, 0.2, 0.3, seed=1)
    stats = ClusterStats()
    assert cluster_scalable(x, T, stats=stats).tolist() == cluster_embeddings(x, T).tolist()
    assert stats.method == "exact"


@pytest.mark.parametrize("within,between,n_ids,nprobe", [(0.167, 0.28, 30, 8), (0.2, 0.26, 120, 8),
                                                         (0.25, 0.25, 400, 32)])
def test_knn_graph_equals_exact_on_gaussian_mixtures(within, between, n_ids, nprobe):
    """n = 5000 through the k-NN graph path against the full pdist; both scored against the known labels.

    The first mixture has the spread measured on real faces; the last one (within = between, people chain into one
    large component) needs a wider IVF search (nprobe 32 instead of 8) to find every bridging pair: at the
    default nprobe 8 it missed one at n = 5000, splitting one exact cluster (pair recall 0.99997 against exact).
    """
    x, truth = mixture(5000 if n_ids == 30 else 3000, n_ids, within, between, seed=n_ids)
    exact = cluster_embeddings(x, T)
    stats = ClusterStats()
    fast = cluster_scalable(x, T, exact_below=0, nprobe=nprobe, stats=stats)
    assert stats.method == "knn-graph" and stats.edges > 5000
    assert fast.tolist() == exact.tolist()
    p, r, f1 = pair_scores(truth, fast)
    print(f"\nmixture w={within} b={between} ids={n_ids}: clusters {fast.max() + 1}, pair P {p:.4f} R {r:.4f}")
    # The hardest mixture (within ≈ between) is where the cut splits and merges people; exact and fast agree anyway.
    assert (p, r) == pytest.approx(_pairwise_reference(truth, exact), abs=1e-12)


@pytest.mark.parametrize("dim,t", [(3, 0.02), (8, 0.1)])
def test_graph_linkage_of_large_components_equals_exact_on_random_embeddings(dim, t):
    """Uniform random directions chain into large components; the heap path (components > 5) must still agree.

    Structureless data needs a wider search than the default nprobe 4 (tuned for identity mixtures): at nprobe 4
    the 8-d case misses bridging pairs (pair F1 0.993 against exact); at 8 it is identical."""
    x = unit_rows(np.random.default_rng(dim).normal(size=(3000, dim)))
    exact = cluster_embeddings(x, t)
    stats = ClusterStats()
    fast = cluster_scalable(x, t, exact_below=0, exact_component=5, k=64, nprobe=8, stats=stats)
    assert stats.graph_linkage_components >= 1 and stats.largest_component > 5
    assert fast.tolist() == exact.tolist()
    assert 100 < exact.max() + 1 < 3000  # neither all singletons nor one cluster: the cut matters


def test_graph_linkage_uses_exact_average_distances():
    """Three points on a line: average linkage merges a,b (0.04) then c only if the mean distance is within t."""
    ang = np.radians([0.0, 16.26, 33.0])  # cosine distances a-b ≈ 0.04, b-c ≈ 0.043, a-c ≈ 0.161
    x = np.stack([np.cos(ang), np.sin(ang)], 1)
    a, b = np.array([0, 1]), np.array([1, 2])  # a-c edge missing: it is > t anyway
    assert graph_average_linkage(x, a, b, 0.07).tolist()[:2] == [3, 3]
    labels = graph_average_linkage(x, a, b, 0.07)
    assert labels[2] != labels[0]  # mean of (0.043, 0.161) = 0.10 > 0.07: c stays apart
    assert len(set(graph_average_linkage(x, a, b, 0.11).tolist())) == 1  # 0.10 ≤ 0.11: merged
    assert cluster_embeddings(x, 0.07).tolist() == [0, 0, 1] and cluster_embeddings(x, 0.11).tolist() == [0, 0, 0]


def test_real_faces_cluster_identically(tmp_path):
    """dlib embeddings of the identity benchmark's views of real faces: the graph path gives today's clusters."""
    pytest.importorskip("dlib")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import identity_accuracy as bench
    finally:
        sys.path.pop(0)
    from skimage import data

    from talkbench.curation.identity import DlibEmbedder

    people = [("astronaut", data.astronaut(), bench.ASTRONAUT_BOX)]
    if importlib.util.find_spec("insightface") is not None:
        t1 = bench._insightface_image("t1.jpg")
        people += [(f"t1_{i}", t1, box) for i, box in enumerate(bench.T1_BOXES[:3])]
    else:
        # Without insightface's photos: the astronaut and two crops of skimage's other real face photo.
        people.append(("astronaut_flipped", data.astronaut()[:, ::-1].copy(),
                       (512 - bench.ASTRONAUT_BOX[2], bench.ASTRONAUT_BOX[1], 512 - bench.ASTRONAUT_BOX[0],
                        bench.ASTRONAUT_BOX[3])))
    embedder = DlibEmbedder()
    emb, labels = [], []
    for label, image, box in people:
        for _, im, b in bench.views(image, box):
            emb.append(embedder.embed(im, b))
            labels.append(label)
    emb = np.array(emb)
    exact = cluster_embeddings(emb, T)
    fast = cluster_scalable(emb, T, exact_below=0)
    assert fast.tolist() == exact.tolist()
    # The 9 views of the astronaut are one identity (the benchmark's finding at 0.07).
    assert len(set(exact[:9].tolist())) == 1


def test_nan_embeddings_are_rejected_with_a_reason_and_never_merged():
    x, _ = mixture(12, 2, 0.1, 0.5, seed=4)
    rows = [{"candidate_id": f"c{i:02d}", "source_id": f"v{i % 3}", "embedding": list(x[i])} for i in range(12)]
    rows[3]["embedding"] = [float("nan")] * 128
    rows[7]["embedding"] = [0.0] * 128
    rows[9]["embedding"] = list(x[9] * np.r_[np.inf, np.ones(127)])
    rejections = []
    out = assign_identities(rows, T, rejections=rejections)
    assert sorted(r["candidate_id"] for r in out) == [f"c{i:02d}" for i in range(12) if i not in (3, 7, 9)]
    assert [(r["item_id"], r["reason"]) for r in rejections] == [
        ("c03", "embedding_nan"), ("c07", "embedding_zero"), ("c09", "embedding_nan")]
    assert all(np.isfinite(r["identity_score"]) for r in out)
    # The clean rows cluster exactly as they would without the bad ones.
    clean = assign_identities([r for r in rows if r["candidate_id"] not in ("c03", "c07", "c09")], T)
    assert [r["identity_id"] for r in out] == [r["identity_id"] for r in clean]
    with pytest.raises(MediaError, match="unusable embedding.*embedding_nan.*'c03'"):
        assign_identities(rows, T)
    good, bad = split_invalid(np.array([r["embedding"] for r in rows]))
    assert bad == {3: "embedding_nan", 7: "embedding_zero", 9: "embedding_nan"} and len(good) == 9
    assert reject_invalid([], None) == []


def test_columnar_identities_equal_assign_identities():
    syn = synthetic_candidates(700, seed=2)
    rows = [{"candidate_id": c, "embedding": list(map(float, e))} for c, e in zip(syn.candidate_ids, syn.embeddings)]
    ref = assign_identities(rows, T)
    ids, scores = assign_identities_columns(syn.candidate_ids, syn.embeddings, T)
    assert ids == [r["identity_id"] for r in ref]
    assert scores.tolist() == [r["identity_score"] for r in ref]  # the same floats, not just close
    assert len(set(ids)) == pytest.approx(syn.n_identities, abs=1)
