"""Sync-C / Sync-D (LSE-C / LSE-D) and the AV offset, in the syncnet_python protocol.

Protocol (SyncNetInstance.evaluate): frames go through ffmpeg's JPEG ``image2`` output and are read back by cv2 as
BGR 0-255 floats; audio is 16 kHz mono int16, MFCC by python_speech_features with its defaults (13 coefficients,
100 Hz); each 5-frame video window at 25 fps meets the 20 MFCC frames starting at 4x its index; distances are taken
over offsets -vshift..vshift against the zero-padded audio features; Sync-D is the minimum over offsets of the mean
distance, Sync-C the median minus that minimum, AV offset = vshift - argmin.

Inputs that are not 224x224 face crops are cropped with run_pipeline's geometry (crop_scale 0.4, box side from the
larger box edge, median-filtered over 13 frames, padding value 110) on MediaPipe face tracks.
Every window is computed in batched tensor operations.
"""

from __future__ import annotations

import glob
import math
import os
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, MediaError, require
from .nets.syncnet import SyncNet

FPS = 25
AUDIO_RATE = 16000
CROP = 224
CROP_SCALE = 0.40


# ----------------------------------------------------------------------------- inputs


def mfcc(audio: np.ndarray, rate: int = AUDIO_RATE) -> np.ndarray:
    """(13, M) MFCC of float mono audio, computed on int16 samples as the reference reads its wav."""
    psf = require("python_speech_features", "pip install python_speech_features==0.6")
    if rate != AUDIO_RATE:
        raise ConfigError(f"Sync expects {AUDIO_RATE} Hz audio, found {rate} Hz; resample first")
    pcm = np.clip(np.round(np.asarray(audio, np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    return psf.mfcc(pcm, AUDIO_RATE).T  # python_speech_features gives (M, 13)


def jpeg_roundtrip(frames: np.ndarray, qscale: int | None = None) -> np.ndarray:
    """RGB uint8 frames -> ffmpeg image2 JPEGs -> cv2.imread BGR (T, H, W, 3) uint8, the reference's input path.

    ``qscale=None`` uses ffmpeg's default JPEG quality (SyncNetInstance.evaluate); run_pipeline uses qscale 2.
    """
    import cv2

    from ..media import ffmpeg_bin

    t, h, w = frames.shape[:3]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [ffmpeg_bin(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(FPS),
               "-i", "-", "-threads", "1"]
        if qscale is not None:
            cmd += ["-qscale:v", str(qscale)]
        cmd += ["-f", "image2", os.path.join(tmp, "%06d.jpg")]
        proc = subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), capture_output=True)
        if proc.returncode != 0:
            raise MediaError(f"ffmpeg JPEG export failed: {proc.stderr.decode(errors='replace').strip()[-300:]}")
        files = sorted(glob.glob(os.path.join(tmp, "*.jpg")))
        if len(files) != t:
            raise MediaError(f"ffmpeg wrote {len(files)} JPEG frames, expected {t}")
        return np.stack([cv2.imread(f) for f in files])


def smooth_track(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """run_pipeline's crop_video smoothing: half-size s and centre x, y of each box, median-filtered over 13 frames."""
    from scipy import signal

    valid = ~np.isnan(boxes[:, 0])
    if not valid.any():
        raise MediaError("no face found in any frame; cannot crop for SyncNet")
    frames = np.arange(len(boxes))
    # Gaps are interpolated, as run_pipeline interpolates between detections of one track.
    filled = np.stack([np.interp(frames, frames[valid], boxes[valid, j]) for j in range(4)], 1)
    s = np.maximum(filled[:, 3] - filled[:, 1], filled[:, 2] - filled[:, 0]) / 2
    y = (filled[:, 1] + filled[:, 3]) / 2
    x = (filled[:, 0] + filled[:, 2]) / 2
    return signal.medfilt(s, 13), signal.medfilt(x, 13), signal.medfilt(y, 13)


def crop_faces(frames_bgr: np.ndarray, boxes: np.ndarray, crop_scale: float = CROP_SCALE) -> np.ndarray:
    """run_pipeline crop geometry: pad by bs*(1+2cs) with 110, take [my-bs, my+bs(1+2cs)] x [mx-bs(1+cs), mx+bs(1+cs)]."""
    import cv2

    s, x, y = smooth_track(boxes)
    out = np.empty((len(frames_bgr), CROP, CROP, 3), np.uint8)
    for i, image in enumerate(frames_bgr):
        bs = s[i]
        bsi = int(bs * (1 + 2 * crop_scale))
        padded = np.pad(image, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=110)
        my, mx = y[i] + bsi, x[i] + bsi
        face = padded[int(my - bs):int(my + bs * (1 + 2 * crop_scale)),
                      int(mx - bs * (1 + crop_scale)):int(mx + bs * (1 + crop_scale))]
        out[i] = cv2.resize(face, (CROP, CROP))
    return out


# ----------------------------------------------------------------------------- scores


@dataclass
class SyncResult:
    sync_c: float  # median(mean dist) - min(mean dist) (LSE-C)
    sync_d: float  # min over offsets of the mean distance (LSE-D)
    av_offset: int  # vshift - argmin (syncnet_python): +k when video frame t shows the audio of frame t - k
    mean_dists: np.ndarray  # (2*vshift+1,)
    n_windows: int


def offset_distances(video_feats: torch.Tensor, audio_feats: torch.Tensor, vshift: int) -> torch.Tensor:
    """(T, 2*vshift+1) distances of each video window to the audio windows shifted by -vshift..vshift.

    The numbers of syncnet_python's calc_pdist (zero-padded audio features, pairwise_distance with eps 1e-6),
    computed for all windows at once: ||v - a + eps||^2 expanded into norms and one float64 matrix product,
    of which only the band of 2*vshift+1 diagonals is kept.
    """
    eps = 1e-6
    t, dim = video_feats.shape
    v = video_feats.to(torch.float64)
    a = F.pad(audio_feats, (0, 0, vshift, vshift)).to(torch.float64)  # (T + 2v, D)
    sq = ((v * v).sum(1)[:, None] + (a * a).sum(1)[None, :] - 2 * v @ a.T
          + 2 * eps * (v.sum(1)[:, None] - a.sum(1)[None, :]) + dim * eps * eps)  # (T, T + 2v)
    index = torch.arange(t)[:, None] + torch.arange(2 * vshift + 1)[None, :]  # (T, 2v+1)
    band = sq.gather(1, index)
    return band.clamp_min(0).sqrt().to(video_feats.dtype)


def scores_from_distances(dists: torch.Tensor, vshift: int) -> SyncResult:
    mdist = dists.mean(0)  # (2v+1,)
    minval, minidx = torch.min(mdist, 0)
    return SyncResult(sync_c=float(torch.median(mdist) - minval), sync_d=float(minval),
                      av_offset=int(vshift - int(minidx)), mean_dists=mdist.numpy(), n_windows=int(dists.shape[0]))


def syncnet_features(net: SyncNet, video_bgr: np.ndarray, mfcc_feats: np.ndarray, n_samples: int, batch_size: int = 64,
                     device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Lip and audio embeddings of every 5-frame / 20-MFCC window (reference lengths and indexing:
    min(frames, samples // 640) frames, windows 0 .. that - 6)."""
    t = len(video_bgr)
    min_length = min(t, math.floor(n_samples / (AUDIO_RATE // FPS)))
    last = min_length - 5
    if last < 1:
        raise ConfigError(f"Sync needs at least 6 frames with audio, found {min_length}")
    video = torch.from_numpy(video_bgr[:min_length]).float().permute(3, 0, 1, 2)  # (3, T, H, W) BGR 0..255
    cc = torch.from_numpy(mfcc_feats.astype(np.float32))  # (13, M)
    lip, aud = [], []
    with torch.no_grad():
        for start in range(0, last, batch_size):
            idx = range(start, min(last, start + batch_size))
            v = torch.stack([video[:, i:i + 5] for i in idx]).to(device)  # (B, 3, 5, 224, 224)
            a = torch.stack([cc[:, 4 * i:4 * i + 20] for i in idx])[:, None].to(device)  # (B, 1, 13, 20)
            lip.append(net.forward_lip(v).cpu())
            aud.append(net.forward_aud(a).cpu())
    return torch.cat(lip), torch.cat(aud)


def sync_scores(net: SyncNet, frames_rgb: np.ndarray, audio: np.ndarray, *, fps: float = FPS, face_cropped: bool = False,
                boxes: np.ndarray | None = None, vshift: int = 15, device: str = "cpu",
                batch_size: int = 64) -> tuple[SyncResult, dict]:
    """Sync-C/D and AV offset of RGB uint8 frames with float mono 16 kHz audio; returns (result, extra info)."""
    if abs(fps - FPS) > 1e-6:
        raise ConfigError(f"Sync needs {FPS} fps video, found {fps}; resample it (talkbench decodes at the protocol fps)")
    extra: dict = {"vshift": vshift, "face_cropped": face_cropped}
    if face_cropped:
        if frames_rgb.shape[1:3] != (CROP, CROP):
            import cv2

            extra["resized_from"] = list(frames_rgb.shape[1:3])
            frames_rgb = np.stack([cv2.resize(f, (CROP, CROP)) for f in frames_rgb])
        video = jpeg_roundtrip(frames_rgb)
    else:
        if boxes is None:
            from ..faces.detect import detect_boxes

            found = detect_boxes(frames_rgb)
            boxes = found.boxes
            extra["detector"] = found.detector
            extra["detection_failure_rate"] = found.failure_rate
        # run_pipeline extracts frames with qscale 2, crops, and evaluate re-reads the crops through JPEG.
        bgr = jpeg_roundtrip(frames_rgb, qscale=2)
        crops = crop_faces(bgr, boxes)
        video = jpeg_roundtrip(np.ascontiguousarray(crops[:, :, :, ::-1]))
    lip, aud = syncnet_features(net, video, mfcc(audio), len(audio), batch_size=batch_size, device=device)
    return scores_from_distances(offset_distances(lip, aud, vshift), vshift), extra
