"""Speech-driven generation: portrait + speech → motion (audio2motion) → frames (stage-1 renderer) → mp4 with the
speech muxed. Every input is checked before anything is written; the mp4 itself is written atomically.

The generated motion is absolute: the first window is hinted with the portrait's own motion code, so the rendered
video starts from the portrait's pose and expression.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, MediaError
from . import checkpoints
from .audio2motion import Audio2Motion, Audio2MotionConfig
from .audio_features import AUDIO_RATE, MFCC_PER_FRAME, VIDEO_FPS, mfcc_features

SILENCE_RMS = 1e-4  # −80 dBFS: digital silence or a muted track
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def load_speech(path: str | Path, min_frames: int) -> tuple[np.ndarray, dict]:
    """16 kHz mono float32 speech and a record of what was done to it; one-line MediaError for bad input."""
    from .. import media

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such audio file")
    try:
        streams = media.probe_json(path).get("streams", [])
    except Exception as exc:  # noqa: BLE001 - ffprobe failing on it means it is not media at all
        raise MediaError(f"{path}: not an audio file (ffprobe could not read it)") from exc
    audio_streams = [s for s in streams if s.get("codec_type") == "audio"]
    if not audio_streams:
        raise MediaError(f"{path}: not an audio file (no audio stream)")
    rate, channels = int(audio_streams[0].get("sample_rate", 0) or 0), int(audio_streams[0].get("channels", 0) or 0)
    audio = media.read_audio(path, AUDIO_RATE)
    record = {"audio_rate_in": rate, "audio_channels_in": channels,
              "resampled": (rate, channels) != (AUDIO_RATE, 1)}
    if audio is None or len(audio) == 0:
        raise MediaError(f"{path}: the audio stream decodes to no samples")
    seconds = len(audio) / AUDIO_RATE
    if len(audio) // (AUDIO_RATE // VIDEO_FPS) < min_frames:
        raise MediaError(f"{path}: {seconds:.2f} s of audio is shorter than one generation window "
                         f"({min_frames} frames = {min_frames / VIDEO_FPS:.1f} s)")
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    if rms < SILENCE_RMS:
        raise MediaError(f"{path}: the audio is silent (RMS {rms:.1e} < {SILENCE_RMS:.0e})")
    record["seconds"] = seconds
    return audio, record


def load_portrait(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image (or a video's first frame) that contains a face."""
    from .. import media
    from .targets import face_landmarks

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such portrait file")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        from PIL import Image, UnidentifiedImageError

        try:
            img = np.asarray(Image.open(path).convert("RGB"))
        except (UnidentifiedImageError, OSError) as exc:
            raise MediaError(f"{path}: not a readable image ({exc})") from exc
    else:
        first = next(iter(media.iter_frames(path, chunk=1)), None)
        if first is None:
            raise MediaError(f"{path}: no frames decoded")
        img = first[0]
    if np.isnan(face_landmarks(img[None])[0, 0, 0]):
        raise MediaError(f"{path}: no face found in the portrait")
    return img


def load_models(checkpoint: str | Path, motion_checkpoint: str | Path, device: str = "cpu"):
    """(Audio2Motion with EMA weights, ReenactModel, a2m checkpoint meta); refuses mismatched pairs."""
    from ..media import sha256_file
    from .inference import ReenactModel
    from .train_audio2motion import check_motion_checkpoint

    ckpt = checkpoints.load(checkpoint)
    if ckpt.get("cfg", {}).get("family") != "audio2motion":
        raise checkpoints.CheckpointError(f"{checkpoint}: not an audio2motion checkpoint "
                                          f"(family {ckpt.get('cfg', {}).get('family')!r})")
    cfg = Audio2MotionConfig.from_dict(ckpt["cfg"]["model"])
    check_motion_checkpoint(motion_checkpoint, cfg)
    motion_sha = sha256_file(motion_checkpoint)
    if motion_sha != ckpt["motion_checkpoint_sha"]:
        raise ConfigError(f"{checkpoint} was trained on stage-1 checkpoint {ckpt['motion_checkpoint_sha']}, but "
                          f"{motion_checkpoint} has sha256 {motion_sha}; use the stage-1 checkpoint it was trained on")
    model = Audio2Motion(cfg)
    model.load_state_dict(ckpt["ema"])
    model = model.to(device).eval().requires_grad_(False)
    model.pose_to_motion = ckpt["cfg"].get("pose_to_motion")  # a plain dict (None before it was fitted in training)
    renderer = ReenactModel.from_checkpoint(motion_checkpoint, device=device)
    meta = {"step": int(ckpt["step"]), "checkpoint_sha": sha256_file(checkpoint), "motion_checkpoint_sha": motion_sha}
    return model, renderer, meta


