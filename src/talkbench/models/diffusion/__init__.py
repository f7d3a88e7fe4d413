"""Diffusion pieces apart from any network: schedules (pure functions), samplers (free functions), a denoiser
wrapper that owns the loss. A network only maps (x_t, t, condition) to an ε estimate."""

from .denoiser import EpsDenoiser
from .samplers import SAMPLERS, sample
from .schedules import Schedule, linear_schedule

__all__ = ["EpsDenoiser", "SAMPLERS", "sample", "Schedule", "linear_schedule"]
