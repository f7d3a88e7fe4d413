"""Directed long videos (Kling-Avatar's recipe on talkbench's models): plan → blueprint → keyframes → sub-clips.

1. **Blueprint.** The audio→motion model runs once over the whole audio, windowed (flat memory) and with few DDIM
   steps (``blueprint_steps``: "low rate" here is a cheap, coarse pass, not a lower frame rate — the model only
   exists at 25 fps). Its variance adapter is conditioned on the plan: the pose, location and scale predictions
   are replaced (the adapter's control flag) by tracks built from the plan's head controls (``head_pose``):
   nod = pitch oscillation about the shot's mean pitch, shake = the same on yaw, tilt = a fixed roll, still = a frontal, motionless head;
   "none" keeps the adapter's own prediction. Edges of a controlled shot are cosine-faded over ``fade_s``.
2. **Keyframes** come from the blueprint tracks through ``director.keyframes.choose_keyframes``. The blueprint's
   ``clarity`` is how far its motion stays inside the training distribution (normalised |x| ≤ 1 is clear,
   falling to 0 at 2): a motion code far outside it renders a distorted face.
3. **Sub-clips** between adjacent keyframes are denoised in ONE batch (``director.subclips.denoise_subclips``)
   with ``subclip_sampler``, an adapter from ``models.diffusion`` DDIM/DDPM to that sampler contract: per sub-clip
   hint (the blueprint frame before it), the decoder masked on padding (so batching changes nothing), the clamped
   frames noised with the sub-clip's own starting noise (RePaint replacement) and returned exactly.
4. **Expression.** Emotion and intensity scale expression amplitude: the motion's deviation from the portrait's
   own motion code is multiplied by ``expression_gain`` per frame (after stitching, so it acts on every frame
   alike and keyframes stay keyframes of the gained motion).
5. **Camera** controls are image-space at render (``camera_tracks``): zoom-in / zoom-out ramp the zoom by
   ``zoom`` × (0.5 + intensity) over their shot, pan moves the view by ``pan`` of the width; the camera holds
   its last state after a shot; static and none hold it.

Total frames = round(duration × fps). Memory: the blueprint is windowed; the sub-clip batch holds every frame once
(linear in the length), and attention is quadratic only in the longest sub-clip (``KeyframeConfig.max_gap``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..director.keyframes import KeyframeConfig, choose_keyframes
from ..errors import ConfigError, PlanError
from .audio_features import AUDIO_RATE, MFCC_PER_FRAME, VIDEO_FPS, mfcc_features


@dataclass(frozen=True)
class DirectedConfig:
    blueprint_steps: int = 10
    steps: int = 20
    sampler: str = "ddim"
    guidance: float = 1.0
    seed: int = 0
    context: int = 3  # clamped frames at each end of a sub-clip (see denoise_subclips)
    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    nod_deg: float = 12.0  # pitch amplitude at intensity 0.5 (scales with 0.5 + intensity)
    nod_hz: float = 2.0  # a nod fits in a short word ("hello" ≈ 0.45 s in espeak-ng)
    shake_deg: float = 15.0
    shake_hz: float = 2.0
    tilt_deg: float = 12.0
    fade_s: float = 0.08
    zoom: float = 0.25  # log-zoom change of one zoom shot at intensity 0.5
    pan: float = 0.12  # view shift of one pan shot, fraction of the width, at intensity 0.5
    emotion_gain: float = 0.5  # expression amplitude × (1 + this) under an emotion
    intensity_gain: float = 1.0  # × (1 + this · (intensity − 0.5))
    # Steer the codes with the plan's head pose through the checkpoint's pose→code map (a least-squares fit on the
    # train clips, ``pose_to_motion``): motion += (planned − predicted pose) @ map. Measured on the tiny models and
    # the demo's turning heads: the adapter's pose input alone moved nothing the face module could read (nod: 21.9
    # against neutral 22.4 deg² of pitch oscillation), because 600 CPU steps do not tie the denoiser to it.
    # Recorded in the result ("pose_steer"); off, or a checkpoint without the map, leaves the adapter path alone.
    pose_steer: bool = True


# ----------------------------------------------------------------------------------------------------------------
# Plan → per-frame control tracks
# ----------------------------------------------------------------------------------------------------------------

def _shot_frames(plan: dict, n: int):
    fps = plan["fps"]
    for shot in plan["shots"]:
        a, b = int(round(shot["t0"] * fps)), min(int(round(shot["t1"] * fps)), n)
        if b > a:
            yield shot, a, b


def _fade(length: int, fps: int, fade_s: float) -> np.ndarray:
    k = min(int(round(fade_s * fps)), length // 2)
    w = np.ones(length)
    if k > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 1) / (k + 1))
        w[:k], w[length - k:] = ramp, ramp[::-1]
    return w


def head_pose(plan: dict, predicted: np.ndarray, cfg: DirectedConfig = DirectedConfig()) -> np.ndarray:
    """(T, 3) yaw/pitch/roll in degrees: the adapter's prediction (degrees) with the plan's head controls."""
    pose = np.array(predicted, dtype=np.float64)
    n, fps = len(pose), plan["fps"]
    for shot, a, b in _shot_frames(plan, n):
        head, level = shot["head"], 0.5 + shot["intensity"]
        if head == "none":
            continue
        w = _fade(b - a, fps, cfg.fade_s)
        t = np.arange(b - a) / fps
        target = pose[a:b].copy()
        if head == "nod":  # the controlled angle is replaced (its shot mean + the oscillation); the others kept
            target[:, 1] = target[:, 1].mean() + level * cfg.nod_deg * np.sin(2 * np.pi * cfg.nod_hz * t)
        elif head == "shake":
            target[:, 0] = target[:, 0].mean() + level * cfg.shake_deg * np.sin(2 * np.pi * cfg.shake_hz * t)
        elif head == "tilt":
            target[:, 2] = level * cfg.tilt_deg
        elif head == "still":
            target[:] = 0.0
        else:
            raise PlanError(f"unknown head control {head!r}")
        pose[a:b] = (1 - w[:, None]) * pose[a:b] + w[:, None] * target
    return pose


def camera_tracks(plan: dict, n: int, cfg: DirectedConfig = DirectedConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(log zoom (T,), view shift (T, 2) in fractions of the frame). One camera move spans a run of consecutive
    shots with the same camera value and intensity (the director also cuts shots at pauses inside a control);
    the camera holds its state between moves."""
    value = np.array(["none"] * n, dtype=object)
    level = np.full(n, 0.5)
    for shot, a, b in _shot_frames(plan, n):
        value[a:b], level[a:b] = shot["camera"], shot["intensity"]
    zoom, shift = np.zeros(n), np.zeros((n, 2))
    z, s = 0.0, np.zeros(2)
    a = 0
    while a < n:
        b = a + 1
        while b < n and value[b] == value[a] and level[b] == level[a]:
            b += 1
        ramp = np.arange(1, b - a + 1) / (b - a)
        k = 0.5 + level[a]
        dz = {"zoom-in": cfg.zoom * k, "zoom-out": -cfg.zoom * k}.get(value[a], 0.0)
        ds = np.array([cfg.pan * k, 0.0]) if value[a] == "pan" else np.zeros(2)
        zoom[a:b], shift[a:b] = z + dz * ramp, s + ds * ramp[:, None]
        z, s, a = z + dz, s + ds, b
    return zoom, shift