def control_values(n: int, pose: tuple[float, float, float] | None = None, pose_track: str | Path | None = None,
                   location: float | None = None, scale: float | None = None) -> tuple[dict, set]:
    """(given (1, n, k) tensors, controlled attribute names). pose in [−1, 1] (×90°); a pose track is (T, 3) degrees,
    padded with its last row (AniTalker's demo)."""
    given, control = {}, set()
    if pose is not None and pose_track is not None:
        raise ConfigError("give either a constant pose or a pose track, not both")
    if pose is not None:
        if any(abs(v) > 1 for v in pose):
            raise ConfigError(f"pose yaw/pitch/roll must be in [-1, 1] (×90°), got {pose}")
        given["pose"], control = torch.tensor(pose, dtype=torch.float32).expand(1, n, 3).clone(), {"pose"}
    if pose_track is not None:
        try:
            track = np.load(pose_track, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise MediaError(f"{pose_track}: not a readable .npy pose track ({exc})") from exc
        if track.ndim != 2 or track.shape[1] != 3 or len(track) == 0:
            raise MediaError(f"{pose_track}: expected a (T, 3) yaw/pitch/roll track in degrees, found {track.shape}")
        track = np.concatenate([track, np.repeat(track[-1:], max(0, n - len(track)), 0)])[:n]
        given["pose"], control = torch.from_numpy(np.clip(track, -90, 90) / 90).float()[None], {"pose"}
    for name, value in (("location", location), ("scale", scale)):
        if value is not None:
            if not 0 <= value <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
            given[name] = torch.full((1, n, 1), float(value))
            control.add(name)
    return given, control


@torch.inference_mode()
def speech_motion(model: Audio2Motion, audio: np.ndarray, hint: torch.Tensor, identity: torch.Tensor,
                  given: dict | None = None, control=(), steps: int = 50, guidance: float = 1.0, seed: int = 0,
                  mode: str = "windowed") -> dict[str, torch.Tensor]:
    """Generated motion (1, T, 20) and adapter outputs for 16 kHz speech."""
    device = hint.device
    feats = torch.from_numpy(mfcc_features(audio))[None].to(device)  # (1, 4T, 39)
    n = feats.shape[1] // MFCC_PER_FRAME
    given = {k: v[:, :n].to(device) for k, v in (given or {}).items()}
    return model.generate(feats, hint, identity, given=given, control=control, steps=steps, guidance=guidance,
                          seed=seed, mode=mode)


class PortraitRenderer:
    """The stage-1 renderer bound to one portrait: its codes (``source``: the encoder's output at the model's size)
    and the full-size image the renderer warps. ``render(alpha)`` draws absolute motion codes the way
    ``ReenactModel.reenact`` draws a driver: the model's flow and residual are upsampled to the portrait's size and the
    full-size portrait is warped, so a small motion (a mouth opening by a pixel or two at the model's 64 px) is not lost
    to an upscale of a 64 px image. One path for speech-driven and directed generation."""

    def __init__(self, renderer, portrait: np.ndarray):
        from .inference import frames_to_tensor

        self.renderer, self.hw = renderer, portrait.shape[:2]
        with torch.inference_mode(), renderer._autocast():
            self.source = renderer.gen.encoder(frames_to_tensor(portrait[None], renderer.size, renderer.device))
        self.full = (torch.from_numpy(np.require(portrait, np.uint8, ["C", "W"])).to(renderer.device)
                     .permute(2, 0, 1)[None] / 127.5 - 1)  # (1, 3, H, W) in [-1, 1]

    @torch.inference_mode()
    def render(self, alpha: torch.Tensor) -> np.ndarray:
        """(n, motion_dim) absolute motion codes → (n, H, W, 3) uint8 frames at the portrait's size."""
        from .inference import tensor_to_frames

        n, src = len(alpha), self.source
        with self.renderer._autocast():
            feats = [f.expand(n, -1, -1, -1) for f in src.feats[:-1] + [self.full]]
            img = self.renderer.gen.render(src.w.expand(n, -1), alpha.to(self.renderer.device), feats,
                                           src.alpha.expand(n, -1))
        return tensor_to_frames(img, self.hw)

    def frames(self, motion: torch.Tensor, batch_size: int = 16):
        """Frames of (T, motion_dim) motion, ``batch_size`` at a time (memory does not grow with T)."""
        for i in range(0, len(motion), batch_size):
            yield self.render(motion[i:i + batch_size])


def speech_frames(model: Audio2Motion, renderer, portrait: np.ndarray, speech: np.ndarray, given: dict | None = None,
                  control=(), steps: int = 50, guidance: float = 1.0, seed: int = 0, mode: str = "windowed",
                  batch_size: int = 16):
    """Frames (uint8 batches at the portrait's size) of ``portrait`` speaking 16 kHz ``speech``: the portrait's own
    motion code hints the first window, the generated motion drives the stage-1 renderer. The motion is sampled
    before the first batch is yielded; rendering is streamed, so memory does not grow with the length."""
    drawn = PortraitRenderer(renderer, portrait)
    src = drawn.source
    motion = speech_motion(model, speech, src.alpha.float(), src.identity.float(), given, control, steps, guidance,
                           seed, mode)["motion"][0]  # (T, 20)
    return drawn.frames(motion, batch_size)


def generate_speech(source: str | Path, audio: str | Path, checkpoint: str | Path, motion_checkpoint: str | Path,
                    out: str | Path, *, pose: tuple[float, float, float] | None = None,
                    pose_track: str | Path | None = None, location: float | None = None, scale: float | None = None,
                    steps: int = 50, guidance: float = 1.0, seed: int = 0, device: str = "cpu",
                    mode: str = "windowed", batch_size: int = 16) -> dict:
    """Write OUT (mp4, 25 fps, the speech muxed) and return a record of the run."""
    from .. import media

    if not 1 <= steps <= 1000:
        raise ConfigError(f"steps must be in [1, 1000], got {steps}")
    model, renderer, meta = load_models(checkpoint, motion_checkpoint, device)
    speech, record = load_speech(audio, model.cfg.window)
    portrait = load_portrait(source)
    n = len(speech) // (AUDIO_RATE // VIDEO_FPS)
    given, control = control_values(n, pose, pose_track, location, scale)

    written = []

    def counted():
        for batch in speech_frames(model, renderer, portrait, speech, given, control, steps, guidance, seed, mode,
                                   batch_size):
            written.append(len(batch))
            yield batch

    media.write_video(out, counted(), fps=VIDEO_FPS, audio=speech, audio_rate=AUDIO_RATE)
    return {**record, **meta, "frames": sum(written), "steps": steps, "guidance": guidance, "seed": seed,
            "mode": mode, "controlled": sorted(control), "out": str(out)}
