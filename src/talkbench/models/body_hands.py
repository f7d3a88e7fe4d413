"""Body/hand motion transformer (ChatAnyone §3.3; no public code): the second stage of the upper-body avatar.

Input per frame: the face motion (expression E + pose6) projected to 3-D face keypoints through a FIXED linear
template (``FaceTemplate``), flattened and embedded. Two transformer layers (self-attention over frames,
cross-attention to the speech tokens and to the source-appearance tokens, MLP) predict per frame the body keypoints
(Kb, C) and both hands' 21 joints (2, 21, C) as offsets from the source portrait's own keypoints. ChatAnyone predicts
MANO hand coefficients; we predict the 21 MediaPipe-Hands joints that stand in for them (MODELS.md §2). The stage is
a regression (L1 on keypoints), as the 2-layer size suggests; the diversity comes from the face stage above it.

The face template (an open stand-in for ChatAnyone's 3DMM head): K = 10 canonical 3-D points in head units
(eyes, brows, nose tip, mouth corners, upper/lower lip, chin) plus an expression basis B (E, K, 3). By default B's
first columns are named deformations (jaw open: lower lip and chin down; smile: mouth corners out and up; brows
up), the rest fixed random directions from seed 0, each scaled to unit norm. When the curation's face-mesh basis
is known, ``FaceTemplate.from_basis(mean, components)`` uses it instead. Keypoints =
R(yaw, pitch, roll) · (C + Σ_e x_e B_e) · scale + (tx, ty, 0), angles in units of 90° (pose6 as in face_dit).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn

from .face_dit import POSE_DIM, CrossBlock, make_front_end, sinusoidal

HAND_JOINTS = 21
FACE_POINTS = np.array([  # (x right, y down, z towards the camera), inter-ocular distance 1
    [-0.5, 0.0, 0.0], [0.5, 0.0, 0.0],  # eyes
    [-0.55, -0.35, 0.05], [0.55, -0.35, 0.05],  # brows
    [0.0, 0.55, 0.45],  # nose tip
    [-0.4, 1.0, 0.2], [0.4, 1.0, 0.2],  # mouth corners
    [0.0, 0.92, 0.3], [0.0, 1.08, 0.28],  # upper, lower lip
    [0.0, 1.55, 0.15],  # chin
], np.float32)


def default_basis(expr_dim: int) -> np.ndarray:
    """(E, K, 3) expression deformations, unit Frobenius norm each."""
    k = len(FACE_POINTS)
    named = np.zeros((3, k, 3), np.float32)
    named[0, [8, 9], 1] = [0.3, 0.5]  # jaw open
    named[1, 5], named[1, 6] = [-0.15, -0.1, 0], [0.15, -0.1, 0]  # smile
    named[2, [2, 3], 1] = -0.2  # brows up
    rest = np.random.default_rng(0).standard_normal((max(0, expr_dim - 3), k, 3)).astype(np.float32)
    basis = np.concatenate([named, rest])[:expr_dim]
    return basis / np.linalg.norm(basis.reshape(expr_dim, -1), axis=1)[:, None, None]


def rotation(angles: torch.Tensor) -> torch.Tensor:
    """(…, 3) yaw, pitch, roll in units of 90° → (…, 3, 3) R = R_roll(z) R_yaw(y) R_pitch(x)."""
    a = angles.float() * (math.pi / 2)
    y, p, r = a.unbind(-1)
    one, zero = torch.ones_like(y), torch.zeros_like(y)

    def mat(rows):
        return torch.stack([torch.stack(row, -1) for row in rows], -2)

    ry = mat([[y.cos(), zero, y.sin()], [zero, one, zero], [-y.sin(), zero, y.cos()]])
    rx = mat([[one, zero, zero], [zero, p.cos(), -p.sin()], [zero, p.sin(), p.cos()]])
    rz = mat([[r.cos(), -r.sin(), zero], [r.sin(), r.cos(), zero], [zero, zero, one]])
    return rz @ ry @ rx


class FaceTemplate(nn.Module):
    """Face motion (…, E + 6) → 3-D keypoints (…, K, 3); fixed (buffers, no parameters)."""

    def __init__(self, expr_dim: int, mean: np.ndarray | None = None, basis: np.ndarray | None = None):
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(FACE_POINTS if mean is None else mean).float())
        self.register_buffer("basis", torch.from_numpy(default_basis(expr_dim) if basis is None else basis).float())

    @classmethod
    def from_basis(cls, mean: np.ndarray, components: np.ndarray) -> "FaceTemplate":
        return cls(components.shape[0], mean, components)

    @property
    def points(self) -> int:
        return self.mean.shape[0]

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        e = self.basis.shape[0]
        expr, pose = motion[..., :e], motion[..., e:e + POSE_DIM]
        shape = self.mean + torch.einsum("...e,ekc->...kc", expr.float(), self.basis)  # (…, K, 3)
        rot = rotation(pose[..., :3])  # (…, 3, 3)
        pts = torch.einsum("...ij,...kj->...ki", rot, shape) * pose[..., 5:6, None]
        shift = torch.cat([pose[..., 3:5], torch.zeros_like(pose[..., :1])], -1)
        return pts + shift[..., None, :]


# ----------------------------------------------------------------------------------------------------------------
# Config and presets
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BodyHandsConfig:
    expr_dim: int = 52
    body_points: int = 9  # MediaPipe-pose upper-body subset given by the curation tables
    coords: int = 2  # 2 (image x, y) or 3
    dim: int = 512
    layers: int = 2  # ChatAnyone: 2
    heads: int = 8
    mlp_ratio: float = 4.0
    front_end: str = "mfcc"
    mfcc_hidden: int = 256
    speech_blocks: int = 4
    appearance_patch: int = 32  # source image patches (pixels) → appearance tokens
    image_size: tuple[int, int] = (768, 512)  # (H, W) of the source the appearance encoder sees
    window: int = 100

    @property
    def out_dim(self) -> int:
        return (self.body_points + 2 * HAND_JOINTS) * self.coords

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "BodyHandsConfig":
        names = {f.name for f in fields(cls)}
        d = {k: (tuple(v) if k == "image_size" else v) for k, v in d.items() if k in names}
        return cls(**d)


PRESETS: dict[str, BodyHandsConfig] = {
    "paper": BodyHandsConfig(),
    "tiny": BodyHandsConfig(expr_dim=16, dim=64, heads=4, mfcc_hidden=64, appearance_patch=32, image_size=(384, 256),
                            window=32),
}


def get_config(preset: str) -> BodyHandsConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown body_hands preset {preset!r}; choose from {sorted(PRESETS)}")
    return PRESETS[preset]


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------

class BodyHands(nn.Module):
    def __init__(self, cfg: BodyHandsConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.template = FaceTemplate(cfg.expr_dim)
        self.face_in = nn.Linear(self.template.points * 3 + POSE_DIM, d)
        self.source_in = nn.Linear(cfg.out_dim, d)
        self.front_end = make_front_end(cfg.front_end, d, cfg.mfcc_hidden, cfg.speech_blocks, cfg.heads)
        p = cfg.appearance_patch
        self.appearance = nn.Sequential(nn.Conv2d(3, d // 2, p // 4, stride=p // 4), nn.GELU(),
                                        nn.Conv2d(d // 2, d, 4, stride=4))  # patch tokens of the source image
        self.type_emb = nn.Parameter(torch.zeros(2, d))
        self.blocks = nn.ModuleList([CrossBlock(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.layers)])
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.out_dim)
        nn.init.zeros_(self.out.weight), nn.init.zeros_(self.out.bias)  # starts at "the source pose, unmoved"

    def appearance_tokens(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] → (B, N, d) with 2-D sinusoidal positions."""
        f = self.appearance(image)  # (B, d, h, w)
        b, d, h, w = f.shape
        yy, xx = torch.meshgrid(torch.arange(h, device=f.device), torch.arange(w, device=f.device), indexing="ij")
        pos = torch.cat([sinusoidal(yy.flatten(), d // 2), sinusoidal(xx.flatten(), d // 2)], -1)  # (h·w, d)
        return f.flatten(2).transpose(1, 2) + pos

    def forward(self, face_motion: torch.Tensor, audio: torch.Tensor, image: torch.Tensor,
                source_body: torch.Tensor, source_hands: torch.Tensor) -> dict[str, torch.Tensor]:
        """face_motion (B, T, E + 6), audio (B, F·T, C), image (B, 3, H, W), source_body (B, Kb, C),
        source_hands (B, 2, 21, C) → body (B, T, Kb, C), hands (B, T, 2, 21, C)."""
        b, t, _ = face_motion.shape
        d, c = self.cfg.dim, self.cfg.coords
        kp = self.template(face_motion)  # (B, T, K, 3)
        src = torch.cat([source_body.flatten(1), source_hands.flatten(1)], 1)  # (B, out)
        h = self.face_in(torch.cat([kp.flatten(2), face_motion[..., -POSE_DIM:]], -1))  # (B, T, d)
        h = h + self.source_in(src)[:, None] + sinusoidal(torch.arange(t, device=h.device), d)
        speech = self.front_end(audio)[:, :t] + sinusoidal(torch.arange(t, device=h.device), d) + self.type_emb[0]
        ctx = torch.cat([speech, self.appearance_tokens(image) + self.type_emb[1]], 1)  # (B, T + N, d)
        for block in self.blocks:
            h = block(h, ctx)
        pred = src[:, None] + self.out(self.norm(h))  # (B, T, out): offsets from the source keypoints
        kb = self.cfg.body_points * c
        return {"body": pred[..., :kb].reshape(b, t, -1, c),
                "hands": pred[..., kb:].reshape(b, t, 2, HAND_JOINTS, c)}

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """batch: face_motion, audio, image, source_body, source_hands, body (B, T, Kb, C), hands (B, T, 2, 21, C),
        optional hand_visible (B, T, 2) (the joints of unseen hands are not in the loss)."""
        pred = self(batch["face_motion"], batch["audio"], batch["image"], batch["source_body"],
                    batch["source_hands"])
        body = (pred["body"].float() - batch["body"].float()).abs().mean()
        err = (pred["hands"].float() - batch["hands"].float()).abs().mean((-1, -2))  # (B, T, 2)
        vis = batch.get("hand_visible")
        vis = torch.ones_like(err) if vis is None else vis.float()
        hands = (err * vis).sum() / vis.sum().clamp_min(1)
        return {"body": body, "hands": hands, "total": body + hands}


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(cfg: BodyHandsConfig) -> str:
    return (f"{cfg.layers} × d {cfg.dim} transformer, {cfg.front_end}, {cfg.body_points} body points + 2 × "
            f"{HAND_JOINTS} hand joints, source {cfg.image_size[1]}×{cfg.image_size[0]}")


def param_table(cfg: BodyHandsConfig) -> list[tuple[str, int]]:
    """Parameter count by module and the total (``models summary avatar-body``)."""
    model = BodyHands(cfg)
    rows = [(name, count_params(child)) for name, child in model.named_children()]
    rows.append(("other (tokens, embeddings)", count_params(model) - sum(n for _, n in rows)))
    return [r for r in rows if r[1]] + [("total", count_params(model))]


FACE_IMAGE_SCALE = 0.12  # inter-ocular distance in [-1, 1] image units of a 2:3 upper-body portrait (inferred)


def face_image_points(face_motion: torch.Tensor, template: FaceTemplate, anchor: torch.Tensor) -> torch.Tensor:
    """The renderer's face keypoints: template points (…, K, 3) → (…, K, 2) image points around ``anchor`` (…, 2),
    the nose keypoint of the body (x, y in [-1, 1]); pose tx/ty move the head on top of it."""
    kp = template(face_motion)[..., :2]
    return anchor[..., None, :2] + FACE_IMAGE_SCALE * (kp - template.mean[4, :2])
