"""Frechet distance on 2048-d covariances: talkbench's symmetric-solver path against scipy.linalg.sqrtm.

The reference is pytorch-fid's formula, ``Tr sqrtm(S1 S2)`` with scipy (talkbench's ``method="sqrtm"``, the
same code path that keeps the eps*I retry and the imaginary-part check). Inception-like features: non-negative,
power-law spectrum. Cases: full rank (more samples than dimensions) and rank-deficient (fewer). Values must agree
to 1e-6 relative. CPU time of this process, best of --repeat.

Run: python benchmarks/frechet_speed.py [--threads 1] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

_threads = "1"
if "--threads" in sys.argv:
    _threads = sys.argv[sys.argv.index("--threads") + 1]
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # before numpy/torch start their pools
    os.environ[_var] = _threads

import numpy as np  # noqa: E402
import torch  # noqa: E402


def inception_like(rng, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    scales = 1.0 / (1 + np.arange(d)) ** 1.5
    z = rng.normal(size=(n, d)) * scales
    return np.maximum(z @ rng.normal(size=(d, d)) / np.sqrt(d) + 0.05 + shift, 0)


def best(fn, repeat: int):
    out, t = None, float("inf")
    for _ in range(repeat):
        start = time.process_time()
        out = fn()
        t = min(t, time.process_time() - start)
    return t, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS/LAPACK/torch threads (set before import)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--dim", type=int, default=2048)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from talkbench.metrics.frechet import frechet_distance_details, gaussian_stats

    rng = np.random.default_rng(0)
    d = args.dim
    rows = []
    for name, n_real, n_fake in (("full rank", 3 * d, 2 * d), ("rank-deficient", d // 2, 2 * d)):
        s_a = gaussian_stats(inception_like(rng, n_real, d))
        s_b = gaussian_stats(inception_like(rng, n_fake, d, 0.02) * 1.05)
        t_ref, (ref, ref_method) = best(lambda: frechet_distance_details(*s_a, *s_b, method="sqrtm"), args.repeat)
        t_ours, (ours, method) = best(lambda: frechet_distance_details(*s_a, *s_b), args.repeat)
        rows.append((f"{d}-d, {name}", f"scipy sqrtm ({ref_method})", t_ref, 1.0, 0.0))
        rows.append((f"{d}-d, {name}", f"talkbench {method}", t_ours, t_ref / t_ours, abs(ours - ref) / abs(ref)))
    print(f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; CPU seconds per distance")
    print(f"| {'covariances':<24} | {'implementation':<24} | {'seconds':>8} | {'speed-up':>8} | {'rel. diff':>9} |")
    print(f"|{'-' * 26}|{'-' * 26}|{'-' * 10}|{'-' * 10}|{'-' * 11}|")
    for case, impl, t, speedup, diff in rows:
        print(f"| {case:<24} | {impl:<24} | {t:>8.2f} | {speedup:>7.1f}x | {diff:>9.1e} |")


if __name__ == "__main__":
    main()
