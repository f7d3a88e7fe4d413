"""Speech → motion diffusion (AniTalker stage 2, X-LANCE/AniTalker ``code/model/seq2seq.py`` read; written here).

Per video frame (25 fps) the network sees a 1024-channel concatenation (paper sizes):
speech feature (512, after the variance adapter) | Linear(20→128) of the hint motion (the frame before the window;
the source's motion at inference) | Linear(512→128) of the source identity latent | Linear(20→128) of the noisy
motion x_t | Linear(1→128) of the timestep — then a 2-block Conformer (d 1024) and Linear(1024→20) predicting ε.
The variance adapter predicts location → scale → pose (yaw/pitch/roll ÷ 90) from the speech feature with 2-layer
LSTMs and adds LSTM encodings of them back to it; a control set replaces predictions with given values.

Beyond AniTalker: optional classifier-free guidance (the speech feature is replaced by a learned null vector with
probability ``cond_drop_prob`` in training; ``guidance`` at sampling, 1.0 = off) and windowed generation for long
speech (fixed windows, overlap, linear cross-fade in latent space; memory does not grow with length). AniTalker's
whole-utterance single pass is ``mode="single"``. The noise process lives in ``diffusion/``, not here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import torch
from torch import nn

from .audio_features import FRONT_ENDS, HubertFrontEnd, MfccFrontEnd
from .conformer import Conformer, ConformerConfig
from .diffusion import EpsDenoiser
from .diffusion.denoiser import centre_and_scale

ATTRIBUTES = {"location": 1, "scale": 1, "pose": 3}  # adapter order: location → scale → pose (AniTalker)
VARIANCE = {"full": ("location", "scale", "pose"), "pose": ("pose",), "none": ()}  # mfcc_full_control, *_pose_only,
# hubert_audio_only


# ----------------------------------------------------------------------------------------------------------------
# Config and presets
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Audio2MotionConfig:
    front_end: str = "mfcc"  # mfcc | hubert
    speech_dim: int = 512
    mfcc_hidden: int = 256
    speech_blocks: int = 4  # HuBERT path only
    proj_dim: int = 128  # each of hint motion, identity, x_t and timestep
    motion_dim: int = 20
    identity_dim: int = 512  # the stage-1 style_dim
    motion_preset: str = "base"  # the stage-1 preset whose latents this model reads
    decoder_blocks: int = 2
    heads: int = 2
    kernel: int = 13
    dropout: float = 0.2
    lstm_hidden: int = 128
    lstm_layers: int = 2
    variance: str = "full"  # full | pose | none
    window: int = 125  # training window and generation window, frames (5 s)
    overlap: int = 25  # generation windows overlap by this many frames, cross-faded
    num_steps: int = 1000
    # AniTalker feeds the raw step index (0…999) to Linear(1→128). The tiny preset scales it to [0, 1): at small
    # width the raw index saturates the decoder early in training.
    t_scale: float = 1.0
    cond_drop_prob: float = 0.1  # 0 reproduces AniTalker (no CFG)
    # What the decoder's 20 outputs mean: "eps" (AniTalker; loss = ε MSE) or "v" (Salimans & Ho 2022; turned into ε̂
    # by the diffusion wrapper, loss = v MSE = ε MSE / ᾱ_t). Measured on the tiny learning material (150 steps,
    # held-out speech): with "eps" the x̂₀ of the high-noise steps was noise (corr. with the target 0.07 at t = 700,
    # std ×30 too large) and generated motion did not follow the speech (corr. 0.07, 300 steps: 0.03); "v" with the
    # ε MSE: corr. 0.00; "v" with the v MSE: 0.18 against −0.08 for reversed speech after 150 steps.
    output: str = "eps"
    # Beyond AniTalker, for material whose head motion dwarfs the mouth (issue 10). teacher_forcing: in training the
    # adapter's encoders see the TARGET pose/location/scale (FastSpeech 2's variance adaptor), not the adapter's own
    # predictions (AniTalker), so the denoiser learns head motion from the adapter and the speech feature is left to
    # explain the rest — the mouth. standardize_targets: the adapter's predictors and encoders work in units
    # standardised per dimension with the train split's mean/std (buffers in the checkpoint), so a 4° roll (0.044 after
    # ÷ 90) is not a near-zero input; its losses are then MSEs in standardised units. Given controls and returned
    # predictions stay in AniTalker's units (pose ÷ 90, location and scale as fractions of the image).
    teacher_forcing: bool = False
    standardize_targets: bool = False
    # mouth_stretch: the diffusion's normalisation also stretches the mouth direction of the codes (a least-squares
    # probe from the train codes to the lip gap) so that it spans [-1, 1] like every other dimension
    # (``EpsDenoiser.fit_stretch``; the direction and gain are buffers in the checkpoint). Without it, the mouth part of
    # the tiny-mouth codes has a spread of 0.03 in normalised units against 0.67 per dimension: below the noise of
    # every diffusion step but the last ~20 of 1000, so the network never ties it to the speech. Needs the targets'
    # lip_gap column.
    mouth_stretch: bool = False
    # relative: the diffusion models the motion MINUS the hint (the frame before the window; at generation the
    # portrait's own code), normalised by that difference's spread; the hint itself reaches the network normalised by
    # the codes' spread (``hint_mean``/``hint_scale`` buffers). AniTalker models the absolute codes, normalised by
    # their spread over all clips, which between-identity offsets dominate: measured on the tiny-turn codes of the
    # demo (turning heads), the generated codes then moved 0.6-1.2 rms from frame to frame against the real clips'
    # 0.01-0.02, a jitter the tiny-turn renderer draws as a face torn apart. Relative, x0 clipping bounds the motion
    # to the range the train clips move in.
    relative: bool = False

    def __post_init__(self):
        if self.front_end not in FRONT_ENDS:
            raise ValueError(f"unknown front end {self.front_end!r}; choose from {sorted(FRONT_ENDS)}")
        if self.variance not in VARIANCE:
            raise ValueError(f"unknown variance adapter {self.variance!r}; choose from {sorted(VARIANCE)}")
        if not 0 <= self.overlap < self.window:
            raise ValueError(f"overlap must be in [0, window), got {self.overlap} for window {self.window}")

    @property
    def decoder_dim(self) -> int:
        return self.speech_dim + 4 * self.proj_dim

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Audio2MotionConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


PRESETS: dict[str, Audio2MotionConfig] = {
    # AniTalker mfcc_full_control sizes on the base stage-1 model (identity 512).
    "paper": Audio2MotionConfig(),
    # AniTalker hubert_full_control: the same plus the HuBERT front end (layer mix, Conv1d 1024→512, 4-block
    # Conformer) — the "about 40 M" configuration.
    "paper-hubert": Audio2MotionConfig(front_end="hubert"),
    # CPU minutes, on the tiny stage-1 model (identity 64): decoder width 128.
    "tiny": Audio2MotionConfig(speech_dim=64, mfcc_hidden=64, proj_dim=16, identity_dim=64, motion_preset="tiny",
                               lstm_hidden=32, dropout=0.1, overlap=25, t_scale=1e-3, output="v"),
}
# tiny on the stage-1 "tiny-mouth" preset (the standardised motion code): same network, another stage-1 it reads
PRESETS["tiny-mouth"] = replace(PRESETS["tiny"], motion_preset="tiny-mouth")
# tiny-mouth with the options that let stage 2 learn a small mouth under large head motion (issue 10, docs/speech.md):
# on the demo's held-out speech its generated codes follow the envelope (test_speech_learning.py); tiny-mouth's do not.
PRESETS["tiny-talk"] = replace(PRESETS["tiny-mouth"], teacher_forcing=True, standardize_targets=True,
                               mouth_stretch=True)
# tiny-talk on the stage-1 "tiny-turn" preset (tiny-mouth + the coarse flow: the tiny renderer that draws head motion,
# turns included), modelling the motion relative to the hint (``relative``): with a renderer that draws what the codes
# say, the absolute codes' jitter tore the face apart (issue 16, docs/speech.md)
PRESETS["tiny-turn"] = replace(PRESETS["tiny-talk"], motion_preset="tiny-turn", relative=True)
# tiny-talk on the stage-1 "tiny-lips" preset (tiny-turn + the coarse flow's mouth window: the tiny renderer that
# draws the mouth), modelling the absolute codes as tiny-talk does (issue 10's rendered learning test)
PRESETS["tiny-lips"] = replace(PRESETS["tiny-talk"], motion_preset="tiny-lips")


def get_config(preset: str) -> Audio2MotionConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown audio2motion preset {preset!r}; choose from {sorted(PRESETS)}")
    return PRESETS[preset]


# ----------------------------------------------------------------------------------------------------------------
# Variance adapter
# ----------------------------------------------------------------------------------------------------------------

class LSTMHead(nn.Module):
    """A 2-layer LSTM and a Linear on its outputs: (B, T, in) → (B, T, out)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, layers: int):
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, out_dim)

    def forward(self, x):
        return self.fc(self.lstm(x)[0])


