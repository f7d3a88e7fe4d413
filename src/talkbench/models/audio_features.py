"""Speech front ends of the audio→motion model (AniTalker stage 2; 16 kHz audio, 25 fps video).

- MFCC (offline default): ``python_speech_features.mfcc`` (numcep 13, winlen 25 ms, winstep 10 ms; nfilt 26, nfft 512,
  appendEnergy) stacked with ``delta(m, 1)`` and ``delta(m, 2)`` — the second argument is a half-width, so the third
  block is a ±2-frame delta, not delta-delta — 39-d at 100 Hz, 4 audio frames per video frame. Two stride-2
  ``Conv1d`` (39→256→d) bring it to 25 Hz. No speech Conformer on this path.
- HuBERT (optional): the 25 hidden states of chinese-hubert-large (1024-d, 50 Hz; 2 frames per video frame), mixed by
  a learned softmax over layers (weights start at 0 = uniform), ``Conv1d(1024→d, s2)``, a 4-block Conformer. Features
  come precomputed (``.npy`` of shape (25, T50, 1024)) or from a local transformers folder installed as the weights
  entry ``hubert-large``; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, MediaError, MissingWeightsError, require
from .conformer import Conformer, ConformerConfig

AUDIO_RATE = 16000
VIDEO_FPS = 25
MFCC_PER_FRAME = 4  # 100 Hz / 25 fps
HUBERT_PER_FRAME = 2  # 50 Hz / 25 fps
HUBERT_LAYERS, HUBERT_DIM = 25, 1024
HUBERT_ENTRY = "hubert-large"


# ----------------------------------------------------------------------------------------------------------------
# Features (numpy, no gradients)
# ----------------------------------------------------------------------------------------------------------------

def mfcc_features(audio: np.ndarray, rate: int = AUDIO_RATE) -> np.ndarray:
    """(N, 39) float32 at 100 Hz, cut to a multiple of 4 frames (n_video = N // 4)."""
    psf = require("python_speech_features", "pip install python_speech_features==0.6")
    if rate != AUDIO_RATE:
        raise ConfigError(f"MFCC features expect {AUDIO_RATE} Hz audio, got {rate} Hz; resample first")
    m = psf.mfcc(np.asarray(audio, np.float64), samplerate=rate, numcep=13, winlen=0.025, winstep=0.01)
    feats = np.concatenate([m, psf.delta(m, 1), psf.delta(m, 2)], axis=1).astype(np.float32)
    n_video = len(feats) // MFCC_PER_FRAME
    return feats[: n_video * MFCC_PER_FRAME]


def load_hubert_features(path: str | Path) -> np.ndarray:
    """A precomputed (25, T50, 1024) ``.npy`` edge-padded to an even T50 (2 HuBERT frames per video frame)."""
    try:
        feats = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise MediaError(f"{path}: not a readable .npy of HuBERT features ({exc})") from exc
    if feats.ndim != 3 or feats.shape[0] != HUBERT_LAYERS or feats.shape[2] != HUBERT_DIM:
        raise MediaError(f"{path}: expected HuBERT features of shape ({HUBERT_LAYERS}, T, {HUBERT_DIM}), "
                         f"found {feats.shape}")
    return pad_hubert(feats.astype(np.float32))


def pad_hubert(feats: np.ndarray) -> np.ndarray:
    if feats.shape[1] % HUBERT_PER_FRAME:
        feats = np.concatenate([feats, feats[:, -1:]], axis=1)  # repeat the last frame (AniTalker pads one)
    return feats


def hubert_folder() -> Path:
    from ..metrics.weights import weights_home

    folder = weights_home() / HUBERT_ENTRY
    if not (folder / "config.json").is_file():
        raise MissingWeightsError(
            f"weights {HUBERT_ENTRY!r} are not installed (expected a transformers folder with config.json at "
            f"{folder}); import a local chinese-hubert-large folder with: talkbench weights import PATH --as "
            f"{HUBERT_ENTRY}")
    return folder


def hubert_features(audio: np.ndarray, device: str = "cpu") -> np.ndarray:
    """(25, T50, 1024) hidden states of the installed HuBERT for 16 kHz mono audio (loaded offline)."""
    folder = hubert_folder()
    transformers = require("transformers", "pip install transformers==4.46.3")
    model = transformers.HubertModel.from_pretrained(str(folder), local_files_only=True).to(device).eval()
    wav = torch.from_numpy(np.asarray(audio, np.float32))[None].to(device)
    with torch.inference_mode():
        out = model(wav, output_hidden_states=True)
    states = torch.stack(out.hidden_states, 0)[:, 0]  # (25, T50, 1024)
    if states.shape[0] != HUBERT_LAYERS or states.shape[-1] != HUBERT_DIM:
        raise MissingWeightsError(f"{folder}: a large HuBERT gives ({HUBERT_LAYERS}, T, {HUBERT_DIM}) hidden states, "
                                  f"this one gives {tuple(states.shape)}")
    return pad_hubert(states.float().cpu().numpy())


# ----------------------------------------------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------------------------------------------

class MfccFrontEnd(nn.Module):
    """(B, 4T, 39) MFCC → (B, T, dim)."""

    frames_per_video_frame = MFCC_PER_FRAME

    def __init__(self, dim: int = 512, hidden: int = 256):
        super().__init__()
        # Fixed per-coefficient standardisation (ours; AniTalker feeds raw MFCC): the log-energy and low cepstra are
        # O(10-50) and dominated the first convolution of the tiny model. Identity until ``fit`` is called.
        self.register_buffer("feat_mean", torch.zeros(39))
        self.register_buffer("feat_std", torch.ones(39))
        self.down_sample1 = nn.Conv1d(39, hidden, 3, stride=2, padding=1)
        self.down_sample2 = nn.Conv1d(hidden, dim, 3, stride=2, padding=1)

    @torch.no_grad()
    def fit(self, feats: torch.Tensor) -> None:
        """Set the standardisation from training features (N, 39)."""
        self.feat_mean.copy_(feats.float().mean(0)), self.feat_std.copy_(feats.float().std(0).clamp_min(1e-3))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        feats = (feats - self.feat_mean) / self.feat_std
        x = self.down_sample2(self.down_sample1(feats.transpose(1, 2)))  # (B, dim, T)
        return x.transpose(1, 2)


class HubertFrontEnd(nn.Module):
    """(B, 25, 2T, 1024) HuBERT hidden states → (B, T, dim)."""

    frames_per_video_frame = HUBERT_PER_FRAME

    def __init__(self, dim: int = 512, blocks: int = 4, heads: int = 2, kernel: int = 13, dropout: float = 0.2):
        super().__init__()
        self.layer_weights = nn.Parameter(torch.zeros(HUBERT_LAYERS))
        self.down_sample1 = nn.Conv1d(HUBERT_DIM, dim, 3, stride=2, padding=1)
        self.speech_encoder = Conformer(ConformerConfig(dim, heads, dim, blocks, kernel, dropout))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.layer_weights, dim=0).to(feats.dtype)
        mixed = torch.einsum("l,bltc->btc", w, feats)  # (B, 2T, 1024)
        x = self.down_sample1(mixed.transpose(1, 2)).transpose(1, 2)  # (B, T, dim)
        return self.speech_encoder(x)


FRONT_ENDS = {"mfcc": MfccFrontEnd, "hubert": HubertFrontEnd}
