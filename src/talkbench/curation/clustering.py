"""Identity clustering that scales: exact average linkage, computed only where it can merge anything.

Today's method (``identity.cluster_embeddings``) is scipy's average linkage over the full cosine ``pdist``, cut at a
distance ``t``: two candidates share an identity when the merge that joins them happens at height ≤ t. Its memory is
O(n²) (100k candidates → 40 GB). This module gives the same partition without the full matrix.

Semantics (exact, and why)
--------------------------
1. **Threshold graph.** G has an edge (i, j) for every pair whose cosine distance is ≤ t that the neighbour search
   found. Below ``EXACT_BELOW`` candidates G is never built: the whole set goes to scipy exactly as today.
   Above it, G comes from a k-nearest-neighbour search (``knn_threshold_graph``: an inverted-file search over
   spherical k-means cells of the unit vectors, done as one GEMM per cell; the cell is the blocking key, see 4.);
   float32 similarities pick each row's k candidates and every kept pair's distance is decided in float64.
2. **Components.** Average-linkage distance between clusters A and B is the mean of their pair distances, so if it is
   ≤ t then at least one pair is ≤ t. Every merge below the cut therefore joins two clusters linked by an edge of the
   full threshold graph, so every final cluster lies inside one connected component of that graph, and merges inside
   one component never depend on points outside it (the distance of two clusters depends only on their members).
   Hence: exact average linkage on each component separately, cut at t, is exactly the global cut. Components of at
   most ``EXACT_COMPONENT`` points run scipy's linkage on their own pdist (identical numerics to today's method).
3. **Large components** (more points than ``EXACT_COMPONENT``, e.g. one very frequent speaker) use graph-restricted
   average linkage: only cluster pairs joined by at least one edge of G are merge candidates, and a candidate's
   distance is the *exact* average cosine distance, computed from member sums (for unit vectors,
   mean over a∈A, b∈B of 1 − a·b = 1 − (ΣA·ΣB)/(|A||B|)), never an imputed value. A pair missing from G thus
   counts only as "not a candidate" (as if its distance were > t), it never bends an average. The closest candidate
   is merged first, as in scipy. By the argument of 2., this equals exact average linkage whenever G holds every
   within-threshold pair; and steps 1–2 equal it whenever G's components equal those of the full threshold graph,
   which is much weaker (a k-NN graph of a tight identity is connected long before it holds all its pairs).
   With k = 16, a person with more than 16 clips has more within-t pairs than G keeps, so exactness above
   ``EXACT_BELOW`` is this component condition, checked empirically: tests/curation/test_clustering.py (labels
   identical to the exact method) and ``benchmarks/curation_scale.py --exact-check N`` (identical at 20k on both
   synthetic spreads). If the search misses the only pair that bridges two exact clusters, they stay apart (a
   split; structureless 8-d data needs nprobe 8 instead of the default 4); raise ``nprobe`` for harder data.
4. **Blocking without losing cross-video merges.** The blocking key is the embedding's cell (a spherical k-means
   cell of the embedding space), never the source video, so a person's clips from different videos fall in the
   same or neighbouring cells; each row searches its ``nprobe`` nearest cells, so pairs across a cell border are
   still found.
   ``ClusterStats.saturated`` counts points whose k-th neighbour was still within t (their list may be cut short);
   ``ClusterStats.edges`` and the component sizes are reported so a run can show its graph was not starved.

NaN or zero embeddings (a corrupt crop) are never clustered: ``split_invalid`` returns them with the reason
``embedding_nan`` (or ``embedding_zero``), and ``assign_identities`` records or refuses them.

ANN library: faiss-cpu (MIT licence, Meta), pinned in pyproject.toml. Chosen over hnswlib (Apache-2.0; its 0.8.0
release is a source distribution, so installs compile C++) and pynndescent (BSD-2; pulls numba/llvmlite and
JIT-compiles on first use). faiss installs as a wheel next to numpy<2. It trains the cells (``faiss.Kmeans``,
spherical) and finds each row's nearest cell centres (flat GEMM search). The per-cell neighbour search is numpy
GEMM + ``argpartition`` rather than faiss's ``IndexIVFFlat.search``: on this machine faiss's per-query scan ran at
~0.5 GFLOP/s against ~18 for GEMM and took 60 % of the clustering time at 300k (docs/scale.md), for the same graph.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

import numpy as np

# Up to this many candidates the full pdist is computed as today (4096² / 2 pairs × 8 B = 67 MB, ~0.3 s).
EXACT_BELOW = 4096
# Components up to this size run scipy's exact linkage on their own pdist.
EXACT_COMPONENT = 8192
# float32 inner products are exact to ~1e-6 on unit vectors; pairs closer than this to the cut are recomputed.
NEAR = 1e-4


@dataclass
class ClusterStats:
    """What a clustering run did: the method used and how complete its neighbour graph looked."""

    n: int = 0
    method: str = "exact"
    k: int = 0
    nlist: int = 0
    nprobe: int = 0
    edges: int = 0
    saturated: int = 0
    components: int = 0
    largest_component: int = 0
    graph_linkage_components: int = 0
    extra: dict = field(default_factory=dict)


def _lap(stats: ClusterStats | None, name: str, since: float) -> None:
    """Add the CPU seconds since ``since`` to ``stats.extra["cpu_s"][name]``."""
    if stats is not None:
        cpu = stats.extra.setdefault("cpu_s", {})
        cpu[name] = round(cpu.get(name, 0.0) + time.process_time() - since, 3)


def unit_rows(embeddings) -> np.ndarray:
    """Rows scaled to unit L2 norm (float64); zero rows stay zero."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        x = np.stack([np.asarray(e, dtype=np.float64).ravel() for e in embeddings])
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def split_invalid(embeddings) -> tuple[np.ndarray, dict[int, str]]:
    """(indices of usable rows, {index: reason}) — a NaN/inf row is ``embedding_nan``, an all-zero row ``embedding_zero``."""
    x = np.asarray(embeddings, dtype=np.float64)
    bad: dict[int, str] = {}
    finite = np.isfinite(x).all(axis=1)
    for i in np.flatnonzero(~finite):
        bad[int(i)] = "embedding_nan"
    zero = finite & ~np.any(x != 0, axis=1)
    for i in np.flatnonzero(zero):
        bad[int(i)] = "embedding_zero"
    good = np.flatnonzero(finite & ~zero)
    return good, bad


