"""Instruction-following adherence: did a control have its effect over its time span, against a neutral run?

Inputs are per-frame tracks of one video (from the shared face module, or any tracker): ``yaw``, ``pitch``,
``roll`` (degrees), ``scale`` (face size / image size), ``centre`` (T, 2) (face centre / image size) and
``expression`` (T, E) (expression coefficients). The same audio generated with the neutral (empty) instruction
gives the baseline tracks. Each (kind, value) of the director's vocabulary has one measure and a direction:

- nod: pitch oscillation energy; shake: yaw oscillation energy (a track's variance after removing its 1 s
  moving average, so slow drifts are not oscillation); still: the oscillation energy of all three angles, lower;
- tilt: |mean roll|, in degrees;
- zoom-in / zoom-out: the change in log face scale over the span (end minus start, 0.2 s averages);
  pan: the face centre's drift over the span; static: the drift plus the |change in log scale|, lower;
- an emotion, animated gestures, high intensity: expression amplitude (RMS distance of the expression from its
  own mean over the whole video), higher; calm gestures, low intensity: lower.

Success: the effect (target − neutral, or log ratio for energies) is beyond the measure's margin in the expected
direction (``MEASURES``); "still" and "static" also succeed below an absolute ceiling (``CEILINGS``), since a
neutral run that does not move cannot be beaten. The margins are the smallest effects counted as following; they
are stated, not fitted. ``face_tracks`` reads the tracks from a video through the shared face module.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError

# measure → (function name, kind of comparison, margin). "log" compares log(target / neutral); "diff" target − neutral.
MEASURES = {
    "pitch_oscillation": ("log", math.log(1.5)),
    "yaw_oscillation": ("log", math.log(1.5)),
    "head_oscillation": ("log", math.log(1.5)),
    "roll_offset": ("diff", 3.0),  # degrees
    "scale_change": ("diff", 0.05),  # log scale: ~5 % zoom
    "centre_drift": ("diff", 0.03),  # image fractions
    "camera_motion": ("diff", 0.02),
    "expression_amplitude": ("log", math.log(1.2)),
}

# "Less than neutral" controls cannot beat a neutral run that already does not move; they also succeed when the
# target itself is below these ceilings (the camera moved under 1 % of the frame; the head's oscillation RMS is
# under 0.22°, far below talking motion).
CEILINGS = {"camera_motion": 0.01, "head_oscillation": 0.05}

# (kind, value) → (measure, direction): +1 the measure must rise against neutral, −1 fall.
EFFECTS = {
    ("head", "nod"): ("pitch_oscillation", +1),
    ("head", "shake"): ("yaw_oscillation", +1),
    ("head", "tilt"): ("roll_offset", +1),
    ("head", "still"): ("head_oscillation", -1),
    ("camera", "zoom-in"): ("scale_change", +1),
    ("camera", "zoom-out"): ("scale_change", -1),
    ("camera", "pan"): ("centre_drift", +1),
    ("camera", "static"): ("camera_motion", -1),
    ("gesture", "calm"): ("expression_amplitude", -1),
    ("gesture", "animated"): ("expression_amplitude", +1),
    ("intensity", "high"): ("expression_amplitude", +1),
    ("intensity", "low"): ("expression_amplitude", -1),
    **{("emotion", e): ("expression_amplitude", +1)
       for e in ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust")},
}
TRACKS = ("yaw", "pitch", "roll", "scale", "centre", "expression")


def effect_of(kind: str, value: str) -> tuple[str, int]:
    if (kind, value) not in EFFECTS:
        raise ConfigError(f"unknown control {f'{kind}:{value}'!r}; choose from "
                          f"{sorted(f'{k}:{v}' for k, v in EFFECTS)}")
    return EFFECTS[(kind, value)]


def _detrend(x: np.ndarray, fps: float) -> np.ndarray:
    width = max(int(round(fps)), 1)
    kernel = np.ones(width) / width
    padded = np.pad(x, (width // 2, width - 1 - width // 2), mode="edge")
    return x - np.convolve(padded, kernel, mode="valid")


def _ends(x: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    k = max(1, min(int(round(0.2 * fps)), len(x) // 2))
    return x[:k].mean(0), x[-k:].mean(0)


def measure(tracks: dict, name: str, span: tuple[int, int], fps: float) -> float:
    """One measure of one video over frames ``span`` = [a, b)."""
    a, b = span
    if name in ("pitch_oscillation", "yaw_oscillation", "head_oscillation"):
        keys = {"pitch_oscillation": ("pitch",), "yaw_oscillation": ("yaw",),
                "head_oscillation": ("yaw", "pitch", "roll")}[name]
        return float(sum(np.mean(_detrend(np.asarray(tracks[k], float), fps)[a:b] ** 2) for k in keys))
    if name == "roll_offset":
        return float(abs(np.mean(np.asarray(tracks["roll"], float)[a:b])))
    if name in ("scale_change", "centre_drift", "camera_motion"):
        start_s, end_s = _ends(np.log(np.asarray(tracks["scale"], float)[a:b]), fps)
        start_c, end_c = _ends(np.asarray(tracks["centre"], float)[a:b], fps)
        drift = float(np.linalg.norm(end_c - start_c))
        return {"scale_change": float(end_s - start_s), "centre_drift": drift,
                "camera_motion": drift + float(abs(end_s - start_s))}[name]
    if name == "expression_amplitude":
        expr = np.asarray(tracks["expression"], float)
        expr = expr.reshape(len(expr), -1)
        return float(np.sqrt(np.mean(np.sum((expr[a:b] - expr.mean(0)) ** 2, axis=1))))
    raise ConfigError(f"unknown measure {name!r}; choose from {sorted(MEASURES)}")


def check_tracks(tracks: dict, what: str) -> int:
    missing = [k for k in TRACKS if k not in tracks]
    if missing:
        raise ConfigError(f"{what} tracks lack {missing}; need {list(TRACKS)}")
    n = len(np.asarray(tracks["yaw"]))
    for k in TRACKS:
        if len(np.asarray(tracks[k])) != n:
            raise ConfigError(f"{what} track {k!r} has {len(np.asarray(tracks[k]))} frames, expected {n}")
    return n


def adherence(tracks: dict, neutral: dict, kind: str, value: str, span_s: tuple[float, float],
              fps: float = 25.0) -> dict:
    """Score one control over ``span_s`` seconds: ``{kind, value, measure, target, neutral, effect, margin,
    direction, success}``."""
    n = min(check_tracks(tracks, "target"), check_tracks(neutral, "neutral"))
    a, b = int(round(span_s[0] * fps)), min(int(round(span_s[1] * fps)), n)
    if not 0 <= a < b or b - a < 3:
        raise ConfigError(f"span {span_s} s covers {max(b - a, 0)} frames of a {n}-frame video; need at least 3")
    name, direction = effect_of(kind, value)
    mode, margin = MEASURES[name]
    target, base = measure(tracks, name, (a, b), fps), measure(neutral, name, (a, b), fps)
    if mode == "log":
        effect = math.log((target + 1e-9) / (base + 1e-9))
    else:
        effect = target - base
    return {"kind": kind, "value": value, "measure": name, "target": target, "neutral": base, "effect": effect,
            "margin": margin, "direction": direction,
            "success": bool(direction * effect > margin or (direction < 0 and target <= CEILINGS.get(name, -1.0)))}


def success_rate(rows: list[dict]) -> dict[str, float]:
    """Success rate per control (``kind:value``) and overall (``all``)."""
    out: dict[str, list[bool]] = {}
    for row in rows:
        out.setdefault(f"{row['kind']}:{row['value']}", []).append(row["success"])
        out.setdefault("all", []).append(row["success"])
    return {k: float(np.mean(v)) for k, v in sorted(out.items())}


def face_tracks(frames: np.ndarray, max_missing: float = 0.5) -> dict:
    """Per-frame tracks of a video (T, H, W, 3) uint8 RGB through the shared face module (MediaPipe Face Mesh).

    - ``yaw``/``pitch``/``roll``: ``faces.pose.head_pose`` (the one estimator curation's filter uses too), degrees;
    - ``scale``: the RMS distance of the mesh points from their centroid over the frame width;
    - ``centre``: the mesh centroid over (width, height);
    - ``expression``: the mesh in the face's own frame (centroid removed, divided by its scale, roll undone),
      flattened (T, 936): what moves in it is expression, not head placement.

    Frames without a face are filled by linear interpolation; ``missing`` says how many there were, and more than
    ``max_missing`` of the video is an error.
    """
    from ..faces.detect import mesh_landmarks
    from ..faces.pose import head_pose

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) < 3:
        raise ConfigError(f"frames must be (T >= 3, H, W, 3) RGB, got shape {frames.shape}")
    t, h, w = frames.shape[:3]
    mesh = mesh_landmarks(frames)  # (T, 468, 3)
    found = ~np.isnan(mesh[:, 0, 0])
    if found.mean() < 1 - max_missing:
        raise ConfigError(f"a face was found in {int(found.sum())} of {t} frames; need at least "
                          f"{int(np.ceil((1 - max_missing) * t))}")
    pose = head_pose(mesh)  # (T, 3) yaw, pitch, roll
    xy = mesh[:, :, :2]
    centroid = xy.mean(1)  # (T, 2)
    rel = xy - centroid[:, None]
    size = np.sqrt((rel ** 2).sum(-1).mean(1))  # (T,)
    roll = np.deg2rad(np.nan_to_num(pose[:, 2]))
    c, s = np.cos(-roll), np.sin(-roll)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (T, 2, 2)
    canonical = np.einsum("tij,tnj->tni", rot, rel / size[:, None, None])
    tracks = {"yaw": pose[:, 0], "pitch": pose[:, 1], "roll": pose[:, 2], "scale": size / w,
              "centre": centroid / np.array([w, h]), "expression": canonical.reshape(t, -1)}
    ok = found & ~np.isnan(pose).any(1)
    index = np.arange(t)
    for key, value in tracks.items():
        value = value.reshape(t, -1)
        filled = np.stack([np.interp(index, index[ok], value[ok, j]) for j in range(value.shape[1])], 1)
        tracks[key] = filled[:, 0] if key in ("yaw", "pitch", "roll", "scale") else filled
    tracks["missing"] = int(t - ok.sum())
    return tracks
