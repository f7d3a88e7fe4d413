"""Streaming reenactment: one driver frame in, one frame out, with everything source-only computed once.

For a fixed source portrait, the motion generator's work splits into

- source-only, done once in ``set_source``: the source's encoding (appearance code ``w``, the skip features the
  renderer warps, already in float32 as ``grid_sample`` wants them, and the source's own motion code) and the
  orthonormal motion basis (a QR of the direction matrix, which on a GPU is a slow, synchronising call);
- per driver frame, in ``step``: encode the driver to its motion code, make it relative (LIA: source code plus the
  driver's change since its first frame), render.

``step`` is a pure function of the driver frame and the module's buffers, so for a fixed shape it can be captured
once as a CUDA graph (``capture_cuda_graph``) and replayed per frame without per-kernel launch costs. The graph path
only exists on CUDA; tests/models/test_streaming.py checks on the CPU that the cached path equals the plain
forward, frame by frame.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError
from .motion import MotionGenerator


class StreamingReenactor(nn.Module):
    def __init__(self, gen: MotionGenerator, relative: bool = True, amp_dtype: torch.dtype | None = None):
        super().__init__()
        self.gen = gen.eval().requires_grad_(False)
        self.relative, self.amp_dtype = relative, amp_dtype
        cfg = gen.cfg
        n_feats = len(gen.synthesis.to_flows) + 1  # one skip feature per flow scale, then the source image itself
        self.register_buffer("w", torch.zeros(1, cfg.style_dim), persistent=False)
        self.register_buffer("alpha_source", torch.zeros(1, cfg.motion_dim), persistent=False)
        self.register_buffer("alpha_first", torch.zeros(1, cfg.motion_dim), persistent=False)
        self.register_buffer("basis", torch.zeros(cfg.style_dim, cfg.motion_dim), persistent=False)
        for i in range(n_feats):
            self.register_buffer(f"feat{i}", torch.zeros(0), persistent=False)
        self.n_feats = n_feats
        self.has_source = self.has_first = False
        self._graph: Callable | None = None

    def _autocast(self, device: torch.device):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.amp_dtype)

    def feats(self) -> list[torch.Tensor]:
        return [getattr(self, f"feat{i}") for i in range(self.n_feats)]

    @torch.no_grad()
    def set_source(self, source: torch.Tensor) -> None:
        """source (1, 3, S, S) in [-1, 1]: encode it and cache everything that depends only on it."""
        if source.ndim != 4 or source.shape[0] != 1:
            raise ConfigError(f"streaming takes one source image (1, 3, S, S), found {tuple(source.shape)}")
        with self._autocast(source.device):
            enc = self.gen.encoder(source)
        self.w = enc.w
        self.alpha_source = enc.alpha.float()
        for i, f in enumerate(enc.feats):
            setattr(self, f"feat{i}", f.float())
        self.basis = self.gen.synthesis.directions.basis()  # (style_dim, motion_dim)
        self.has_source, self.has_first, self._graph = True, False, None

    def driver_alpha(self, frame: torch.Tensor) -> torch.Tensor:
        with self._autocast(frame.device):
            return self.gen.encoder(frame).alpha.float()  # (1, motion_dim)

    def render_alpha(self, alpha: torch.Tensor) -> torch.Tensor:
        """Render from a motion code with the cached source (MotionGenerator.render with the cached basis)."""
        with self._autocast(alpha.device):
            latent = (self.w.float() + alpha @ self.basis.t()).to(self.w.dtype)  # (1, style_dim)
            return self.gen.synthesis(latent, self.feats(), delta=alpha - self.alpha_source)  # (1, 3, S, S)

    def step(self, frame: torch.Tensor) -> torch.Tensor:
        """Pure per-frame work: driver frame (1, 3, S, S) -> rendered frame (1, 3, S, S). Graph-capturable."""
        alpha = self.driver_alpha(frame)
        if self.relative:
            alpha = MotionGenerator.relative_alpha(self.alpha_source, alpha, self.alpha_first)
        return self.render_alpha(alpha)

    @torch.no_grad()
    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        if not self.has_source:
            raise ConfigError("call set_source(source) before streaming driver frames")
        if self.relative and not self.has_first:
            self.alpha_first.copy_(self.driver_alpha(frame))  # in place: a captured graph reads this buffer
            self.has_first = True
        if self._graph is not None:
            return self._graph(frame)
        return self.step(frame)

    def use_cuda_graph(self, example: torch.Tensor) -> None:
        """Capture ``step`` for frames shaped like ``example`` (a CUDA tensor); forward then replays it."""
        with torch.no_grad():
            self._graph = capture_cuda_graph(self.step, example)


# ----------------------------------------------------------------------------------------------------------------
# CUDA graphs (GPU only)
# ----------------------------------------------------------------------------------------------------------------

def capture_cuda_graph(fn: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor,
                       warmup: int = 3) -> Callable[[torch.Tensor], torch.Tensor]:
    """Capture ``fn`` on a static copy of ``example``; the returned callable copies its input in and replays.

    Its output is a static buffer that the next call overwrites: copy it (or convert it) before the next frame.
    """
    if example.device.type != "cuda" or not torch.cuda.is_available():
        raise ConfigError(f"CUDA graphs need a CUDA tensor, found one on {example.device}")
    static_in = example.clone()
    side = torch.cuda.Stream(device=example.device)
    side.wait_stream(torch.cuda.current_stream(example.device))
    with torch.cuda.stream(side):  # warm-up outside the graph: cuDNN autotuning, lazy allocations
        for _ in range(warmup):
            fn(static_in)
    torch.cuda.current_stream(example.device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = fn(static_in)

    def replay(x: torch.Tensor) -> torch.Tensor:
        static_in.copy_(x)
        graph.replay()
        return static_out

    return replay