def expression_gain(plan: dict, n: int, cfg: DirectedConfig = DirectedConfig()) -> np.ndarray:
    gain = np.ones(n)
    for shot, a, b in _shot_frames(plan, n):
        g = 1 + cfg.intensity_gain * (shot["intensity"] - 0.5)
        if shot["emotion"] != "neutral":
            g *= 1 + cfg.emotion_gain
        gain[a:b] = g
    return gain


def apply_camera(frames: np.ndarray, zoom: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Zoom about the frame centre by exp(zoom) and move the view by ``shift`` (the content moves the other way)."""
    import cv2

    out = np.empty_like(frames)
    for i, img in enumerate(frames):
        h, w = img.shape[:2]
        if zoom[i] == 0 and not shift[i].any():
            out[i] = img
            continue
        k = math.exp(zoom[i])
        cx, cy = w / 2, h / 2
        m = np.array([[k, 0, cx - k * cx - shift[i, 0] * w], [0, k, cy - k * cy - shift[i, 1] * h]])
        out[i] = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Plan input: every check before any output
# ----------------------------------------------------------------------------------------------------------------

def read_plan(samples: np.ndarray, instruction: str | None = None, plan_path: str | Path | None = None,
              transcript: str | None = None) -> dict:
    """The plan for generation; one-line PlanError for: both/neither given, an instruction with no known control
    (every unmatched phrase listed), a plan past the audio, an unknown control, a frame rate other than 25."""
    from ..director.plan import make_plan, validate_plan

    if (instruction is None) == (plan_path is None):
        raise PlanError("give exactly one of --instruction TEXT and --plan PLAN.json")
    duration = round(len(samples) / AUDIO_RATE, 3)
    if plan_path is not None:
        path = Path(plan_path)
        if not path.is_file():
            raise PlanError(f"plan file not found: {path}")
        try:
            plan = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PlanError(f"{path} is not JSON: {exc}") from None
        validate_plan(plan, duration)
    else:
        plan = make_plan(samples, instruction, transcript=transcript, fps=VIDEO_FPS)
        if instruction.strip() and not plan["controls"]:
            listed = "; ".join(f"{u['phrase']!r} ({u['reason']})" for u in plan["unmatched"])
            raise PlanError(f"no known control in the instruction; unmatched: {listed}")
    if plan["fps"] != VIDEO_FPS:
        raise PlanError(f"plan fps is {plan['fps']}; the speech models run at {VIDEO_FPS} fps")
    return plan


# ----------------------------------------------------------------------------------------------------------------
# Sampler adapter and the pipeline
# ----------------------------------------------------------------------------------------------------------------

def subclip_sampler(model, identity: torch.Tensor, steps: int, sampler: str = "ddim", guidance: float = 1.0):
    """``sampler(noise, known, clamp, valid, cond) -> x0`` (director.subclips) on the audio2motion diffusion.

    ``cond`` (B, L, 2S + D) packs, per frame: the adapter's speech features (S), their null-condition copy (S) and
    the hint (D, the motion of the frame before; only frame 0 of each sub-clip is read)."""
    from .diffusion import samplers as _samplers
    from .diffusion.schedules import strided_timesteps

    diff, s_dim, d = model.diffusion, model.cfg.speech_dim, model.cfg.motion_dim
    schedule = diff.schedule

    @torch.no_grad()
    def run(noise, known, clamp, valid, cond):
        b = noise.shape[0]
        dev = diff.data_mean.device
        noise, known, clamp, valid, cond = (x.to(dev) for x in (noise, known, clamp, valid, cond))
        hint = cond[:, 0, 2 * s_dim:2 * s_dim + d]  # (B, D): each sub-clip's hint
        net_cond = {"speech": cond[..., :s_dim], "speech_null": cond[..., s_dim:2 * s_dim],
                    "hint": model.norm_hint(hint),
                    "identity": identity.to(dev).expand(b, -1), "mask": valid}
        known_n = diff.normalize(model.to_diffusion(known, hint))
        mask = clamp[..., None]

        def eps_fn(x_t, t, drop_cond):
            ac = schedule.alphas_cumprod.to(dev)[t].to(x_t.dtype).view(-1, 1, 1)
            x_t = torch.where(mask, ac.sqrt() * known_n + (1 - ac).sqrt() * noise, x_t)  # RePaint replacement
            drop = torch.full((b,), bool(drop_cond), dtype=torch.bool, device=dev)
            return diff.eps(x_t, t, net_cond, drop)[0].to(x_t.dtype)

        x0 = _samplers.sample(sampler, eps_fn, noise, schedule, strided_timesteps(schedule.num_steps, steps),
                              guidance=guidance, generator=torch.Generator(dev).manual_seed(0))
        out = torch.where(mask, known, model.from_diffusion(diff.denormalize(x0), hint))
        return torch.where(valid[..., None], out, torch.zeros((), dtype=out.dtype, device=dev)).cpu()

    return run


def _features(model, samples: np.ndarray, n: int) -> torch.Tensor:
    """(1, 4n, 39) MFCC features padded (edge) or cut to exactly n video frames."""
    feats = torch.from_numpy(mfcc_features(samples))
    want = n * MFCC_PER_FRAME
    if feats.shape[0] < want:
        feats = torch.cat([feats, feats[-1:].expand(want - feats.shape[0], -1)])
    return feats[:want][None]


@torch.no_grad()
def directed_motion(model, samples: np.ndarray, plan: dict, hint: torch.Tensor, identity: torch.Tensor,
                    cfg: DirectedConfig = DirectedConfig(), batched: bool = True) -> dict:
    """Blueprint, keyframes and the stitched motion (T, 20) of a plan, T = round(duration × fps)."""
    from ..director.plan import n_frames
    from ..director.subclips import denoise_subclips

    import time

    clock = time.perf_counter()
    net = model.net
    names = net.adapter.names
    if "pose" not in names:
        raise ConfigError(f"this audio2motion checkpoint has no pose adapter (variance {model.cfg.variance!r}); "
                          "directed generation needs one")
    n = n_frames(len(samples) / AUDIO_RATE, plan["fps"])
    if n < 2:
        raise ConfigError(f"the audio gives {n} frames; directed generation needs at least 2")
    dev = hint.device
    feats = _features(model, samples, n).to(dev)
    keep = torch.zeros(1, dtype=torch.bool, device=dev)
    _, preds = net.encode_speech(feats, keep)
    pose_deg = head_pose(plan, preds["pose"][0].float().cpu().numpy() * 90.0, cfg)
    given = {k: preds[k].float() for k in names}
    given["pose"] = torch.from_numpy(np.clip(pose_deg, -90, 90) / 90.0).float()[None].to(dev)
    control = set(names)
    blue = model.generate(feats, hint, identity, given=given, control=control, steps=cfg.blueprint_steps,
                          guidance=cfg.guidance, sampler=cfg.sampler, mode="windowed", seed=cfg.seed)["motion"][0]
    zoom, shift = camera_tracks(plan, n, cfg)
    scale = given["scale"][0, :, 0].cpu().numpy() if "scale" in given else np.full(n, 0.5)
    location = given["location"][0, :, 0].cpu().numpy() if "location" in given else np.full(n, 0.5)
    normed = diff_norm(model, blue, hint.float())
    clarity = np.clip(2.0 - normed.abs().amax(1).cpu().numpy(), 0.0, 1.0)
    tracks = {"yaw": pose_deg[:, 0], "pitch": pose_deg[:, 1], "roll": pose_deg[:, 2],
              "scale": scale * np.exp(zoom), "centre": np.stack([location - shift[:, 0], 0.5 - shift[:, 1]], 1),
              "clarity": clarity}
    keys, reasons = choose_keyframes(tracks, cfg.keyframes)
    speech, _ = net.encode_speech(feats, keep, given, control)
    null = net.encode_speech(feats, ~keep, given, control)[0] if cfg.guidance != 1.0 else speech
    hints = torch.cat([hint.float(), blue[:-1].float()])  # frame t's hint: the blueprint frame before it
    cond = torch.cat([speech[0].float(), null[0].float(), hints], 1).cpu()
    sampler = subclip_sampler(model, identity, cfg.steps, cfg.sampler, cfg.guidance)
    timing = {"blueprint_s": time.perf_counter() - clock}
    clock = time.perf_counter()
    motion = denoise_subclips(sampler, blue.float().cpu(), keys, cond=cond, seed=cfg.seed, batched=batched,
                              context=cfg.context)
    timing["subclips_s"] = time.perf_counter() - clock
    steer = getattr(model, "pose_to_motion", None) if cfg.pose_steer else None
    if steer is not None:  # the plan's pose change, through the train clips' pose→code map
        change = (pose_deg - preds["pose"][0].float().cpu().numpy() * 90.0) / 90.0  # (T, 3), AniTalker's units
        motion = motion + torch.from_numpy(change @ np.asarray(steer["matrix"], np.float64)).float()
    return {"blueprint": blue.float().cpu(), "motion": motion, "timing": timing, "keyframes": keys, "reasons": reasons,
            "tracks": tracks, "zoom": zoom, "shift": shift, "gain": expression_gain(plan, n, cfg), "n_frames": n,
            "pose_steer": None if steer is None else {"r2": steer["r2"]}}


def diff_norm(model, motion: torch.Tensor, hint: torch.Tensor) -> torch.Tensor:
    """(T, D) motion in the diffusion's normalised units (relative presets: minus the hint (1, D))."""
    dev = model.diffusion.data_mean.device
    return model.diffusion.normalize(model.to_diffusion(motion.to(dev)[None], hint.to(dev))[0]).float()


def generate_directed(source, audio, checkpoint, motion_checkpoint, out, *, instruction: str | None = None,
                      plan: str | Path | None = None, transcript: str | None = None,
                      cfg: DirectedConfig = DirectedConfig(), device: str = "cpu", batch_size: int = 16,
                      plan_out: str | Path | None = None, on_plan=None) -> dict:
    """Write OUT (mp4, 25 fps, the speech muxed) following the plan; every check before any output.
    ``on_plan(plan)`` is called once the plan is read and checked, before anything is written (the CLI says
    "empty instruction: the neutral plan" and lists unmatched phrases there)."""
    from .. import media
    from .speech import PortraitRenderer, load_models, load_portrait, load_speech

    if not 1 <= cfg.steps <= 1000 or not 1 <= cfg.blueprint_steps <= 1000:
        raise ConfigError(f"steps must be in [1, 1000], got {cfg.steps} and {cfg.blueprint_steps}")
    if not Path(audio).is_file():
        raise PlanError(f"audio file not found: {audio}")
    samples, record = load_speech(audio, 2)
    the_plan = read_plan(samples, instruction, plan, transcript)
    model, renderer, meta = load_models(checkpoint, motion_checkpoint, device)
    portrait = load_portrait(source)
    if on_plan is not None:
        on_plan(the_plan)
    drawn = PortraitRenderer(renderer, portrait)  # the full-size warp path (models.speech)
    hint = drawn.source.alpha.float()
    result = directed_motion(model, samples, the_plan, hint, drawn.source.identity.float(), cfg)
    base = hint[0].cpu()
    gain = torch.from_numpy(result["gain"]).float()[:, None]
    motion = base + gain * (result["motion"] - base)

    def frames():
        for i, batch in zip(range(0, len(motion), batch_size), drawn.frames(motion, batch_size)):
            yield apply_camera(batch, result["zoom"][i:i + batch_size], result["shift"][i:i + batch_size])

    media.write_video(out, frames(), fps=VIDEO_FPS, audio=samples, audio_rate=AUDIO_RATE)
    if plan_out is not None:
        Path(plan_out).write_text(json.dumps(the_plan, indent=1, ensure_ascii=False) + "\n")
    return {**record, **meta, "frames": result["n_frames"], "keyframes": result["keyframes"].tolist(),
            "pose_steer": result["pose_steer"],
            "notes": the_plan.get("notes", []), "unmatched": the_plan.get("unmatched", []), "plan": the_plan,
            "out": str(out)}
