"""Adherence scoring on synthetic tracks where the answer is known (talkbench.metrics.instruction)."""

from __future__ import annotations

import numpy as np
import pytest

from talkbench.errors import ConfigError
from talkbench.metrics.instruction import EFFECTS, adherence, success_rate

FPS = 25
N = 200  # 8 s


def neutral(seed=0):
    """Speech-like head motion: small slow drifts plus noise, a fixed face box, small expression motion."""
    rng = np.random.default_rng(seed)
    t = np.arange(N) / FPS
    return {"yaw": 3 * np.sin(0.4 * t) + 0.3 * rng.standard_normal(N),
            "pitch": 2 * np.sin(0.3 * t + 1) + 0.3 * rng.standard_normal(N),
            "roll": 1 * np.sin(0.2 * t) + 0.2 * rng.standard_normal(N),
            "scale": 0.40 + 0.002 * rng.standard_normal(N),
            "centre": 0.5 + 0.002 * rng.standard_normal((N, 2)),
            "expression": 0.2 * rng.standard_normal((N, 10))}


def with_effect(kind, value, span=(80, 160), seed=0):
    tracks = {k: np.array(v, dtype=float) for k, v in neutral(seed).items()}
    a, b = span
    t = np.arange(b - a) / FPS
    if (kind, value) == ("head", "nod"):
        tracks["pitch"][a:b] += 8 * np.sin(2 * np.pi * 2.0 * t)  # 2 Hz nods of ±8°
    elif (kind, value) == ("head", "shake"):
        tracks["yaw"][a:b] += 10 * np.sin(2 * np.pi * 2.5 * t)
    elif (kind, value) == ("head", "tilt"):
        tracks["roll"][a:b] += 12
    elif (kind, value) == ("head", "still"):
        for k in ("yaw", "pitch", "roll"):
            tracks[k][a:b] = tracks[k][a:b].mean() + 0.05 * (tracks[k][a:b] - tracks[k][a:b].mean())
    elif value in ("zoom-in", "zoom-out"):
        tracks["scale"][a:b] *= np.exp(np.linspace(0, 0.3 if value == "zoom-in" else -0.3, b - a))
    elif value == "pan":
        tracks["centre"][a:b, 0] += np.linspace(0, 0.2, b - a)
    elif value == "static":
        tracks["centre"][a:b] = 0.5
        tracks["scale"][a:b] = 0.4
    elif kind == "emotion" or value in ("animated", "high"):
        tracks["expression"][a:b] *= 2.5
    elif value in ("calm", "low"):
        tracks["expression"][a:b] *= 0.3
    return tracks


def test_every_control_succeeds_when_its_effect_is_there_and_fails_on_the_neutral_output():
    base = neutral()
    rows = []
    for kind, value in EFFECTS:
        if (kind, value) == ("camera", "static"):
            continue  # a neutral run that barely moves is already static: see the next test
        row = adherence(with_effect(kind, value), base, kind, value, (80 / FPS, 160 / FPS), FPS)
        assert row["success"], row
        rows.append(row)
        same = adherence(neutral(seed=1), base, kind, value, (80 / FPS, 160 / FPS), FPS)  # another neutral run
        assert not same["success"], same
    rates = success_rate(rows)
    assert rates["all"] == 1.0 and rates["head:nod"] == 1.0


def test_effects_outside_the_span_or_in_the_wrong_direction_fail():
    base = neutral()
    nod_late = with_effect("head", "nod", span=(150, 200))
    assert not adherence(nod_late, base, "head", "nod", (0, 100 / FPS), FPS)["success"]
    zoom_in = with_effect("camera", "zoom-in")
    assert not adherence(zoom_in, base, "camera", "zoom-out", (80 / FPS, 160 / FPS), FPS)["success"]
    assert not adherence(zoom_in, base, "camera", "static", (80 / FPS, 160 / FPS), FPS)["success"]
    # A shake is no nod: yaw oscillates, pitch does not.
    assert not adherence(with_effect("head", "shake"), base, "head", "nod", (80 / FPS, 160 / FPS), FPS)["success"]
    moving = dict(base, centre=base["centre"] + np.linspace(0, 0.1, N)[:, None])
    assert adherence(base, moving, "camera", "static", (80 / FPS, 160 / FPS), FPS)["success"]
    # A static output counts even against a static neutral run (the ceiling); a drifting output never does.
    assert adherence(neutral(seed=1), base, "camera", "static", (80 / FPS, 160 / FPS), FPS)["success"]
    assert not adherence(moving, moving, "camera", "static", (80 / FPS, 160 / FPS), FPS)["success"]


def test_measured_values_are_the_formulas():
    base = neutral()
    row = adherence(with_effect("camera", "zoom-in"), base, "camera", "zoom-in", (80 / FPS, 160 / FPS), FPS)
    assert row["effect"] == pytest.approx(0.3 * (1 - 5 / 80), abs=0.01)  # log-scale change, 0.2 s end averages
    row = adherence(with_effect("head", "tilt"), base, "head", "tilt", (80 / FPS, 160 / FPS), FPS)
    assert row["effect"] == pytest.approx(12, abs=1.0)


def test_bad_inputs_are_one_line_errors():
    base = neutral()
    with pytest.raises(ConfigError, match="unknown control 'head:wiggle'"):
        adherence(base, base, "head", "wiggle", (0, 1), FPS)
    with pytest.raises(ConfigError, match="lack"):
        adherence({k: v for k, v in base.items() if k != "expression"}, base, "head", "nod", (0, 1), FPS)
    with pytest.raises(ConfigError, match="covers 0 frames"):
        adherence(base, base, "head", "nod", (9, 10), FPS)


def test_face_tracks_from_real_video_score_zoom_and_pan():
    """The shared face module on a real portrait (skimage's astronaut) filmed by a virtual camera: a window that
    narrows (zoom in), slides (pan) or stays put (neutral). The known camera moves must be found, and only they."""
    import cv2
    from skimage.data import astronaut

    from talkbench.metrics.instruction import face_tracks

    img = astronaut()

    def clip(zoom=0.0, pan=0.0, n=30):
        frames = []
        for t in range(n):
            f = t / (n - 1)
            s = int(300 - 120 * zoom * f)
            x0, y0 = int(90 + 80 * pan * f) + (300 - s) // 2, (300 - s) // 3
            frames.append(cv2.resize(img[y0:y0 + s, x0:x0 + s], (128, 128), interpolation=cv2.INTER_AREA))
        return np.stack(frames)

    base, zoom, pan = face_tracks(clip()), face_tracks(clip(zoom=1)), face_tracks(clip(pan=1))
    assert base["missing"] == zoom["missing"] == pan["missing"] == 0
    span = (0.0, 30 / FPS)
    # The window narrows from 300 to 180 px: the face grows by 300/180, log 0.51 (0.2 s end averages: ~0.47).
    zin = adherence(zoom, base, "camera", "zoom-in", span, FPS)
    assert zin["success"] and zin["effect"] == pytest.approx(np.log(300 / 180) * (1 - 5 / 30), abs=0.06)
    assert not adherence(zoom, base, "camera", "zoom-out", span, FPS)["success"]
    assert adherence(pan, base, "camera", "pan", span, FPS)["success"]
    assert not adherence(pan, base, "camera", "zoom-in", span, FPS)["success"]
    assert adherence(base, base, "camera", "static", span, FPS)["success"]
    assert not adherence(pan, base, "camera", "static", span, FPS)["success"]
