"""Samplers: free functions with one signature.

    sampler(eps_fn, x, schedule, timesteps, *, guidance=1.0, known=None, known_mask=None, clip_x0=True,
            generator=None, callback=None) -> x0

``eps_fn(x_t, t, drop_cond)`` returns the network's ε estimate for a (B,) integer step tensor ``t``; with
``drop_cond=True`` it must return the unconditional estimate (the null condition seen in training).
``x`` is the starting noise x_T. ``timesteps`` is a descending list of steps, e.g.
``schedules.strided_timesteps(1000, 50)``; the samplers use the ᾱ of those steps only (diffae's respacing), so any
sub-sequence is a valid, shorter chain.

Classifier-free guidance (Ho & Salimans 2022): ε = ε_u + s (ε_c − ε_u); s = 1.0 calls the network once, unguided.
Clamping / inpainting (RePaint-style replacement, Lugmayr et al. 2022): where ``known_mask`` is True, x_t is replaced
by a noised copy of ``known`` before every network call and the returned x₀ equals ``known`` exactly there. The mask
broadcasts over x, so a (B, T, 1) mask fixes whole frames — e.g. the first and last frame of every sub-clip in one
batch.
"""

from __future__ import annotations

from typing import Callable

import torch

from .schedules import Schedule, predict_x0

EpsFn = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]


def _guided_eps(eps_fn: EpsFn, x: torch.Tensor, t: torch.Tensor, guidance: float) -> torch.Tensor:
    eps = eps_fn(x, t, False)
    if guidance != 1.0:
        eps_u = eps_fn(x, t, True)
        eps = eps_u + guidance * (eps - eps_u)
    return eps


def _ac(schedule: Schedule, step: int, like: torch.Tensor) -> torch.Tensor:
    """ᾱ at one step (ᾱ_{-1} = 1) as a 0-d tensor of x's dtype on x's device."""
    value = 1.0 if step < 0 else float(schedule.alphas_cumprod[step])
    return torch.tensor(value, dtype=like.dtype, device=like.device)


class _Clamp:
    """Holds the known values, their mask and a fixed noise draw (so DDIM stays deterministic for a seed)."""

    def __init__(self, x, known, known_mask, generator):
        self.active = known is not None
        if not self.active:
            return
        if known_mask is None:
            raise ValueError("known values were given without known_mask")
        self.known = known.to(x.dtype)
        self.mask = known_mask.to(torch.bool).expand_as(x)
        self.noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device) \
            if x.device.type != "meta" else torch.empty_like(x)

    def noised(self, x: torch.Tensor, ac: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return x
        return torch.where(self.mask, ac.sqrt() * self.known + (1 - ac).sqrt() * self.noise, x)

    def final(self, x0: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, self.known, x0) if self.active else x0


def ddim(eps_fn: EpsFn, x: torch.Tensor, schedule: Schedule, timesteps: list[int], *, guidance: float = 1.0,
         known: torch.Tensor | None = None, known_mask: torch.Tensor | None = None, clip_x0: bool = True,
         generator: torch.Generator | None = None, callback=None) -> torch.Tensor:
    """DDIM with η = 0 (Song, Meng & Ermon 2021, Eq. 12): x_{t'} = √ᾱ_{t'} x̂₀ + √(1−ᾱ_{t'}) ε̂."""
    clamp = _Clamp(x, known, known_mask, generator)
    steps = list(timesteps) + [-1]
    for i, (t, t_next) in enumerate(zip(steps[:-1], steps[1:])):
        ac, ac_next = _ac(schedule, t, x), _ac(schedule, t_next, x)
        x = clamp.noised(x, ac)
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        eps = _guided_eps(eps_fn, x, tt, guidance)
        x0 = (x - (1 - ac).sqrt() * eps) / ac.sqrt()
        if clip_x0:
            x0 = x0.clamp(-1, 1)
            eps = (x - ac.sqrt() * x0) / (1 - ac).sqrt()  # keep ε consistent with the clipped x̂₀ (diffae)
        x = ac_next.sqrt() * x0 + (1 - ac_next).sqrt() * eps if t_next >= 0 else x0
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0": x0})
    return clamp.final(x)


def ddpm(eps_fn: EpsFn, x: torch.Tensor, schedule: Schedule, timesteps: list[int], *, guidance: float = 1.0,
         known: torch.Tensor | None = None, known_mask: torch.Tensor | None = None, clip_x0: bool = True,
         generator: torch.Generator | None = None, callback=None) -> torch.Tensor:
    """Ancestral DDPM (Ho, Jain & Abbeel 2020, Eq. 6–7) on the given steps, with the posterior variance
    β̃ = (1−ᾱ_{t'})/(1−ᾱ_t) · (1 − ᾱ_t/ᾱ_{t'}) of the respaced chain."""
    clamp = _Clamp(x, known, known_mask, generator)
    steps = list(timesteps) + [-1]
    for i, (t, t_next) in enumerate(zip(steps[:-1], steps[1:])):
        ac, ac_next = _ac(schedule, t, x), _ac(schedule, t_next, x)
        x = clamp.noised(x, ac)
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        eps = _guided_eps(eps_fn, x, tt, guidance)
        x0 = (x - (1 - ac).sqrt() * eps) / ac.sqrt()
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        if t_next < 0:
            x = x0
        else:
            beta = 1 - ac / ac_next
            mean = (ac_next.sqrt() * beta / (1 - ac)) * x0 + ((1 - beta).sqrt() * (1 - ac_next) / (1 - ac)) * x
            var = beta * (1 - ac_next) / (1 - ac)
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = mean + var.sqrt() * noise
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0": x0})
    return clamp.final(x)


SAMPLERS = {"ddim": ddim, "ddpm": ddpm}


def sample(name: str, *args, **kwargs) -> torch.Tensor:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose from {sorted(SAMPLERS)}")
    return SAMPLERS[name](*args, **kwargs)


__all__ = ["SAMPLERS", "ddim", "ddpm", "sample", "predict_x0"]