def _first_appearance(raw: np.ndarray) -> np.ndarray:
    mapping: dict[int, int] = {}
    return np.array([mapping.setdefault(int(c), len(mapping)) for c in raw], dtype=np.int64)


def exact_labels(x: np.ndarray, threshold: float) -> np.ndarray:
    """Today's method on unit rows: scipy average linkage over cosine pdist, cut at ``threshold`` (raw scipy ids)."""
    n = len(x)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    dist = np.clip(pdist(x, metric="cosine"), 0.0, 2.0)
    return fcluster(linkage(dist, method="average"), t=threshold, criterion="distance").astype(np.int64)


def default_nlist(n: int) -> int:
    """IVF cells for n rows: 4√n (4,000 at 1M), at least 40 rows per cell.

    Adding costs n·nlist·d (one GEMM against the cell centres) and each query scans nprobe·n/nlist rows; the two
    balance near nlist ≈ √(5·nprobe·n) because faiss's GEMM runs ~5× faster per flop than its per-query scan
    (measured here: 8 vs 1.5 GFLOP/s per core), i.e. ≈ 4√n at nprobe 4.
    """
    return int(max(1, min(65536, round(4 * np.sqrt(n)), n // 40)))


def ivf_cells(xf: np.ndarray, nlist: int, nprobe: int, seed: int = 0, niter: int = 10,
              sample_per_cell: int = 20) -> np.ndarray:
    """(n, nprobe) cells each row searches, nearest first (the first is its own cell): faiss k-means centres.

    The centres are trained on a fixed-seed sample of ``sample_per_cell`` rows per cell, so every run gets the same
    cells; each row's nearest centres come from faiss's flat (GEMM) search against them.
    """
    import faiss

    n, d = xf.shape
    nlist = int(max(1, min(nlist, n)))
    rng = np.random.default_rng(seed)
    m = min(n, sample_per_cell * nlist)
    sample = xf if m == n else xf[np.sort(rng.choice(n, size=m, replace=False))]
    km = faiss.Kmeans(d, nlist, niter=niter, seed=seed, spherical=True, min_points_per_centroid=1,
                      max_points_per_centroid=10**9, verbose=False)
    km.train(np.ascontiguousarray(sample))
    # Spherical k-means (unit centres) and cosine probing, as faiss's inner-product IVF trains and searches: in L2, or
    # with unnormalised centres, the broad cell near the population mean is nearly as close to every row as its own
    # identity's cell; at 100k it was probed by 60 % of the rows (search 7× slower) and rows that probed it instead
    # of their own cells linked to other people's clips.
    index = faiss.IndexFlatIP(d)
    index.add(km.centroids)
    _, probe = index.search(xf, int(min(nprobe, nlist)))
    return probe.astype(np.int64)


def knn_threshold_graph(x: np.ndarray, threshold: float, *, k: int = 16, nlist: int | None = None,
                        nprobe: int = 4, seed: int = 0, max_block: int = 1 << 23,
                        stats: ClusterStats | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Edges (i < j) between each row and its k nearest rows (in the cells it searched) within ``threshold``.

    An inverted-file search done with dense GEMMs. Each row belongs to its nearest k-means cell and searches its
    ``nprobe`` nearest cells (``ivf_cells``). Then, cell by cell, one inner-product GEMM compares the rows that
    search the cell with the cell's members, and a running top-k per row (``argpartition``) keeps the best k over
    all its cells. This is the IVF search of faiss's IndexIVFFlat with its per-query scan and heap replaced by
    BLAS: measured here, that scan ran at 0.5 GFLOP/s against ~18 for GEMM and took 60 % of the clustering time.
    Memory: the float32 rows, an (n, k) best list, and one block of at most ``max_block`` similarities.
    Deterministic: fixed-seed k-means, stable sorts.
    """
    n, d = x.shape
    xf = np.ascontiguousarray(x, dtype=np.float32)
    if nlist is None:
        nlist = default_nlist(n)
    nlist = int(max(1, min(nlist, n)))
    nprobe = int(min(max(1, nprobe), nlist))
    kk = int(min(k, n - 1))
    clock = time.process_time()
    probe = ivf_cells(xf, nlist, nprobe, seed)
    _lap(stats, "cells", clock)
    clock = time.process_time()
    cell = probe[:, 0]
    order = np.argsort(cell, kind="stable")
    starts = np.searchsorted(cell[order], np.arange(nlist + 1))
    flat = probe.ravel()
    q_order = np.argsort(flat, kind="stable")
    q_rows = (q_order // nprobe).astype(np.int64)
    q_starts = np.searchsorted(flat[q_order], np.arange(nlist + 1))
    cut = np.float32(1.0 - threshold - NEAR)
    best_sim = np.full((n, kk), -np.inf, np.float32)
    best_idx = np.full((n, kk), -1, np.int64)
    for c in range(nlist):
        members = order[starts[c]:starts[c + 1]]  # ascending: a stable sort of rows numbered in order
        queries = q_rows[q_starts[c]:q_starts[c + 1]]
        if not len(members) or not len(queries):
            continue
        xm = xf[members]
        step = max(1, max_block // len(members))
        for s in range(0, len(queries), step):
            q = queries[s:s + step]
            sim = xf[q] @ xm.T
            pos = np.searchsorted(members, q)
            own = (pos < len(members)) & (members[np.minimum(pos, len(members) - 1)] == q)
            sim[np.flatnonzero(own), pos[own]] = -np.inf  # never a row's own neighbour
            # Only neighbours within the cut become edges, so rows with none in this cell skip the top-k merge (most
            # rows probing a broad cell of other people's clips).
            hit = np.flatnonzero((sim >= cut).any(axis=1))
            if not len(hit):
                continue
            q, sim = q[hit], sim[hit]
            if len(members) > kk:
                top = np.argpartition(-sim, kk - 1, axis=1)[:, :kk]
                sim = np.take_along_axis(sim, top, axis=1)
                idx = members[top]
            else:
                idx = np.broadcast_to(members, sim.shape)
            both_sim = np.concatenate([best_sim[q], sim], axis=1)
            both_idx = np.concatenate([best_idx[q], idx], axis=1)
            keep = np.argpartition(-both_sim, kk - 1, axis=1)[:, :kk]
            best_sim[q] = np.take_along_axis(both_sim, keep, axis=1)
            best_idx[q] = np.take_along_axis(both_idx, keep, axis=1)
    saturated = int((best_sim.min(axis=1) >= cut).sum()) if kk == k else 0
    rows, cols = [], []
    for s in range(0, n, 4096):  # 4096 rows × k pairs × 2 float64 rows: ~130 MB at k 16
        sel = best_sim[s:s + 4096] >= cut
        i = np.repeat(np.arange(s, min(n, s + 4096)), kk)[sel.ravel()]
        j = best_idx[s:s + 4096][sel]
        # float32 picks the neighbours; every kept pair is decided in float64 (cheap: ≤ k per row).
        within = 1.0 - np.einsum("ij,ij->i", x[i], x[j]) <= threshold
        rows.append(np.minimum(i, j)[within])
        cols.append(np.maximum(i, j)[within])
    pairs = np.unique(np.concatenate(rows) * n + np.concatenate(cols)) if rows else np.zeros(0, np.int64)
    a, b = pairs // n, pairs % n
    _lap(stats, "search", clock)
    if stats is not None:
        stats.k, stats.nlist, stats.nprobe = k, nlist, nprobe
        stats.edges, stats.saturated = int(len(a)), saturated
    return a, b


def graph_average_linkage(x: np.ndarray, a: np.ndarray, b: np.ndarray, threshold: float,
                          sizes: np.ndarray | None = None) -> np.ndarray:
    """Average linkage restricted to graph edges (see the module notes, 3.); returns a cluster id per row.

    With ``sizes``, row i of ``x`` is the sum of ``sizes[i]`` unit vectors (a cluster) instead of one vector.
    """
    n = len(x)
    sums = {i: np.asarray(x[i], dtype=np.float64).copy() for i in range(n)}
    size = {i: (1 if sizes is None else int(sizes[i])) for i in range(n)}
    neigh: dict[int, set[int]] = {i: set() for i in range(n)}
    for i, j in zip(a.tolist(), b.tolist()):
        neigh[i].add(j)
        neigh[j].add(i)

    def dist(p: int, q: int) -> float:
        return 1.0 - float(sums[p] @ sums[q]) / (size[p] * size[q])

    heap = [(dist(i, j), i, j) for i in range(n) for j in neigh[i] if i < j]
    heapq.heapify(heap)
    parent = list(range(n))
    alive = set(range(n))
    nxt = n
    while heap:
        d, p, q = heapq.heappop(heap)
        if d > threshold:
            break
        if p not in alive or q not in alive:
            continue
        c = nxt
        nxt += 1
        sums[c] = sums.pop(p) + sums.pop(q)
        size[c] = size.pop(p) + size.pop(q)
        neigh[c] = (neigh.pop(p) | neigh.pop(q)) - {p, q}
        alive -= {p, q}
        alive.add(c)
        parent.extend([c])
        parent[p] = parent[q] = c
        for r in neigh[c]:
            neigh[r].discard(p)
            neigh[r].discard(q)
            neigh[r].add(c)
            heapq.heappush(heap, (dist(c, r), min(c, r), max(c, r)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    return np.array([root(i) for i in range(n)], dtype=np.int64)


def cluster_scalable(embeddings, threshold: float, *, exact_below: int = EXACT_BELOW,
                     exact_component: int = EXACT_COMPONENT, k: int = 16, nprobe: int = 4,
                     nlist: int | None = None, stats: ClusterStats | None = None) -> np.ndarray:
    """Average-linkage clusters cut at ``threshold``, labels 0.. in order of first appearance.

    Identical to ``identity.cluster_embeddings`` below ``exact_below`` rows (it is the same computation); above it,
    identical whenever the neighbour graph's threshold components are complete (module notes). Rows must be finite
    and non-zero (filter with ``split_invalid`` first).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    stats = stats if stats is not None else ClusterStats()
    x = unit_rows(embeddings)
    n = len(x)
    stats.n = n
    if n and not np.isfinite(x).all():
        raise ValueError("cluster_scalable: embeddings contain NaN/inf; filter them with split_invalid first")
    if n < exact_below:
        stats.method = "exact"
        return _first_appearance(exact_labels(x, threshold)) if n else np.zeros(0, np.int64)
    stats.method = "knn-graph"
    a, b = knn_threshold_graph(x, threshold, k=k, nprobe=nprobe, nlist=nlist, stats=stats)
    clock = time.process_time()
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n)).tocsr()
    n_comp, comp = connected_components(graph, directed=False)
    stats.components = int(n_comp)
    order = np.argsort(comp, kind="stable")
    bounds = np.flatnonzero(np.diff(comp[order])) + 1
    groups = np.split(order, bounds)
    stats.largest_component = int(max(len(g) for g in groups))
    raw = np.empty(n, dtype=np.int64)
    next_id = 0
    edge_comp = comp[a] if len(a) else np.zeros(0, np.int64)
    for g in groups:
        if len(g) == 1:
            raw[g] = next_id
            next_id += 1
            continue
        if len(g) <= exact_component:
            lab = exact_labels(x[g], threshold)
        else:
            stats.graph_linkage_components += 1
            local = np.full(n, -1, np.int64)
            local[g] = np.arange(len(g))
            sel = edge_comp == comp[g[0]]
            lab = graph_average_linkage(x[g], local[a[sel]], local[b[sel]], threshold)
        _, inv = np.unique(lab, return_inverse=True)
        raw[g] = inv + next_id
        next_id += int(inv.max()) + 1
    _lap(stats, "components", clock)
    clock = time.process_time()
    merged = _merge_close_clusters(x, raw, next_id, threshold, stats)
    _lap(stats, "merge", clock)
    return _first_appearance(merged)


def _merge_close_clusters(x: np.ndarray, raw: np.ndarray, n_clusters: int, threshold: float,
                          stats: ClusterStats, max_clusters: int = 20000) -> np.ndarray:
    """Continue average linkage over the clusters found: merge any two whose exact average distance is ≤ t.

    The k-NN graph keeps at most k pairs per point, so two large clusters whose mean distance is within t can end
    up in different components (their cross pairs were crowded out). Exact average linkage would merge them; this
    pass finds every such pair from the cluster sums (mean pair distance = 1 − S_A·S_B / (|A||B|)) and merges
    closest first. Pairs farther than t never become candidates later: merging two clusters that are both > t from
    C gives one that is > t from C. Skipped (and recorded) above ``max_clusters`` clusters.
    """
    from scipy.sparse import csr_matrix

    if n_clusters < 2:
        return raw
    if n_clusters > max_clusters:
        stats.extra["cluster_pass"] = f"skipped: {n_clusters} clusters > {max_clusters}"
        return raw
    n = len(x)
    member = csr_matrix((np.ones(n), (raw, np.arange(n))), shape=(n_clusters, n))
    sums = np.asarray(member @ x)
    sizes = np.bincount(raw, minlength=n_clusters)
    means = sums / sizes[:, None]
    rows, cols = [], []
    for start in range(0, n_clusters, 2048):
        d = 1.0 - means[start:start + 2048] @ means.T
        i, j = np.nonzero(d <= threshold)
        i = i + start
        keep = j > i
        rows.append(i[keep])
        cols.append(j[keep])
    a, b = np.concatenate(rows), np.concatenate(cols)
    stats.extra["cluster_pass_pairs"] = int(len(a))
    if not len(a):
        return raw
    merged = graph_average_linkage(sums, a, b, threshold, sizes=sizes)
    _, inv = np.unique(merged, return_inverse=True)
    return inv[raw]


def pair_scores(truth, pred) -> tuple[float, float, float]:
    """Pair precision, recall and F1 of a clustering against true labels, in O(n) via the contingency counts."""
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    joint = t.astype(np.int64) * (int(p.max()) + 1 if len(p) else 1) + p

    def pairs(counts):
        c = counts.astype(np.float64)
        return float((c * (c - 1) / 2).sum())

    tp = pairs(np.unique(joint, return_counts=True)[1])
    same_pred = pairs(np.bincount(p))
    same_true = pairs(np.bincount(t))
    precision = tp / same_pred if same_pred else 1.0
    recall = tp / same_true if same_true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def reject_invalid(rows: list[dict], rejections: list | None, stage: str = "cluster") -> list[dict]:
    """Rows with a usable embedding; the others become rejection rows (``embedding_nan``/``embedding_zero``).

    Without a ``rejections`` list a bad embedding is an error (``MediaError``), never a silent drop.
    """
    from ..errors import MediaError

    if not rows:
        return []
    dims = {len(r["embedding"]) for r in rows}
    if len(dims) != 1:
        raise MediaError(f"embeddings of different lengths {sorted(dims)}; one identity backend per run")
    good, bad = split_invalid(np.array([r["embedding"] for r in rows], dtype=np.float64))
    if not bad:
        return rows
    if rejections is None:
        first = rows[min(bad)]["candidate_id"]
        raise MediaError(f"{len(bad)} candidate(s) have an unusable embedding ({bad[min(bad)]}), first {first!r}; "
                         "pass a rejections list to record them")
    rejections += [invalid_rejection(rows[i], bad[i], stage) for i in sorted(bad)]
    return [rows[i] for i in good]


def invalid_rejection(row: dict, reason: str, stage: str = "cluster") -> dict:
    """The rejection row of a candidate whose embedding cannot be clustered."""
    import json

    return {"stage": stage, "item_id": str(row["candidate_id"]), "source_id": row.get("source_id"),
            "reason": reason, "value": None, "threshold": None,
            "detail": json.dumps({"backend": row.get("identity_backend")}, sort_keys=True)}
