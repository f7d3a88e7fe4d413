"""Upper-body avatar generation (ChatAnyone recipe): portrait + speech → face motion (DiT) → body and hands
(transformer) → frames (keypoint renderer) → mp4 with the speech muxed.

Generation is streaming by construction: ``stream`` takes the speech in chunks of ``chunk`` frames and yields the
frames of each chunk as soon as they are rendered (each chunk's face motion is conditioned on the previous chunk's
last frames); ``generate_avatar`` writes what it yields. Every input is checked before anything is written.

Decisions where the issue leaves a choice:
- a landscape (or any non-2:3) portrait is CROPPED to 2:3 around the face and the crop box is recorded: the models
  only saw 2:3 upper-body crops, and a webcam photo is landscape more often than not; refusing would turn most
  photos away, while a face-centred crop keeps head and shoulders;
- a portrait with no visible hand (MediaPipe Hands finds none) is generated with hands off, and the record says so;
- amplitude outside [0.5, 2] and a style reference without a face are one-line errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, MediaError
from . import body_hands, checkpoints, face_dit, kp_renderer
from .audio_features import AUDIO_RATE, MFCC_PER_FRAME, VIDEO_FPS, mfcc_features

HANDS = ("on", "off")
BODY_LANDMARKS = (0, 11, 12, 13, 14, 15, 16, 23, 24)  # MediaPipe Pose: nose, shoulders, elbows, wrists, hips
ASPECT = 2 / 3  # width / height of the upper-body crop


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------

class AvatarModels:
    """The three parts with EMA weights, and the face checkpoint's expression basis (or None)."""

    def __init__(self, face: face_dit.FaceDiT, body: body_hands.BodyHands, render: kp_renderer.KeypointRenderer,
                 basis: tuple[np.ndarray, np.ndarray] | None = None):
        self.face, self.body, self.render, self.basis = face, body, render, basis
        self.template = body_hands.FaceTemplate(face.cfg.expr_dim).to(face.amp_ref.device)

    @classmethod
    def load(cls, face: str | Path, body: str | Path, render: str | Path, device: str = "cpu") -> "AvatarModels":
        parts = []
        for path, part, model_cls, cfg_cls in (
                (face, "face", face_dit.FaceDiT, face_dit.FaceDiTConfig),
                (body, "body", body_hands.BodyHands, body_hands.BodyHandsConfig),
                (render, "render", kp_renderer.KeypointRenderer, kp_renderer.RendererConfig)):
            ckpt = checkpoints.load(path)
            if ckpt.get("cfg", {}).get("family") != f"avatar-{part}":
                raise checkpoints.CheckpointError(f"{path}: not an avatar {part} checkpoint "
                                                  f"(family {ckpt.get('cfg', {}).get('family')!r})")
            model = model_cls(cfg_cls.from_dict(ckpt["cfg"]["model"]))
            model.load_state_dict(ckpt["ema"])
            parts.append((model.to(device).eval().requires_grad_(False), ckpt))
        (f, fc), (b, _), (r, _) = parts
        if not f.cfg.expr_dim == b.cfg.expr_dim == r.cfg.expr_dim:
            raise ConfigError(f"the three checkpoints disagree on the expression size (face {f.cfg.expr_dim}, body "
                              f"{b.cfg.expr_dim}, render {r.cfg.expr_dim})")
        basis = None
        if "basis_mean" in fc:
            basis = (fc["basis_mean"].numpy(), fc["basis_components"].numpy())
        return cls(f, b, r, basis)


# ----------------------------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------------------------