class VarianceAdapter(nn.Module):
    def __init__(self, cfg: Audio2MotionConfig):
        super().__init__()
        self.names = VARIANCE[cfg.variance]
        h, n = cfg.lstm_hidden, cfg.lstm_layers
        self.predictors = nn.ModuleDict({a: LSTMHead(cfg.speech_dim, ATTRIBUTES[a], h, n) for a in self.names})
        self.encoders = nn.ModuleDict({a: LSTMHead(ATTRIBUTES[a], cfg.speech_dim, h, n) for a in self.names})
        self.standardized = cfg.standardize_targets
        if self.standardized:  # per-dimension train statistics of each attribute (fit_standardization)
            for a in self.names:
                self.register_buffer(f"{a}_mean", torch.zeros(ATTRIBUTES[a]))
                self.register_buffer(f"{a}_std", torch.ones(ATTRIBUTES[a]))

    @torch.no_grad()
    def fit_standardization(self, targets: dict[str, torch.Tensor], min_std: float = 1e-3) -> None:
        """Mean and std per dimension of each attribute's (N, k) train values; ``min_std`` keeps a constant
        dimension finite."""
        if not self.standardized:
            raise ValueError("this adapter was built with standardize_targets=False")
        for a in self.names:
            v = targets[a].float().reshape(-1, ATTRIBUTES[a])
            getattr(self, f"{a}_mean").copy_(v.mean(0)), getattr(self, f"{a}_std").copy_(v.std(0).clamp_min(min_std))

    def standardize(self, name: str, v: torch.Tensor) -> torch.Tensor:
        """AniTalker units → the units the predictors and encoders work in (identity without standardisation)."""
        if not self.standardized:
            return v
        return (v - getattr(self, f"{name}_mean").to(v.dtype)) / getattr(self, f"{name}_std").to(v.dtype)

    def unstandardize(self, name: str, v: torch.Tensor) -> torch.Tensor:
        if not self.standardized:
            return v
        return v * getattr(self, f"{name}_std").to(v.dtype) + getattr(self, f"{name}_mean").to(v.dtype)

    def forward(self, x: torch.Tensor, given: dict | None = None, control=(),
                teacher: dict | None = None) -> tuple[torch.Tensor, dict]:
        """x (B, T, S). ``control``: attribute names (or True for all) whose ``given`` (B, T, k) values replace
        the predictions; ``teacher``: (B, T, k) targets the encoders see instead of the predictions (training with
        ``teacher_forcing``); otherwise the encoders see the predictions (also in training, as AniTalker). Returns the
        adapted feature and the predictions in AniTalker's units."""
        control = set(self.names) if control is True else set(control or ())
        preds = {}
        for name in self.names:
            pred = self.predictors[name](x)  # (B, T, k), standardised units when standardized
            preds[name] = self.unstandardize(name, pred)
            if name in control:
                value = self.standardize(name, given[name].to(x.dtype))
            elif teacher is not None:
                value = self.standardize(name, teacher[name].to(x.dtype))
            else:
                value = pred
            x = x + self.encoders[name](value)
        return x, preds


