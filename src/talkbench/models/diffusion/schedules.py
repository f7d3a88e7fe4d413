"""Noise schedules as pure functions (DDPM, Ho et al. 2020, Sec. 4: linear β from 1e-4 to 0.02 over T = 1000).

All arrays are float64 tensors on the CPU; samplers index them and move single values to the data's device.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Schedule(NamedTuple):
    betas: torch.Tensor  # (T,) β_t
    alphas_cumprod: torch.Tensor  # (T,) ᾱ_t = Π_{s<=t} (1 - β_s)

    @property
    def num_steps(self) -> int:
        return int(self.betas.shape[0])


def linear_betas(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Linear β_t (Ho et al. 2020). diffae/AniTalker scale both ends by 1000 / T so other T keep the same ᾱ_T."""
    scale = 1000.0 / num_steps
    return torch.linspace(scale * beta_start, scale * beta_end, num_steps, dtype=torch.float64)


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    return torch.cumprod(1.0 - betas, dim=0)


def linear_schedule(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    betas = linear_betas(num_steps, beta_start, beta_end)
    return Schedule(betas, alphas_cumprod(betas))


def q_sample(schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t x₀ + √(1-ᾱ_t) ε (Ho et al. 2020, Eq. 4); t is (B,) integer steps."""
    ac = schedule.alphas_cumprod.to(x0.device)[t].to(x0.dtype)
    shape = (-1,) + (1,) * (x0.ndim - 1)
    return ac.sqrt().view(shape) * x0 + (1 - ac).sqrt().view(shape) * noise


def predict_x0(schedule: Schedule, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Invert q_sample for x₀ given an ε estimate."""
    ac = schedule.alphas_cumprod.to(x_t.device)[t].to(x_t.dtype)
    shape = (-1,) + (1,) * (x_t.ndim - 1)
    return (x_t - (1 - ac).sqrt().view(shape) * eps) / ac.sqrt().view(shape)


def strided_timesteps(num_steps: int, sample_steps: int) -> list[int]:
    """The DDIM sub-sequence with stride T / N, descending: T=1000, N=50 → 980, 960, …, 0 (diffae's "ddimN")."""
    if not 1 <= sample_steps <= num_steps:
        raise ValueError(f"sample steps must be in [1, {num_steps}], got {sample_steps}")
    stride = num_steps // sample_steps
    return list(range(0, stride * sample_steps, stride))[::-1]
