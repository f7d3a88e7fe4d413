"""Identity clustering that scales: exact average linkage, computed only where it can merge anything.

Today's method (``identity.cluster_embeddings``) is scipy's average linkage over the full cosine ``pdist``, cut at a
distance ``t``: two candidates share an identity when the merge that joins them happens at height ≤ t. Its memory is
O(n²) (100k candidates → 40 GB). This module gives the same partition without the full matrix.

Semantics (exact, and why)
--------------------------
1. **Threshold graph.** G has an edge (i, j) for every pair whose cosine distance is ≤ t that the neighbour search
   found. Below ``EXACT_BELOW`` candidates G is never built: the whole set goes to scipy exactly as today.
   Above it, G comes from a k-nearest-neighbour search (faiss ``IndexIVFFlat`` on inner product of the unit vectors,
   searched in chunks; the IVF cell is the blocking key, see 4.); a found pair's float32 distance decides the ≤ t
   test unless it lies within ``NEAR`` of t, where it is recomputed in float64.
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
   With k = 32, a person with more than 32 clips has more within-t pairs than G keeps, so exactness above
   ``EXACT_BELOW`` is this component condition, checked empirically: tests/curation/test_clustering.py (labels
   identical to the exact method) and ``benchmarks/curation_scale.py --exact-check N``. If the IVF search misses
   the only pair that bridges two exact clusters, they stay apart (a split; in the test where nprobe 8 was too
   low, that was the only difference); raise ``nprobe`` for harder data.
4. **Blocking without losing cross-video merges.** The blocking key is the embedding's IVF cell (a k-means cell of
   the embedding space), never the source video, so a person's clips from different videos fall in the same or
   neighbouring cells; each query scans its ``nprobe`` nearest cells, so pairs across a cell border are still found.
   ``ClusterStats.saturated`` counts points whose k-th neighbour was still within t (their list may be cut short);
   ``ClusterStats.edges`` and the component sizes are reported so a run can show its graph was not starved.

NaN or zero embeddings (a corrupt crop) are never clustered: ``split_invalid`` returns them with the reason
``embedding_nan`` (or ``embedding_zero``), and ``assign_identities`` records or refuses them.

ANN library: faiss-cpu (MIT licence, Meta), pinned in pyproject.toml. Chosen over hnswlib (Apache-2.0; its 0.8.0
release is a source distribution, so installs compile C++) and pynndescent (BSD-2; pulls numba/llvmlite and
JIT-compiles on first use). faiss installs as a wheel next to numpy<2, exposes exact and
IVF inner-product search with the same API, and searches in C++ threads without holding the GIL.
"""

from __future__ import annotations

import heapq
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


def knn_threshold_graph(x: np.ndarray, threshold: float, *, k: int = 32, nlist: int | None = None,
                        nprobe: int = 16, chunk: int = 4096, seed: int = 0,
                        stats: ClusterStats | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Edges (i < j) of the k-NN graph whose exact cosine distance is ≤ threshold, from a faiss IVF search.

    The index is trained on a fixed-seed sample so the graph is the same on every run. Queries go in chunks, so
    memory is the index (n × d float32) plus one chunk's k neighbours.
    """
    import faiss

    n, d = x.shape
    xf = np.ascontiguousarray(x, dtype=np.float32)
    if nlist is None:
        nlist = int(max(1, min(65536, round(2 * np.sqrt(n)), n // 40)))
    nprobe = min(nprobe, nlist)
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    rng = np.random.default_rng(seed)
    n_train = min(n, 20 * nlist)
    train = xf[np.sort(rng.choice(n, size=n_train, replace=False))] if n_train < n else xf
    index.cp.seed = seed
    index.train(train)
    index.add(xf)
    index.nprobe = nprobe
    kk = min(k + 1, n)
    rows, cols = [], []
    saturated = 0
    for start in range(0, n, chunk):
        q = xf[start:start + chunk]
        sim, idx = index.search(q, kk)
        # A point whose farthest returned neighbour is still within t may have more within-t neighbours.
        saturated += int(((idx[:, -1] >= 0) & (1.0 - sim[:, -1] <= threshold + NEAR)).sum())
        i = np.repeat(np.arange(start, start + len(q)), kk)
        j = idx.ravel()
        dist = 1.0 - sim.ravel().astype(np.float64)
        keep = (j >= 0) & (j != i) & (dist <= threshold + NEAR)
        i, j, dist = i[keep], j[keep], dist[keep]
        # float32 search distances decide clear cases; pairs within NEAR of the cut are recomputed in float64.
        near = np.abs(dist - threshold) <= NEAR
        if near.any():
            dist[near] = 1.0 - np.einsum("ij,ij->i", x[i[near]], x[j[near]])
        within = dist <= threshold
        i, j = i[within], j[within]
        a, b = np.minimum(i, j), np.maximum(i, j)
        rows.append(a)
        cols.append(b)
    a = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    b = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    pairs = np.unique(a.astype(np.int64) * n + b.astype(np.int64))
    a, b = pairs // n, pairs % n
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
                     exact_component: int = EXACT_COMPONENT, k: int = 32, nprobe: int = 8,
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
    return _first_appearance(_merge_close_clusters(x, raw, next_id, threshold, stats))


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
    import json

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
    for i in sorted(bad):
        row = rows[i]
        rejections.append({"stage": stage, "item_id": str(row["candidate_id"]), "source_id": row.get("source_id"),
                           "reason": bad[i], "value": None, "threshold": None,
                           "detail": json.dumps({"backend": row.get("identity_backend")}, sort_keys=True)})
    return [rows[i] for i in good]