# ----------------------------------------------------------------------------------------------------------------
# Network (ε-prediction) and the model (network + diffusion wrapper)
# ----------------------------------------------------------------------------------------------------------------

class Audio2MotionNet(nn.Module):
    def __init__(self, cfg: Audio2MotionConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.front_end == "mfcc":
            self.front_end = MfccFrontEnd(cfg.speech_dim, cfg.mfcc_hidden)
        else:
            self.front_end = HubertFrontEnd(cfg.speech_dim, cfg.speech_blocks, cfg.heads, cfg.kernel, cfg.dropout)
        self.null_speech = nn.Parameter(torch.zeros(cfg.speech_dim))  # the CFG null condition
        self.adapter = VarianceAdapter(cfg)
        p = cfg.proj_dim
        self.hint_proj = nn.Linear(cfg.motion_dim, p)
        self.identity_proj = nn.Linear(cfg.identity_dim, p)
        self.noisy_proj = nn.Linear(cfg.motion_dim, p)
        self.t_proj = nn.Linear(1, p)
        d = cfg.decoder_dim
        self.decoder = Conformer(ConformerConfig(d, cfg.heads, d, cfg.decoder_blocks, cfg.kernel, cfg.dropout))
        self.out_proj = nn.Linear(d, cfg.motion_dim)

    def encode_speech(self, audio: torch.Tensor, drop: torch.Tensor, given: dict | None = None, control=(),
                      teacher: dict | None = None):
        """Speech features after the variance adapter (B, T, S) and the adapter's predictions."""
        x = self.front_end(audio)  # (B, T, S)
        x = torch.where(drop[:, None, None], self.null_speech.to(x.dtype).expand_as(x), x)
        return self.adapter(x, given, control, teacher)

    def forward(self, x_t: torch.Tensor, c_noise: torch.Tensor, cond: dict, drop: torch.Tensor):
        """x_t (B, T, 20), c_noise (B,), cond: {hint (B, 20), identity (B, I)} and either audio (B, F·T, C) (+ given,
        control) or precomputed ``speech``/``speech_null`` (B, T, S); drop (B,) bool."""
        if "speech" in cond:
            speech, preds = torch.where(drop[:, None, None], cond["speech_null"], cond["speech"]), {}
        else:
            speech, preds = self.encode_speech(cond["audio"], drop, cond.get("given"), cond.get("control", ()),
                                               cond.get("teacher"))
        b, t, _ = x_t.shape
        h = torch.cat([
            speech.to(x_t.dtype),  # (B, T, S)
            self.hint_proj(cond["hint"])[:, None].expand(b, t, -1),  # (B, T, P)
            self.identity_proj(cond["identity"])[:, None].expand(b, t, -1),
            self.noisy_proj(x_t),
            self.t_proj(c_noise[:, None].to(x_t.dtype))[:, None].expand(b, t, -1),
        ], dim=-1)  # (B, T, S + 4P)
        return self.out_proj(self.decoder(h, cond.get("mask"))), preds  # mask (B, T): padded sub-clips


class Audio2Motion(nn.Module):
    def __init__(self, cfg: Audio2MotionConfig):
        super().__init__()
        self.cfg = cfg
        self.net = Audio2MotionNet(cfg)
        self.diffusion = EpsDenoiser(self.net, cfg.motion_dim, cfg.num_steps, cfg.t_scale, cfg.cond_drop_prob,
                                     cfg.output, stretch=cfg.mouth_stretch)
        if cfg.relative:  # the hint's own normalisation (the diffusion's is the motion-minus-hint one)
            self.register_buffer("hint_mean", torch.zeros(cfg.motion_dim))
            self.register_buffer("hint_scale", torch.ones(cfg.motion_dim))

    # --- what the diffusion models: the motion, or (relative) the motion minus the hint --------------------------
    def norm_hint(self, hint: torch.Tensor) -> torch.Tensor:
        """The hint (…, D) as the network reads it."""
        if self.cfg.relative:
            return (hint - self.hint_mean) / self.hint_scale
        return self.diffusion.normalize(hint)

    def to_diffusion(self, motion: torch.Tensor, hint: torch.Tensor) -> torch.Tensor:
        """Motion (B, T, D) in data units → what the diffusion models (still in data units); hint (B, D)."""
        return motion - hint[:, None] if self.cfg.relative else motion

    def from_diffusion(self, x: torch.Tensor, hint: torch.Tensor) -> torch.Tensor:
        return x + hint[:, None].to(x) if self.cfg.relative else x

    @torch.no_grad()
    def fit_normalization(self, clips: list[torch.Tensor], quantile: float = 0.999) -> torch.Tensor:
        """Fit the diffusion's normalisation (and, relative, the hint's) from the train clips' codes (each (T, D));
        returns the samples the diffusion's normalisation was fitted on (relative: every frame minus each of 8
        frames of its clip, the differences a window can hold)."""
        codes = torch.cat(clips)
        if not self.cfg.relative:
            self.diffusion.fit_normalization(codes, quantile)
            return codes
        mean, scale = centre_and_scale(codes, quantile)
        self.hint_mean.copy_(mean), self.hint_scale.copy_(scale)
        diffs = torch.cat([c - c[j] for c in clips for j in np.linspace(0, len(c) - 1, 8).round().astype(int)])
        self.diffusion.fit_normalization(diffs, quantile)
        return diffs

    @property
    def frames_per_video_frame(self) -> int:
        return self.net.front_end.frames_per_video_frame

    def losses(self, batch: dict, generator: torch.Generator | None = None,
               weight_direction: torch.Tensor | None = None, direction_weight: float = 0.0) -> dict[str, torch.Tensor]:
        """The four MSEs (ε, location, scale, pose; unweighted sum = ``total``). batch: motion (B, T, 20),
        hint (B, 20), identity (B, I), audio (B, F·T, C), and the targets location/scale (B, T, 1), pose (B, T, 3).
        With ``teacher_forcing`` the adapter's encoders see those targets; with ``standardize_targets`` the three
        adapter MSEs are in standardised units. ``weight_direction``/``direction_weight``: an extra weight on the ε
        error along one direction of the normalised motion (``EpsDenoiser.loss``; the trainer's ``--mouth-weight``)."""
        adapter = self.net.adapter
        cond = {"audio": batch["audio"], "hint": self.norm_hint(batch["hint"]), "identity": batch["identity"]}
        if self.cfg.teacher_forcing:
            cond["teacher"] = {name: batch[name] for name in adapter.names}
        eps_loss, preds = self.diffusion.loss(self.to_diffusion(batch["motion"], batch["hint"]), cond, generator,
                                              weight_direction, direction_weight)
        out = {"eps": eps_loss}
        for name in adapter.names:
            diff = adapter.standardize(name, preds[name].float()) - adapter.standardize(name, batch[name].float())
            out[name] = diff.pow(2).mean()
        out["total"] = sum(out.values())
        return out

    def forward(self, batch: dict, **loss_kw) -> dict[str, torch.Tensor]:
        return self.losses(batch, **loss_kw)

    # --- generation --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _window(self, audio, hint, identity, given, control, steps, guidance, sampler, generator):
        b = audio.shape[0]
        t = audio.shape[1] // self.frames_per_video_frame
        keep = torch.zeros(b, dtype=torch.bool, device=audio.device)
        speech, preds = self.net.encode_speech(audio, keep, given, control)
        null, _ = self.net.encode_speech(audio, ~keep, given, control) if guidance != 1.0 else (speech, None)
        cond = {"speech": speech, "speech_null": null, "hint": self.norm_hint(hint), "identity": identity}
        motion = self.diffusion.sample((b, t, self.cfg.motion_dim), cond, steps=steps, sampler=sampler,
                                       guidance=guidance, generator=generator)
        return self.from_diffusion(motion, hint), preds

    @torch.no_grad()
    def generate(self, audio: torch.Tensor, hint: torch.Tensor, identity: torch.Tensor, *, given: dict | None = None,
                 control=(), steps: int = 50, guidance: float = 1.0, sampler: str = "ddim", mode: str = "windowed",
                 seed: int | None = 0) -> dict[str, torch.Tensor]:
        """Motion (B, T, 20) for audio features (B, F·T, C); T = audio frames // F.

        mode "single": one pass over the whole utterance (AniTalker). mode "windowed": windows of ``cfg.window``
        frames, each hinted with the motion generated just before it, overlapping by ``cfg.overlap`` frames that are
        cross-faded linearly (the last window is aligned to the end). ``given``: (B, T, k) control values.
        """
        if mode not in ("single", "windowed"):
            raise ValueError(f"unknown generation mode {mode!r}; choose from ['single', 'windowed']")
        f = self.frames_per_video_frame
        total = audio.shape[1] // f
        gen = None
        if seed is not None:
            gen = torch.Generator(audio.device if audio.device.type != "meta" else "cpu").manual_seed(seed)
        if mode == "single" or total <= self.cfg.window:
            motion, preds = self._window(audio[:, : total * f], hint, identity, given, control, steps, guidance,
                                         sampler, gen)
            return {"motion": motion, **preds}
        w, hop = self.cfg.window, self.cfg.window - self.cfg.overlap
        starts = list(range(0, total - w, hop)) + [total - w]
        out: dict[str, torch.Tensor] = {}
        filled = 0
        for s in starts:
            sub_given = {k: v[:, s:s + w] for k, v in given.items()} if given else None
            window_hint = hint if s == 0 else out["motion"][:, s - 1]
            motion, preds = self._window(audio[:, s * f:(s + w) * f], window_hint, identity, sub_given, control, steps,
                                         guidance, sampler, gen)
            for name, value in {"motion": motion, **preds}.items():
                if name not in out:
                    out[name] = value.new_zeros(value.shape[0], total, value.shape[2])
                n_over = filled - s  # frames already written by the previous window
                if n_over > 0:
                    ramp = torch.arange(1, n_over + 1, device=value.device, dtype=value.dtype) / (n_over + 1)
                    ramp = ramp[None, :, None]
                    out[name][:, s:filled] = (1 - ramp) * out[name][:, s:filled] + ramp * value[:, :n_over]
                    out[name][:, filled:s + w] = value[:, n_over:]
                else:
                    out[name][:, s:s + w] = value
            filled = s + w
        return out


# ----------------------------------------------------------------------------------------------------------------
# Sizes
# ----------------------------------------------------------------------------------------------------------------

def describe(cfg: Audio2MotionConfig) -> str:
    return (f"{cfg.front_end}, variance {cfg.variance}, decoder {cfg.decoder_blocks} × d {cfg.decoder_dim}, "
            f"stage-1 preset {cfg.motion_preset}, output {cfg.output}")


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def param_table(cfg: Audio2MotionConfig) -> list[tuple[str, int]]:
    """Parameter count by module and the total."""
    model = Audio2Motion(cfg)
    net = model.net
    rows = [(f"front_end ({cfg.front_end})", count_params(net.front_end) + net.null_speech.numel())]
    for name in net.adapter.names:
        rows.append((f"adapter.{name} (predictor + encoder)", count_params(net.adapter.predictors[name])
                     + count_params(net.adapter.encoders[name])))
    rows += [
        ("projections (hint, identity, x_t, t)", sum(count_params(m) for m in (net.hint_proj, net.identity_proj,
                                                                                net.noisy_proj, net.t_proj))),
        (f"decoder conformer ({cfg.decoder_blocks} × d {cfg.decoder_dim})", count_params(net.decoder)),
        ("out_proj", count_params(net.out_proj)),
        ("total", count_params(model)),
    ]
    return rows


def motion_frames(n_audio_frames: int, frames_per_video_frame: int) -> int:
    return int(np.floor(n_audio_frames / frames_per_video_frame))
