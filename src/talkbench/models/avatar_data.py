"""The upper-body target tables (``extract-targets --profile upper-body``) in the avatar models' units, and the
exporter that writes them as the training contract of ``train_avatar`` (``DIR/clips/*.npz``, ``split.json``,
``basis.npz``).

    talkbench export-avatar-data --manifest curated/clips.parquet --targets curated/targets --out DATA --preset tiny

``train avatar-face|avatar-body|avatar-render --manifest curated/clips.parquet`` runs the same export into
``OUT/data`` first, so curate → extract-targets → train needs no hand step.

Units (``model_arrays``, the one home of the conversion; bench ``ours`` on upper-body converts the landmarks it
detects with it too):

- ``expression``: the table's coefficients as they are (the basis is exported with them);
- ``pose6``: yaw, pitch, roll in units of 90° (radians ÷ π/2), then (tx, ty) = the face-mesh centroid's offset from
  the body's nose keypoint in [-1, 1] image units ÷ ``FACE_IMAGE_SCALE`` (template units: where the face template
  sits on the nose), and scale = the mesh's RMS radius in [-1, 1] x-units ÷ (``FACE_IMAGE_SCALE`` × the template's
  RMS radius), 1 for a face of the size the template assumes;
- ``body``: Pose landmarks (0, 11, 12, 13, 14, 15, 16, 23, 24) as (x, y) in [-1, 1] of the frame;
- ``hands``: (2, 21, 2) in [-1, 1]. Slot 0 is the hand MediaPipe labels "Right" (on a camera image, not a mirrored
  selfie, the subject's LEFT hand, whose wrist is Pose landmark 15 = body point 5), slot 1 the "Left" label (the
  subject's right, wrist = body point 6): the order of ``avatar.source_keypoints``. The tables keep MediaPipe's
  label order (slot 0 "Left"), so the slots are swapped here. A missing hand sits folded at its wrist with
  ``hand_visible`` 0;
- frames without a face or a body take the nearest frame that has one (counted in the record); a clip with none
  at all is skipped with its reason.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ManifestError, MediaError

BODY_POINTS = (0, 11, 12, 13, 14, 15, 16, 23, 24)  # MediaPipe Pose: nose, shoulders, elbows, wrists, hips
WRIST_OF_SLOT = (5, 6)  # body point of each model hand slot's wrist (Pose 15: subject's left, 16: right)
TABLE_SLOT_OF_MODEL_SLOT = (1, 0)  # model slot → table slot (tables: MediaPipe "Left" label first)
AUDIO_RATE = 16000


def _template_radius() -> float:
    from .body_hands import FACE_POINTS

    xy = FACE_POINTS[:, :2] - FACE_POINTS[:, :2].mean(0)
    return float(np.sqrt((xy ** 2).sum(1).mean()))


def _fill_nearest(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, int]:
    """Rows where ``valid`` is False take the nearest valid row (the earlier one on a tie); returns (filled, count)."""
    idx = np.flatnonzero(valid)
    if len(idx) == 0:
        raise ValueError("no valid frame")
    t = np.arange(len(values))
    pos = np.clip(np.searchsorted(idx, t), 0, len(idx) - 1)
    before = idx[np.maximum(pos - 1, 0)]
    after = idx[pos]
    nearest = np.where(np.abs(t - before) <= np.abs(after - t), before, after)
    nearest = np.where(valid, t, nearest)
    return values[nearest], int((~valid).sum())


def pose6_model(pose6: np.ndarray, nose: np.ndarray, width: int, height: int) -> np.ndarray:
    """(T, 6) table ``pose6`` and (T, 2) nose in [-1, 1] image units → (T, 6) the models' pose6 (module docstring)."""
    from .body_hands import FACE_IMAGE_SCALE

    aspect = width / height
    centre = np.stack([pose6[:, 3] * 2 - 1, pose6[:, 4] * aspect * 2 - 1], -1)
    radius = 2 * np.exp(pose6[:, 5])  # RMS radius in [-1, 1] x-units
    return np.concatenate([pose6[:, :3] / (math.pi / 2), (centre - nose) / FACE_IMAGE_SCALE,
                           (radius / (FACE_IMAGE_SCALE * _template_radius()))[:, None]], 1)


