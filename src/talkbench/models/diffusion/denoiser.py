"""The ε-prediction wrapper: owns the noise process, the data normalisation, the timestep preconditioning,
the classifier-free-guidance condition dropout and the loss. The wrapped network never sees a schedule.

Network contract: ``net(x_t, c_noise, cond, drop) -> (eps, extras)`` with x_t (B, T, D) in normalised units,
c_noise (B,) float (the step index times ``t_scale``), ``cond`` a dict of tensors and ``drop`` a (B,) bool mask of
samples whose condition must be replaced by the null condition; ``extras`` is a dict the network may fill (the
variance adapter's predictions) and which ``loss`` passes back.

Training objective: L_simple of DDPM (Ho et al. 2020, Eq. 14): ‖ε − ε_θ(√ᾱ_t x₀ + √(1−ᾱ_t) ε, t)‖² with t uniform;
with ``output="v"`` the same error divided by ᾱ_t, i.e. the v MSE (Salimans & Ho 2022).
"""

from __future__ import annotations

import torch
from torch import nn

from . import samplers as _samplers
from .schedules import linear_schedule, q_sample, strided_timesteps


OUTPUTS = ("eps", "v")  # what the network's output means; the wrapper turns either into ε̂


@torch.no_grad()
def centre_and_scale(samples: torch.Tensor, quantile: float = 0.999) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension (mean, |deviation| quantile) of samples (N, D): (x - mean) / scale puts that quantile at 1."""
    mean = samples.float().mean(0)
    scale = torch.quantile((samples.float() - mean).abs(), quantile, dim=0).clamp_min(1e-3)  # constant dims stay finite
    return mean, scale


class EpsDenoiser(nn.Module):
    def __init__(self, net: nn.Module, dim: int, num_steps: int = 1000, t_scale: float = 1.0,
                 cond_drop_prob: float = 0.0, output: str = "eps", stretch: bool = False):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"unknown network output {output!r}; choose from {sorted(OUTPUTS)}")
        self.net = net
        self.output = output
        self.schedule = linear_schedule(num_steps)  # float64 CPU tensors: not buffers, so .half() cannot round them
        self.t_scale = float(t_scale)
        self.cond_drop_prob = float(cond_drop_prob)
        # x_norm = (x - data_mean) / data_scale; set from training data so x₀ clipping to [-1, 1] is meaningful.
        self.register_buffer("data_mean", torch.zeros(dim))
        self.register_buffer("data_scale", torch.ones(dim))
        # Optional stretch of one direction u of the normalised space by a gain g (``fit_stretch``):
        # x ↦ x + (g−1)(x·u)u.
        # A direction that carries a small but conditioned part of the data (the mouth of motion codes dominated by
        # head motion) otherwise sits below the noise at every step but the last few, so the network never learns it.
        self.stretched = stretch
        if stretch:
            self.register_buffer("stretch_dir", torch.zeros(dim))  # unit vector; zeros = identity
            self.register_buffer("stretch_gain", torch.ones(()))

    # --- normalisation ---------------------------------------------------------------------------------------
    def _stretch(self, x: torch.Tensor, gain) -> torch.Tensor:
        u = self.stretch_dir.to(x.dtype)
        return x + (gain - 1) * (x @ u)[..., None] * u

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.data_mean) / self.data_scale
        return self._stretch(x, self.stretch_gain.to(x.dtype)) if self.stretched else x

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        if self.stretched:
            x = self._stretch(x, 1 / self.stretch_gain.to(x.dtype))
        return x * self.data_scale + self.data_mean

    @torch.no_grad()
    def fit_stretch(self, direction: torch.Tensor, projections: torch.Tensor, quantile: float = 0.999) -> float:
        """Stretch the normalised space along ``direction`` (D,) so that the |deviation| quantile of ``projections``
        (N,) — the per-dimension-normalised data projected on it — becomes 1, as ``fit_normalization`` makes it for
        each dimension. Returns the gain (≥ 1: a direction is never shrunk)."""
        if not self.stretched:
            raise ValueError("this denoiser was built with stretch=False")
        u = direction.float() / direction.float().norm()
        dev = (projections.float() - projections.float().mean()).abs()
        gain = float(1 / torch.quantile(dev, quantile).clamp_min(1e-6))
        self.stretch_dir.copy_(u), self.stretch_gain.fill_(max(gain, 1.0))
        return float(self.stretch_gain)

    @torch.no_grad()
    def fit_normalization(self, samples: torch.Tensor, quantile: float = 0.999) -> None:
        """Centre each dimension and scale its |deviation| quantile to 1 (samples: (N, D))."""
        mean, scale = centre_and_scale(samples, quantile)
        self.data_mean.copy_(mean), self.data_scale.copy_(scale)

    # --- network call ----------------------------------------------------------------------------------------
    def eps(self, x_t, t, cond: dict, drop: torch.Tensor | None = None):
        """(ε̂, extras). With output "v" the network predicts v = √ᾱ ε − √(1−ᾱ) x₀ (Salimans & Ho 2022) and
        ε̂ = √(1−ᾱ) x_t + √ᾱ v̂: at high noise ε̂ ≈ x_t needs no copying through the network, and x̂₀ ≈ −v̂ is
        not amplified by 1/√ᾱ. The loss is still the ε MSE."""
        if drop is None:
            drop = torch.zeros(x_t.shape[0], dtype=torch.bool, device=x_t.device)
        out, extras = self.net(x_t, t.to(x_t.dtype if x_t.is_floating_point() else torch.float32) * self.t_scale,
                               cond, drop)
        if self.output == "v":
            ac = self.schedule.alphas_cumprod.to(x_t.device)[t].to(out.dtype).view(-1, *([1] * (x_t.ndim - 1)))
            out = (1 - ac).sqrt() * x_t.to(out.dtype) + ac.sqrt() * out
        return out, extras

    def loss(self, x0: torch.Tensor, cond: dict, generator: torch.Generator | None = None,
             weight_direction: torch.Tensor | None = None, direction_weight: float = 0.0):
        """(ε MSE, extras) for clean data x0 (B, T, D) in data units. ``weight_direction`` (D,), a unit vector in the
        normalised space, and ``direction_weight`` w add w · mean((ε̂ − ε)·u)² to the MSE: the error along u counts
        1 + w·D times as much as along any direction orthogonal to it (a small-variance direction the condition
        explains — the mouth — is not drowned by the rest)."""
        b = x0.shape[0]
        x0 = self.normalize(x0)
        t = torch.randint(0, self.schedule.num_steps, (b,), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        drop = torch.rand(b, device=x0.device, generator=generator) < self.cond_drop_prob
        eps, extras = self.eps(q_sample(self.schedule, x0, t, noise), t, cond, drop)
        diff = eps.float() - noise.float()
        err = diff.pow(2).mean(-1)  # (B, ...) mean over the D dimensions
        if weight_direction is not None and direction_weight:
            err = err + direction_weight * (diff @ weight_direction.to(diff)).pow(2)
        if self.output == "v":  # MSE on v = the ε MSE / ᾱ_t: the high-noise steps, where only the condition
            # tells x₀, are not down-weighted to nothing (Salimans & Ho 2022)
            err = err / self.schedule.alphas_cumprod.to(err.device)[t].float().view(-1, *([1] * (err.ndim - 1)))
        return err.mean(), extras

    @torch.no_grad()
    def sample(self, shape, cond: dict, *, steps: int = 50, sampler: str = "ddim", guidance: float = 1.0,
               known: torch.Tensor | None = None, known_mask: torch.Tensor | None = None, clip_x0: bool = True,
               generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Samples in data units. ``known`` is in data units too; ``steps`` picks the stride T/steps."""
        device = self.data_mean.device
        x = noise if noise is not None else torch.randn(shape, generator=generator, device=device)

        def eps_fn(x_t, t, drop_cond):
            drop = torch.full((x_t.shape[0],), bool(drop_cond), dtype=torch.bool, device=x_t.device)
            return self.eps(x_t, t, cond, drop)[0].to(x_t.dtype)

        known_n = self.normalize(known) if known is not None else None
        timesteps = strided_timesteps(self.schedule.num_steps, steps)
        out = _samplers.sample(sampler, eps_fn, x, self.schedule, timesteps, guidance=guidance, known=known_n,
                               known_mask=known_mask, clip_x0=clip_x0, generator=generator)
        out = self.denormalize(out)
        if known is not None:  # exact in data units too (normalise/denormalise round-trips can differ by an ulp)
            out = torch.where(known_mask.to(torch.bool).expand_as(out), known.to(out.dtype), out)
        return out