def load_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file (one-line MediaError otherwise)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such portrait file")
    try:
        return np.asarray(Image.open(path).convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise MediaError(f"{path}: not a readable image ({exc})") from exc


def crop_portrait(img: np.ndarray, face_x: float) -> tuple[np.ndarray, list[int] | None]:
    """A 2:3 (w:h) crop, horizontally centred on the face when the image is too wide, else top-aligned (head and
    shoulders); returns the crop and its box [x, y, w, h] (None when already 2:3)."""
    h, w = img.shape[:2]
    if abs(w / h - ASPECT) < 0.01:
        return img, None
    if w / h > ASPECT:
        cw = int(round(h * ASPECT))
        x0 = int(np.clip(face_x - cw / 2, 0, w - cw))
        box = [x0, 0, cw, h]
    else:
        ch = int(round(w / ASPECT))
        box = [0, 0, w, ch]
    x, y, bw, bh = box
    return img[y:y + bh, x:x + bw], box


def face_coefficients(frames: np.ndarray, basis, expr_dim: int, what: str,
                      nose: np.ndarray | None = None) -> np.ndarray:
    """(T, E + 6) expression + pose6 of a video through the shared face tracks (metrics.instruction.face_tracks:
    the canonical face-mesh frame), projected on the face checkpoint's basis (mean (936,), components (E, 936))."""
    from ..manifests.targets import MESH_POINTS

    if basis is None:
        raise ConfigError(f"the face checkpoint carries no expression basis, so the {what} cannot be turned into "
                          "coefficients; train the face part on data with basis.npz")
    if np.asarray(basis[0]).size == MESH_POINTS * 3:  # the curation's basis (export-avatar-data)
        return mesh_coefficients(frames, basis, expr_dim, what, nose)
    from ..metrics.instruction import face_tracks

    try:
        tracks = face_tracks(frames)
    except ConfigError as exc:
        raise MediaError(f"the {what} shows no usable face ({exc})") from exc
    mean, comps = basis
    expr = (tracks["expression"] - mean[None]) @ comps.T  # (T, E)
    centre = tracks["centre"] * 2 - 1
    pose = np.stack([tracks["yaw"] / 90, tracks["pitch"] / 90, tracks["roll"] / 90, centre[:, 0], centre[:, 1],
                     tracks["scale"]], 1)
    return np.concatenate([expr[:, :expr_dim], pose], 1).astype(np.float32)


def mesh_coefficients(frames: np.ndarray, basis, expr_dim: int, what: str,
                      nose: np.ndarray | None = None) -> np.ndarray:
    """(T, E + 6) of a video with the curation's basis (mean (1404,), components (E, 1404)): the target tables'
    formulas (``manifests.targets``) in the models' units (``avatar_data``). ``nose`` (T, 2) or (2,): the body's
    nose keypoint in [-1, 1] (MediaPipe Pose, as in training); without it (a style reference, which need not show a
    body) the face mesh's nose tip (point 1) stands in, which puts (tx, ty) about 0.7 template units (≈ 0.08 of the
    frame width) off the Pose-based values on the demo clips (measured; the amplitude and style statistics that the
    reference feeds are ranges and sequences, so a constant offset moves them little)."""
    from ..faces.detect import mesh_landmarks
    from ..faces.pose import head_pose
    from ..manifests.targets import expression_coefficients, pose6_from_mesh
    from .avatar_data import _fill_nearest, pose6_model

    h, w = frames.shape[1:3]
    meshes = mesh_landmarks(frames)
    found = ~np.isnan(meshes[:, 0, 0])
    if not found.any():
        raise MediaError(f"the {what} shows no usable face (no face mesh in {len(frames)} frames)")
    meshes, _ = _fill_nearest(meshes, found)
    expr = expression_coefficients(meshes, *basis)
    if nose is None:
        nose = meshes[:, 1, :2] / np.array([w, h]) * 2 - 1
    nose = np.broadcast_to(np.asarray(nose, np.float64), (len(meshes), 2))
    pose = pose6_model(pose6_from_mesh(meshes, w, head_pose(meshes)), nose, w, h)
    return np.concatenate([expr[:, :expr_dim], pose], 1).astype(np.float32)


def source_keypoints(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(body (9, 2), hands (2, 21, 2), hands visible) in [-1, 1] from MediaPipe Pose and Hands (0.10.21 ship their
    models). A hand that is not found sits folded at its wrist."""
    from ..faces.detect import require_mediapipe

    mp = require_mediapipe()
    h, w = img.shape[:2]
    with mp.solutions.pose.Pose(static_image_mode=True) as pose:
        res = pose.process(np.ascontiguousarray(img))
    if res.pose_landmarks is None:
        raise MediaError("no upper body found in the portrait (MediaPipe Pose)")
    lm = res.pose_landmarks.landmark
    body = np.array([[lm[i].x * 2 - 1, lm[i].y * 2 - 1] for i in BODY_LANDMARKS], np.float32)
    hands = np.repeat(body[[5, 6]][:, None], 21, 1)  # (2, 21, 2): folded at the wrists
    with mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=2) as det:
        res = det.process(np.ascontiguousarray(img))
    found = False
    for hand, side in zip(res.multi_hand_landmarks or [], res.multi_handedness or []):
        slot = 0 if side.classification[0].label == "Right" else 1  # MediaPipe's "Right" is the subject's right
        hands[slot] = [[p.x * 2 - 1, p.y * 2 - 1] for p in hand.landmark]
        found = True
    return body, hands, found


# ----------------------------------------------------------------------------------------------------------------
# Keypoint-driven reenactment (bench `ours` on upper-body: ChatAnyone Table 1's self-driven setting)
# ----------------------------------------------------------------------------------------------------------------

class RenderModel:
    """The renderer of an ``avatar-render`` checkpoint (EMA weights), its expression basis and the face template."""

    def __init__(self, render: kp_renderer.KeypointRenderer, basis: tuple[np.ndarray, np.ndarray]):
        self.render, self.basis = render, basis
        self.template = body_hands.FaceTemplate(render.cfg.expr_dim)

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.render.cfg.size)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "RenderModel":
        from ..manifests.targets import MESH_POINTS

        ckpt = checkpoints.load(path)
        family = ckpt.get("cfg", {}).get("family")
        if family != "avatar-render":
            raise checkpoints.CheckpointError(f"{path}: not an avatar renderer checkpoint (family {family!r})")
        if "basis_mean" not in ckpt or ckpt["basis_mean"].numel() != MESH_POINTS * 3:
            raise ConfigError(f"{path}: the renderer carries no curation expression basis (1404-d), so a driving "
                              "video's faces cannot be read in its units; train it on exported data "
                              "(train avatar-render --manifest clips.parquet, or export-avatar-data)")
        model = kp_renderer.KeypointRenderer(kp_renderer.RendererConfig.from_dict(ckpt["cfg"]["model"]))
        model.load_state_dict(ckpt["ema"])
        basis = (ckpt["basis_mean"].numpy(), ckpt["basis_components"].numpy())
        return cls(model.to(device).eval().requires_grad_(False), basis)

    @torch.inference_mode()
    def reenact(self, source: np.ndarray, arrays: dict[str, np.ndarray], source_index: int = 0,
                batch_size: int = 8):
        """Yield (n, H, W, 3) uint8 chunks: ``source`` (H, W, 3) at the renderer's size, driven frame by frame by
        ``arrays`` (``avatar_data.model_arrays`` of the driving frames; frame ``source_index`` describes the
        source). Hands are drawn on the frames where the driver shows them."""
        from .train_avatar import render_keypoints

        e = self.render.cfg.expr_dim
        dev = next(self.render.parameters()).device
        c = {"motion": np.concatenate([arrays["expression"][:, :e], arrays["pose6"]], 1),
             "body": arrays["body"], "hands": arrays["hands"]}
        expr = torch.from_numpy(arrays["expression"][:, :e]).float()
        kp_src = render_keypoints(c, [source_index], self.template).to(dev)
        image = kp_renderer.to_tensor(source[None]).to(dev)
        visible = torch.from_numpy(arrays["hand_visible"]).bool().any(1)
        for s in range(0, len(arrays["expression"]), batch_size):
            t = list(range(s, min(s + batch_size, len(arrays["expression"]))))
            n = len(t)
            out = self.render(image.expand(n, -1, -1, -1), kp_src.expand(n, -1, -1),
                              render_keypoints(c, t, self.template).to(dev),
                              expr_src=expr[[source_index] * n].to(dev), expr_drv=expr[t].to(dev),
                              hands_on=visible[t].to(dev))
            yield kp_renderer.to_frames(out["image"])


# ----------------------------------------------------------------------------------------------------------------
# Streaming generation
# ----------------------------------------------------------------------------------------------------------------

class Source:
    """Everything the renderer needs about the portrait, prepared once."""

    def __init__(self, models: AvatarModels, img: np.ndarray, motion: np.ndarray, body: np.ndarray,
                 hands: np.ndarray):
        dev = models.face.amp_ref.device
        size = models.render.cfg.size
        from PIL import Image

        self.frame = np.asarray(Image.fromarray(img).resize((size[1], size[0]), Image.BICUBIC))
        self.image = kp_renderer.to_tensor(self.frame[None]).to(dev)  # (1, 3, H, W)
        self.motion = torch.from_numpy(motion).float().to(dev)[None]  # (1, 1, M)
        self.body = torch.from_numpy(body).float().to(dev)[None]
        self.hands = torch.from_numpy(hands).float().to(dev)[None]
        face = body_hands.face_image_points(self.motion[0], models.template, self.body[:, 0])
        self.kp = torch.cat([face, self.body, self.hands.flatten(1, 2)], 1)  # (1, P, 2)


@torch.inference_mode()
def stream(models: AvatarModels, source: Source, audio: np.ndarray, *, amplitude: float = 1.0,
           style: torch.Tensor | None = None, hands_on: bool = True, seed: int = 0, chunk: int = 10,
           steps: int = 10):
    """Yield (frames (n, H, W, 3) uint8, info) per chunk of ``chunk`` video frames of speech."""
    dev = source.image.device
    f = MFCC_PER_FRAME
    hop = AUDIO_RATE // VIDEO_FPS
    total = len(audio) // hop
    prev = source.motion.expand(1, models.face.cfg.prev_frames, -1)
    e = models.face.cfg.expr_dim
    for i, s in enumerate(range(0, total, chunk)):
        n = min(chunk, total - s)
        pad = hop  # a little context so the MFCC of the chunk has its n frames
        piece = audio[s * hop: (s + n) * hop + pad]
        feats = torch.from_numpy(mfcc_features(np.pad(piece, (0, max(0, (n + 1) * hop - len(piece))))))
        feats = feats[: n * f][None].to(dev)
        motion = models.face.generate(feats, prev, amplitude=amplitude, style=style, steps=steps,
                                      seed=seed + i)  # (1, n, M)
        prev = torch.cat([prev, motion], 1)[:, -models.face.cfg.prev_frames:]
        bh = models.body(motion, feats, source.image, source.body, source.hands)
        body, hands = bh["body"][0, ..., :2], bh["hands"][0, ..., :2]  # (n, 9, 2), (n, 2, 21, 2)
        face = body_hands.face_image_points(motion[0], models.template, body[:, 0])
        kp_drv = torch.cat([face, body, hands.flatten(1, 2)], 1)  # (n, P, 2)
        out = models.render(source.image.expand(n, -1, -1, -1), source.kp.expand(n, -1, -1), kp_drv,
                            expr_src=source.motion[0, :, :e].expand(n, -1), expr_drv=motion[0, :, :e],
                            hands_on=hands_on)
        yield kp_renderer.to_frames(out["image"]), {"motion": motion[0], "body": body, "hands": hands}


def generate_avatar(source: str | Path, audio: str | Path, out: str | Path, *, face_checkpoint: str | Path,
                    body_checkpoint: str | Path, render_checkpoint: str | Path, amplitude: float = 1.0,
                    style_ref: str | Path | None = None, hands: str = "on", seed: int = 0, steps: int = 10,
                    device: str = "cpu") -> dict:
    """Write OUT (mp4, 25 fps, speech muxed); return a record (crop, hands, amplitude, style, frames)."""
    from .. import media
    from ..faces.detect import mesh_landmarks
    from .speech import load_speech

    lo, hi = face_dit.AMPLITUDE_RANGE
    if not lo <= amplitude <= hi:
        raise ConfigError(f"amplitude must be in [{lo}, {hi}], got {amplitude}")
    if hands not in HANDS:
        raise ConfigError(f"unknown hands setting {hands!r}; choose from {sorted(HANDS)}")
    models = AvatarModels.load(face_checkpoint, body_checkpoint, render_checkpoint, device)
    speech, record = load_speech(audio, 1)
    img = load_image(source)
    mesh = mesh_landmarks(img[None])[0]
    if np.isnan(mesh[0, 0]):
        raise MediaError(f"{source}: no face found in the portrait")
    img, box = crop_portrait(img, float(np.nanmean(mesh[:, 0])))
    record["crop"] = box
    if box is not None:
        record["notes"] = [f"portrait cropped to 2:3 at x={box[0]} y={box[1]} w={box[2]} h={box[3]}"]
    e = models.face.cfg.expr_dim
    style = None
    if style_ref is not None:
        ref = media.read_frames(style_ref, size=256)
        if len(ref) == 0:
            raise MediaError(f"{style_ref}: no frames decoded")
        style = torch.from_numpy(face_coefficients(ref, models.basis, e, f"style reference {style_ref}"))[None]
        style = style.to(models.face.amp_ref.device)
    body, hand_pts, visible = source_keypoints(img)
    motion0 = face_coefficients(np.repeat(img[None], 3, 0), models.basis, e, "portrait", nose=body[0])[:1]
    hands_on = hands == "on" and visible
    if hands == "on" and not visible:
        record.setdefault("notes", []).append("no visible hands in the portrait: generated with hands off")
    src = Source(models, img, motion0, body, hand_pts)

    def frames():
        for chunk, _ in stream(models, src, speech, amplitude=amplitude, style=style, hands_on=hands_on, seed=seed,
                               steps=steps):
            yield chunk

    media.write_video(out, frames(), fps=VIDEO_FPS, audio=speech, audio_rate=AUDIO_RATE)
    return {**record, "hands": "on" if hands_on else "off", "amplitude": amplitude, "seed": seed,
            "style_ref": str(style_ref) if style_ref else None, "frames": len(speech) // (AUDIO_RATE // VIDEO_FPS),
            "out": str(out)}
