"""Sync: the batched offset search equals syncnet_python's loop, a known AV shift is recovered on real speech
(espeak-ng) with a mouth-driven portrait video, and the full SyncNet path runs (random weights: code path only)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from talkbench.errors import ConfigError
from talkbench.metrics import sync
from talkbench.metrics.nets.syncnet import SyncNet

SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are needed for real speech")
    folder = tmp_path_factory.mktemp("speech")
    raw, wav = folder / "raw.wav", folder / "speech16k.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), "Talking heads need good lip sync. The quick brown fox jumps "
                    "over the lazy dog, and then it runs away."], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(wav)], check=True)
    from talkbench.media import read_audio

    return read_audio(wav, rate=16000)


def mouth_video(audio: np.ndarray, lag: int, size: int = 128) -> np.ndarray:
    """The astronaut portrait with a dark mouth whose opening follows the audio envelope ``lag`` frames late."""
    import cv2
    from PIL import Image
    from skimage import data

    face = np.asarray(Image.fromarray(data.astronaut()[0:300, 80:380]).resize((size, size), Image.BICUBIC))
    n = len(audio) // SAMPLES_PER_FRAME
    env = np.sqrt((audio[: n * SAMPLES_PER_FRAME].reshape(n, -1) ** 2).mean(1))
    env = env / env.max()
    cx, cy = int(0.48 * size), int(0.47 * size)
    frames = []
    for t in range(n):
        frame = face.copy()
        opening = env[t - lag] if 0 <= t - lag < n else 0.0
        cv2.ellipse(frame, (cx, cy), (int(0.09 * size), max(1, int(0.07 * size * opening))), 0, 0, 360, (20, 5, 5), -1)
        frames.append(frame)
    return np.stack(frames)


def energy_features(frames: np.ndarray, audio: np.ndarray, size: int = 128):
    """Per-window 5-d features: mouth darkness of frames i..i+4, and MFCC log-energy of the 20 MFCC frames at 4i."""
    cx, cy, r = int(0.48 * size), int(0.47 * size), int(0.1 * size)
    darkness = 255.0 - frames[:, cy - r:cy + r, cx - r:cx + r].mean(axis=(1, 2, 3))
    energy = sync.mfcc(audio)[0]  # c0 is the log frame energy (appendEnergy)
    n = min(len(frames), len(energy) // 4) - 5
    v = np.stack([darkness[i:i + 5] for i in range(n)])
    a = np.stack([energy[4 * i:4 * i + 20].reshape(5, 4).mean(1) for i in range(n)])
    z = lambda x: (x - x.mean()) / x.std()  # noqa: E731
    return torch.from_numpy(z(v)).float(), torch.from_numpy(z(a)).float()


def test_batched_distances_equal_reference_loop():
    torch.manual_seed(0)
    video, audio = torch.randn(40, 16), torch.randn(40, 16)
    vshift = 15
    padded = F.pad(audio, (0, 0, vshift, vshift))
    loop = torch.stack([F.pairwise_distance(video[[i], :].repeat(2 * vshift + 1, 1), padded[i:i + 2 * vshift + 1, :])
                        for i in range(len(video))])
    assert torch.allclose(sync.offset_distances(video, audio, vshift), loop, atol=1e-6)


def test_offset_of_constructed_features():
    torch.manual_seed(0)
    base = torch.randn(60, 8)
    for shift in (-4, 0, 6):
        video = base[20:50]
        audio = base[20 + shift:50 + shift]  # video window i matches audio window i - shift (video lags)
        result = sync.scores_from_distances(sync.offset_distances(video, audio, 15), 15)
        assert result.av_offset == shift
        assert result.sync_c > 0 and result.sync_d < float(result.mean_dists.max())


@pytest.mark.parametrize("lag", [0, 3, -2])
def test_known_av_shift_recovered_on_real_speech(speech, lag):
    frames = mouth_video(speech, lag)
    video_feats, audio_feats = energy_features(frames, speech)
    result = sync.scores_from_distances(sync.offset_distances(video_feats, audio_feats, 15), 15)
    assert abs(result.av_offset - lag) <= 1


def test_mfcc_matches_reference_reading(speech):
    import python_speech_features

    pcm = np.clip(np.round(speech * 32768), -32768, 32767).astype(np.int16)
    expected = np.stack([np.array(c) for c in zip(*python_speech_features.mfcc(pcm, 16000))])  # the reference's code
    assert np.array_equal(sync.mfcc(speech), expected)
    assert sync.mfcc(speech).shape[0] == 13
    with pytest.raises(ConfigError, match="16000 Hz"):
        sync.mfcc(speech, rate=22050)


def test_jpeg_roundtrip_gives_bgr_frames(face_frames):
    out = sync.jpeg_roundtrip(face_frames[:3])
    assert out.shape == face_frames[:3].shape and out.dtype == np.uint8
    # BGR order: the blue channel of the result follows the input's red... reversed, within JPEG loss.
    assert np.abs(out[..., ::-1].astype(int) - face_frames[:3]).mean() < 6
    assert np.abs(out.astype(int) - face_frames[:3]).mean() > np.abs(out[..., ::-1].astype(int) - face_frames[:3]).mean()


def test_crop_follows_run_pipeline_geometry():
    frames = np.zeros((13, 200, 200, 3), np.uint8)
    frames[:, 60:140, 70:130] = 255  # a bright "face" box
    boxes = np.tile([70.0, 60.0, 130.0, 140.0], (13, 1))
    s, x, y = sync.smooth_track(boxes)
    assert s[0] == 40 and x[0] == 100 and y[0] == 100  # half of the larger side; box centre
    crops = sync.crop_faces(frames, boxes)
    assert crops.shape == (13, 224, 224, 3)
    # Crop spans y in [my - s, my + 1.8 s] and x in [mx - 1.4 s, mx + 1.4 s]: the face sits top-centre.
    col = crops[0, :, 112, 0]
    assert col[10] == 255 and col[-5] < 255
    boxes[3] = np.nan  # a missed detection is interpolated
    assert np.isfinite(sync.smooth_track(boxes)[0]).all()


def test_refuses_other_frame_rates(speech, face_frames):
    with pytest.raises(ConfigError, match="25 fps"):
        sync.sync_scores(SyncNet().eval(), face_frames, speech, fps=30)


@pytest.mark.slow
def test_full_syncnet_path_random_weights(speech):
    """Code path only: random SyncNet weights say nothing about accuracy."""
    torch.manual_seed(0)
    net = SyncNet().eval()
    frames = mouth_video(speech[: 16000 * 2], lag=0, size=224)[:40]
    result, extra = sync.sync_scores(net, frames, speech[:16000 * 2], face_cropped=True, vshift=15)
    assert result.n_windows == 35 and len(result.mean_dists) == 31
    assert -15 <= result.av_offset <= 15 and result.sync_c >= 0
    small = mouth_video(speech[: 16000], lag=0, size=128)[:20]
    result2, extra2 = sync.sync_scores(net, small, speech[:16000], face_cropped=False, vshift=5)
    assert extra2["detector"].startswith("mediapipe") and extra2["detection_failure_rate"] < 0.5
    assert result2.n_windows == 15
