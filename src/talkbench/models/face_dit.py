"""Face motion DiT (ChatAnyone, arXiv 2503.21144, §3.2; no public code): diffusion over per-frame expression
coefficients and 6-D head pose, the first stage of the upper-body avatar.

Per frame the motion is x = [expression (E) | pose6 (6)], pose6 = (yaw, pitch, roll ÷ 90°, tx, ty, scale) as the
upper-body target tables give it. The network is a DiT (Peebles & Xie 2023) whose blocks are

    AdaLN-Zero(self-attention over [style tokens | noisy motion tokens])
    → AdaLN-Zero(cross-attention to [speech tokens | previous-motion tokens])
    → AdaLN-Zero(MLP)

- **Audio** enters only by cross-attention: the MFCC front end of ``audio_features`` (HuBERT when installed), one
  token per video frame with the frame's sinusoidal position, so attention can align speech and motion.
- **Previous motion** (the last ``prev_frames`` frames before the window) is a second set of cross-attention tokens
  with negative positions.
- **Amplitude control** is carried by AdaLN: the conditioning vector is the timestep embedding plus an MLP of
  ``log(range / reference range)`` for the expression and the pose group. In training the range is measured from the
  ground-truth window (mean over the group's dimensions of max − min, in normalised units); ``amp_ref`` is the median
  training range. At inference the user's amplitude a ∈ [0.5, 2] gives log(a): a = 1 asks for a typical range. With a
  style reference, a = 1 means the reference's own range (``amplitude_features``).
- **Style reference**: the coefficient sequence of a reference video (``style_frames`` frames), projected and put
  BEFORE the noisy tokens along time; the network returns ε only for the noisy frames, so the reference is outside
  the loss. Without a reference a learned null token fills those positions (in training with prob. ``style_drop``).

The noise process, normalisation, CFG dropout and loss live in ``diffusion.EpsDenoiser``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from .audio_features import FRONT_ENDS, HubertFrontEnd, MfccFrontEnd
from .diffusion import EpsDenoiser

POSE_DIM = 6
AMPLITUDE_RANGE = (0.5, 2.0)  # the user's amplitude: outside this the model never saw such ranges in training


# ----------------------------------------------------------------------------------------------------------------
# Config and presets
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FaceDiTConfig:
    expr_dim: int = 52  # expression coefficients E (ChatAnyone: ARKit-like blendshapes; ours: the curation basis)
    dim: int = 512
    layers: int = 6  # ChatAnyone: 6
    heads: int = 8
    mlp_ratio: float = 4.0
    front_end: str = "mfcc"  # mfcc | hubert
    mfcc_hidden: int = 256
    speech_blocks: int = 4  # HuBERT path only
    window: int = 100  # frames per training / generation window (4 s at 25 fps)
    prev_frames: int = 10  # previous-motion tokens
    style_frames: int = 100  # style-reference tokens
    style_drop: float = 0.5  # training probability of the null style
    num_steps: int = 1000
    t_scale: float = 1e-3  # timestep index → [0, 1) for the sinusoidal embedding
    cond_drop_prob: float = 0.1  # CFG: speech replaced by the null token
    output: str = "v"  # what the network predicts; the wrapper turns it into ε
    dropout: float = 0.0

    def __post_init__(self):
        if self.front_end not in FRONT_ENDS:
            raise ValueError(f"unknown front end {self.front_end!r}; choose from {sorted(FRONT_ENDS)}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not a multiple of heads {self.heads}")

    @property
    def motion_dim(self) -> int:
        return self.expr_dim + POSE_DIM

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FaceDiTConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


PRESETS: dict[str, FaceDiTConfig] = {
    "paper": FaceDiTConfig(),
    "paper-hubert": FaceDiTConfig(front_end="hubert"),
    "tiny": FaceDiTConfig(expr_dim=16, dim=64, layers=2, heads=4, mfcc_hidden=64, window=32, prev_frames=4,
                          style_frames=32),
}


def get_config(preset: str) -> FaceDiTConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown face_dit preset {preset!r}; choose from {sorted(PRESETS)}")
    return PRESETS[preset]


# ----------------------------------------------------------------------------------------------------------------
# Blocks (shared with body_hands)
# ----------------------------------------------------------------------------------------------------------------

def sinusoidal(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """(…,) float positions → (…, dim) sin/cos features (Vaswani et al. 2017), periods 1 … 10⁴."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=pos.device, dtype=torch.float32) / half)
    ang = pos.float()[..., None] * freqs
    return torch.cat([ang.sin(), ang.cos()], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class CrossBlock(nn.Module):
    """Self-attention, cross-attention, MLP; pre-LN. With ``cond_dim`` each sub-layer is AdaLN-Zero modulated
    (shift, scale, gate from the conditioning vector; gates start at 0 so the block starts as the identity)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, cond_dim: int | None = None,
                 dropout: float = 0.0):
        super().__init__()
        self.norms = nn.ModuleList([nn.LayerNorm(dim, elementwise_affine=cond_dim is None) for _ in range(3)])
        self.ctx_norm = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.ada = None
        if cond_dim is not None:
            self.ada = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 9 * dim))
            nn.init.zeros_(self.ada[1].weight), nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, d), ctx (B, M, d), c (B, C) → (B, N, d)."""
        if self.ada is None:
            mods = [(None, None, None)] * 3
        else:
            chunks = self.ada(c).chunk(9, dim=-1)
            mods = [chunks[i:i + 3] for i in (0, 3, 6)]

        def pre(i, h):
            shift, scale, _ = mods[i]
            h = self.norms[i](h)
            return h if shift is None else modulate(h, shift, scale)

        def gate(i, h):
            g = mods[i][2]
            return h if g is None else g[:, None] * h

        h = pre(0, x)
        x = x + gate(0, self.self_attn(h, h, h, need_weights=False)[0])
        kv = self.ctx_norm(ctx)
        x = x + gate(1, self.cross_attn(pre(1, x), kv, kv, need_weights=False)[0])
        return x + gate(2, self.mlp(pre(2, x)))


def make_front_end(front_end: str, dim: int, mfcc_hidden: int, speech_blocks: int, heads: int) -> nn.Module:
    if front_end == "mfcc":
        return MfccFrontEnd(dim, mfcc_hidden)
    return HubertFrontEnd(dim, speech_blocks, min(heads, 2) if dim % 2 == 0 else 1)


# ----------------------------------------------------------------------------------------------------------------
# Network and model
# ----------------------------------------------------------------------------------------------------------------

class FaceDiTNet(nn.Module):
    def __init__(self, cfg: FaceDiTConfig):
        super().__init__()
        self.cfg = cfg
        d, m = cfg.dim, cfg.motion_dim
        self.front_end = make_front_end(cfg.front_end, d, cfg.mfcc_hidden, cfg.speech_blocks, cfg.heads)
        self.null_speech = nn.Parameter(torch.zeros(d))
        self.in_proj = nn.Linear(m, d)
        self.style_proj = nn.Linear(m, d)
        self.prev_proj = nn.Linear(m, d)
        self.null_style = nn.Parameter(torch.zeros(d))
        self.type_emb = nn.Parameter(torch.zeros(4, d))  # motion, style, speech, previous motion
        self.t_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.amp_mlp = nn.Sequential(nn.Linear(2, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList([CrossBlock(d, cfg.heads, cfg.mlp_ratio, d, cfg.dropout)
                                     for _ in range(cfg.layers)])
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.out = nn.Linear(d, m)
        nn.init.zeros_(self.final_ada[1].weight), nn.init.zeros_(self.final_ada[1].bias)

    def encode_speech(self, audio: torch.Tensor) -> torch.Tensor:
        return self.front_end(audio)  # (B, T, d)

    def forward(self, x_t: torch.Tensor, c_noise: torch.Tensor, cond: dict, drop: torch.Tensor):
        """x_t (B, T, M) normalised; cond: speech (B, T, d) or audio (B, F·T, C); prev (B, P, M) normalised;
        amp (B, 2); style (B, S, M) normalised and style_on (B,) bool (optional). → (ε or v (B, T, M), {})."""
        b, t, _ = x_t.shape
        d, dev = self.cfg.dim, x_t.device
        speech = cond["speech"] if "speech" in cond else self.encode_speech(cond["audio"])
        speech = torch.where(drop[:, None, None], self.null_speech.to(speech.dtype).expand_as(speech), speech)
        pos_t = sinusoidal(torch.arange(t, device=dev), d)  # (T, d)
        h = self.in_proj(x_t) + pos_t + self.type_emb[0]  # (B, T, d)
        s = self.cfg.style_frames
        style = cond.get("style")
        if style is None:
            style_tok = self.null_style.expand(b, s, d)
        else:
            style_tok = self.style_proj(style[:, -s:])  # (B, S', d)
            if style_tok.shape[1] < s:  # a shorter reference is padded with null tokens at its start
                pad = self.null_style.expand(b, s - style_tok.shape[1], d)
                style_tok = torch.cat([pad, style_tok], 1)
            on = cond.get("style_on", torch.ones(b, dtype=torch.bool, device=dev))
            style_tok = torch.where(on[:, None, None], style_tok, self.null_style.expand(b, s, d))
        style_tok = style_tok + sinusoidal(torch.arange(s, device=dev), d) + self.type_emb[1]
        h = torch.cat([style_tok.to(h.dtype), h], 1)  # (B, S + T, d): the reference before the noise
        prev = cond["prev"]  # (B, P, M)
        pos_p = sinusoidal(torch.arange(-prev.shape[1], 0, device=dev), d)
        ctx = torch.cat([speech.to(h.dtype) + pos_t + self.type_emb[2],
                         self.prev_proj(prev) + pos_p + self.type_emb[3]], 1)  # (B, T + P, d)
        c = self.t_mlp(sinusoidal(c_noise * 1000.0, d)) + self.amp_mlp(cond["amp"].to(h.dtype))  # (B, d)
        for block in self.blocks:
            h = block(h, ctx, c)
        shift, scale = self.final_ada(c).chunk(2, dim=-1)
        out = self.out(modulate(self.final_norm(h), shift, scale))  # (B, S + T, M)
        return out[:, s:], {}  # only the noisy frames: the style reference is never in the loss


class FaceDiT(nn.Module):
    def __init__(self, cfg: FaceDiTConfig):
        super().__init__()
        self.cfg = cfg
        self.net = FaceDiTNet(cfg)
        self.diffusion = EpsDenoiser(self.net, cfg.motion_dim, cfg.num_steps, cfg.t_scale, cfg.cond_drop_prob,
                                     cfg.output)
        self.register_buffer("amp_ref", torch.ones(2))  # median training range (expression, pose), normalised

    @property
    def frames_per_video_frame(self) -> int:
        return self.net.front_end.frames_per_video_frame

    # --- amplitude ---------------------------------------------------------------------------------------------
    def motion_range(self, motion: torch.Tensor) -> torch.Tensor:
        """(B, T, M) data units → (B, 2): mean over the group's dims of max − min over time, normalised units."""
        x = self.diffusion.normalize(motion)
        r = x.amax(1) - x.amin(1)  # (B, M)
        e = self.cfg.expr_dim
        return torch.stack([r[:, :e].mean(1), r[:, e:].mean(1)], 1)

    @torch.no_grad()
    def fit_amplitude(self, windows: torch.Tensor) -> None:
        """Set ``amp_ref`` to the median range of training windows (N, T, M)."""
        self.amp_ref.copy_(self.motion_range(windows).median(0).values.clamp_min(1e-4))

    def amplitude_features(self, motion_or_amp, style: torch.Tensor | None = None) -> torch.Tensor:
        """Training: a (B, T, M) window → log(range / amp_ref). Inference: a float or (B,) amplitude a →
        log(a) + log(style range / amp_ref) when a style reference is given (a = 1 keeps the reference's range)."""
        if torch.is_tensor(motion_or_amp) and motion_or_amp.ndim == 3:
            return torch.log(self.motion_range(motion_or_amp).clamp_min(1e-4) / self.amp_ref)
        a = torch.as_tensor(motion_or_amp, dtype=torch.float32, device=self.amp_ref.device).reshape(-1, 1)
        feats = torch.log(a).expand(-1, 2)
        if style is not None:
            feats = feats + self.amplitude_features(style)
        return feats

    # --- training ----------------------------------------------------------------------------------------------
    def losses(self, batch: dict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """batch: motion (B, T, M), prev (B, P, M), audio (B, F·T, C), optional style (B, S, M) (data units)."""
        motion = batch["motion"]
        b = motion.shape[0]
        cond = {"audio": batch["audio"], "prev": self.diffusion.normalize(batch["prev"]),
                "amp": self.amplitude_features(motion)}
        if "style" in batch:
            cond["style"] = self.diffusion.normalize(batch["style"])
            keep = torch.rand(b, device=motion.device, generator=generator) >= self.cfg.style_drop
            cond["style_on"] = keep
        eps, _ = self.diffusion.loss(motion, cond, generator)
        return {"eps": eps, "total": eps}

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        return self.losses(batch)

    # --- generation --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, audio: torch.Tensor, prev: torch.Tensor, *, amplitude: float = 1.0,
                 style: torch.Tensor | None = None, steps: int = 25, guidance: float = 1.0, sampler: str = "ddim",
                 seed: int | None = 0) -> torch.Tensor:
        """Motion (B, T, M) in data units for audio features (B, F·T, C), T = frames // F, by consecutive windows
        of ``cfg.window`` frames; each window's previous motion is the end of the one before (``prev`` (B, P, M)
        for the first)."""
        f, w = self.frames_per_video_frame, self.cfg.window
        total = audio.shape[1] // f
        dev = self.amp_ref.device
        gen = torch.Generator("cpu" if dev.type == "meta" else dev)
        if seed is not None:
            gen.manual_seed(seed)
        b = audio.shape[0]
        amp = self.amplitude_features(amplitude, style).expand(b, 2)
        style_n = self.diffusion.normalize(style) if style is not None else None
        out, p = [], prev
        for s in range(0, total, w):
            n = min(w, total - s)
            speech = self.net.encode_speech(audio[:, s * f:(s + n) * f])
            cond = {"speech": speech, "prev": self.diffusion.normalize(p[:, -self.cfg.prev_frames:]), "amp": amp}
            if style_n is not None:
                cond["style"] = style_n
            x = self.diffusion.sample((b, n, self.cfg.motion_dim), cond, steps=steps, sampler=sampler,
                                      guidance=guidance, generator=gen)
            out.append(x)
            p = torch.cat([p, x], 1)
        return torch.cat(out, 1)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(cfg: FaceDiTConfig) -> str:
    return (f"{cfg.layers} × d {cfg.dim} DiT, {cfg.front_end}, expression {cfg.expr_dim} + pose 6, window "
            f"{cfg.window}, style {cfg.style_frames} frames")


def param_table(cfg: FaceDiTConfig) -> list[tuple[str, int]]:
    """Parameter count by module and the total (``models summary avatar-face``)."""
    net = FaceDiT(cfg).net
    rows = [(name, count_params(child)) for name, child in net.named_children()]
    rows.append(("other (null tokens, embeddings)", count_params(net) - sum(n for _, n in rows)))
    return [r for r in rows if r[1]] + [("total", count_params(net))]