def model_arrays(expression: np.ndarray, pose6: np.ndarray, body: np.ndarray, hands: np.ndarray,
                 hand_present: np.ndarray, width: int, height: int) -> tuple[dict[str, np.ndarray], dict]:
    """Target-table arrays of one clip (``manifests.targets.load_targets`` names and units: expression (T, E),
    pose6 (T, 6), body (T, 25, 3) and hands (T, 2, 21, 3) divided by the frame width, hand_present (T, 2); NaN where
    nothing was found) → the models' arrays (module docstring) and a record. ValueError when no frame has a face
    and a body."""
    aspect = width / height  # y / width → [-1, 1] of the height
    face_ok = ~np.isnan(expression).any(1) & ~np.isnan(pose6).any(1)
    body_xy = body[:, BODY_POINTS, :2].astype(np.float64)
    body_ok = ~np.isnan(body_xy).any((1, 2))
    both = face_ok & body_ok
    if not both.any():
        raise ValueError("no frame has both a face mesh and a body pose")
    expression, n_face = _fill_nearest(np.asarray(expression, np.float64), face_ok)
    pose6, _ = _fill_nearest(np.asarray(pose6, np.float64), face_ok)
    body_xy, n_body = _fill_nearest(body_xy, body_ok)
    norm = np.stack([body_xy[..., 0] * 2 - 1, body_xy[..., 1] * aspect * 2 - 1], -1)  # (T, 9, 2)

    model_pose = pose6_model(pose6, norm[:, 0], width, height)

    t = len(expression)
    out_hands = np.empty((t, 2, 21, 2))
    visible = np.zeros((t, 2), np.float32)
    for slot, table_slot in enumerate(TABLE_SLOT_OF_MODEL_SLOT):
        pts = hands[:, table_slot, :, :2].astype(np.float64)
        seen = np.asarray(hand_present[:, table_slot], bool) & ~np.isnan(pts).any((1, 2))
        xy = np.stack([pts[..., 0] * 2 - 1, pts[..., 1] * aspect * 2 - 1], -1)
        folded = np.repeat(norm[:, WRIST_OF_SLOT[slot]][:, None], 21, 1)
        out_hands[:, slot] = np.where(seen[:, None, None], np.nan_to_num(xy), folded)
        visible[:, slot] = seen
    arrays = {"expression": expression.astype(np.float32), "pose6": model_pose.astype(np.float32),
              "body": norm.astype(np.float32), "hands": out_hands.astype(np.float32), "hand_visible": visible}
    record = {"frames": t, "filled_face": n_face, "filled_body": n_body,
              "hand_frames": [int(v) for v in visible.sum(0)]}
    return arrays, record


# ----------------------------------------------------------------------------------------------------------------
# Exporter
# ----------------------------------------------------------------------------------------------------------------

def frame_size(preset: str) -> tuple[int, int]:
    """(H, W) of the frames a preset trains on: the renderer's size (the body part's appearance input matches)."""
    from .kp_renderer import get_config

    try:
        return tuple(get_config(preset).size)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _basis(targets: Path) -> tuple[np.ndarray, np.ndarray]:
    from ..manifests.io import read_table

    rows = sorted(read_table(targets / "expression_basis.parquet", "expression_basis").to_pylist(),
                  key=lambda r: r["index"])
    if not rows or rows[0]["index"] != -1:
        raise ManifestError(f"{targets / 'expression_basis.parquet'}: no mean row (index -1)")
    return np.asarray(rows[0]["values"], np.float32), np.asarray([r["values"] for r in rows[1:]], np.float32)


def _export_key(manifest: Path, targets: Path, size: tuple[int, int]) -> dict:
    from ..media import sha256_file

    return {"manifest_sha256": sha256_file(manifest), "size": list(size),
            "targets_sha256": {f.name: sha256_file(f) for f in sorted(targets.glob("*.parquet"))}}


