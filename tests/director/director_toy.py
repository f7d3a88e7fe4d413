"""A toy motion prior with a closed-form denoiser, and a DDIM inpainting sampler over it (for the sub-clip tests).

Motion is a Gaussian process over frames, x0 ~ N(0, K) per channel with K_ij = exp(-(i - j)² / 2ℓ²). Under the
forward process x_t = √ᾱ x0 + √(1-ᾱ) ε the optimal denoiser is closed form:
E[x0 | x_t] = √ᾱ K (ᾱ K + (1 - ᾱ) I)⁻¹ x_t, computed over the valid frames of each row only.
"""

from __future__ import annotations

import torch

LENGTH_SCALE = 6.0


def kernel(n: int, length_scale: float = LENGTH_SCALE) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64)
    return torch.exp(-((t[:, None] - t[None, :]) ** 2) / (2 * length_scale ** 2)) + 1e-6 * torch.eye(n, dtype=torch.float64)


def sample_prior(n: int, dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    chol = torch.linalg.cholesky(kernel(n))
    return chol @ torch.randn(n, dim, generator=gen, dtype=torch.float64)


def alphas_bar(steps: int = 1000) -> torch.Tensor:
    betas = torch.linspace(1e-4, 0.02, steps, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)


def gp_inpaint_sampler(n_steps: int = 25):
    """DDIM (η = 0) with replacement inpainting: clamped frames are set to their noised known values at every
    step and to the known values exactly at the end."""
    ab = alphas_bar()
    ts = torch.linspace(len(ab) - 1, 0, n_steps).round().long()

    def sampler(noise, known, clamp, valid, cond):
        out = torch.zeros_like(noise)
        for b in range(noise.shape[0]):
            n = int(valid[b].sum())
            K = kernel(n)
            x = noise[b, :n].clone()
            eps0 = noise[b, :n]
            c, k = clamp[b, :n, None], known[b, :n]
            for i, t in enumerate(ts):
                a = ab[t]
                x = torch.where(c, a.sqrt() * k + (1 - a).sqrt() * eps0, x)
                x0 = a.sqrt() * K @ torch.linalg.solve(a * K + (1 - a) * torch.eye(n, dtype=K.dtype), x)
                eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
                a_next = ab[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, dtype=K.dtype)
                x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
            out[b, :n] = torch.where(c, k, x)
        return out

    return sampler


def gp_conditional_sampler(n_steps: int = 25):
    """DDIM (η = 0) with a denoiser that knows the clamped frames (as a model trained for inpainting does): the
    prior is the GP conditioned on them, x0_f ~ N(μ, C) with μ = K_fc K_cc⁻¹ k and C = K_ff - K_fc K_cc⁻¹ K_cf, and
    E[x0_f | x_t] = μ + √ᾱ C (ᾱ C + (1 - ᾱ) I)⁻¹ (x_t - √ᾱ μ)."""
    ab = alphas_bar()
    ts = torch.linspace(len(ab) - 1, 0, n_steps).round().long()

    def sampler(noise, known, clamp, valid, cond):
        out = torch.where(clamp[..., None], known, torch.zeros_like(noise))
        for b in range(noise.shape[0]):
            n = int(valid[b].sum())
            K = kernel(n)
            c = clamp[b, :n]
            f = ~c
            if not f.any():
                continue
            Kcc, Kfc = K[c][:, c], K[f][:, c]
            mu = Kfc @ torch.linalg.solve(Kcc, known[b, :n][c])
            C = K[f][:, f] - Kfc @ torch.linalg.solve(Kcc, Kfc.T)
            eye = torch.eye(int(f.sum()), dtype=K.dtype)
            x = noise[b, :n][f]
            for i, t in enumerate(ts):
                a = ab[t]
                x0 = mu + a.sqrt() * C @ torch.linalg.solve(a * C + (1 - a) * eye, x - a.sqrt() * mu)
                eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
                a_next = ab[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, dtype=K.dtype)
                x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
            out[b, torch.nonzero(f).squeeze(1)] = x
        return out

    return sampler


def unclamped_sampler(n_steps: int = 25):
    """The same sampler with the clamp ignored until the final copy: a baseline whose boundaries jump."""
    inner = gp_inpaint_sampler(n_steps)

    def sampler(noise, known, clamp, valid, cond):
        free = inner(noise, known, torch.zeros_like(clamp), valid, cond)
        return torch.where(clamp[..., None], known, free)

    return sampler