def export_avatar_data(manifest: str | Path, out: str | Path, *, targets: str | Path | None = None,
                       size: tuple[int, int] = (384, 256), log=None) -> dict:
    """Write OUT/clips/<clip_id>.npz (frames at ``size`` (H, W), audio, expression, pose6, body, hands,
    hand_visible), OUT/split.json, OUT/basis.npz and OUT/export.json (inputs' sha256, clips written and skipped with
    reasons). ``targets`` defaults to ``targets/`` beside the manifest. A finished export of the same inputs is
    reused as it is (npz files are not byte-stable, and a resumed training run checks their hashes).

    Every input is checked before anything is written."""
    from ..manifests.io import atomic_write_text, read_rows
    from ..manifests.targets import TARGET_TABLES, load_targets
    from ..media import read_audio, read_frames

    manifest = Path(manifest)
    if not manifest.is_file():
        raise ManifestError(f"{manifest}: no such clips manifest")
    targets = Path(targets) if targets else manifest.parent / "targets"
    missing = [n for n in TARGET_TABLES if not (targets / f"{n}.parquet").is_file()]
    if missing:
        raise ManifestError(f"{targets}: missing target tables {missing}; run talkbench extract-targets --profile "
                            f"upper-body --manifest {manifest} --out {targets}")
    h, w = size
    if h * 2 != w * 3:
        raise ConfigError(f"the avatar frames are 2:3 (W:H), got {w}×{h}")
    clips = sorted(read_rows(manifest, "clips"), key=lambda r: r["clip_id"])
    if not clips:
        raise ManifestError(f"{manifest}: no clips")
    root = manifest.parent

    def video(clip):  # the exported copy at this height when there is one (no resize), else the main export
        small = clip.get("path_small")
        if small and (root / small).is_file() and clip.get("height") and int(clip["height"]) // 2 == h:
            return root / small
        return root / clip["path"]

    absent = [str(video(c)) for c in clips if not c.get("path") or not video(c).is_file()]
    if absent:
        raise MediaError(f"{manifest}: {len(absent)} clip video(s) missing, first {absent[0]}")
    mean, components = _basis(targets)
    out = Path(out)
    key = _export_key(manifest, targets, size)
    done = out / "export.json"
    if done.is_file():
        previous = json.loads(done.read_text())
        if previous.get("key") == key:
            return previous

    (out / "clips").mkdir(parents=True, exist_ok=True)
    written, skipped = [], {}
    for clip in clips:
        cid = clip["clip_id"]
        if log:
            log(f"export {cid}")
        tg = load_targets(targets, cid)
        path = video(clip)
        frames = read_frames(path, size=(w, h))
        n = min(len(frames), len(tg["expression"]))
        if n == 0:
            skipped[cid] = "no target rows for this clip"
            continue
        src_w, src_h = int(clip.get("size") or w), int(clip.get("height") or h)
        try:
            arrays, record = model_arrays(tg["expression"][:n], tg["pose6"][:n], tg["body"][:n], tg["hands"][:n],
                                          tg["hand_present"][:n], src_w, src_h)
        except ValueError as exc:
            skipped[cid] = str(exc)
            continue
        audio = read_audio(path, AUDIO_RATE) if clip.get("has_audio") else None
        if audio is None or not len(audio):
            skipped[cid] = "no audio (the face and body parts are driven by speech)"
            continue
        tmp = out / "clips" / f".{cid}.tmp.npz"
        np.savez(tmp, frames=frames[:n], audio=audio.astype(np.float32), **arrays)
        tmp.replace(out / "clips" / f"{cid}.npz")
        written.append({"clip_id": cid, "split": clip.get("split"), **record})
    splits: dict[str, list[str]] = {}
    for row in written:
        splits.setdefault(row["split"] or "train", []).append(row["clip_id"])
    atomic_write_text(out / "split.json", json.dumps(splits, indent=1, sort_keys=True))
    tmp = out / ".basis.tmp.npz"
    np.savez(tmp, mean=mean, components=components)
    tmp.replace(out / "basis.npz")
    result = {"key": key, "manifest": str(manifest), "targets": str(targets), "clips": written, "skipped": skipped}
    atomic_write_text(done, json.dumps(result, indent=1, sort_keys=True))
    return result
