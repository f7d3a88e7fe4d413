"""Candidate filters (the AniTalker data rules), each a ``Filter`` with one reason string.

Every drop records the measured value and the threshold it failed, so ``rejections.parquet`` says by how much.
``make_filters`` returns them cheapest-first; the first failing rule is the recorded reason.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..runtime import Filter

CROP_POLICIES = ("pad", "inside")


class CandidateFilter(Filter):
    """A filter over candidate rows (one face track in one shot), identified by ``candidate_id``."""

    id_key = "candidate_id"


class MinDuration(CandidateFilter):
    reason = "too_short"

    def __init__(self, min_duration: float):
        self.min_duration = float(min_duration)

    def filter(self, row):
        seconds = float(row["end_s"]) - float(row["start_s"])
        return True if seconds >= self.min_duration else (False, self.reason, seconds, self.min_duration)


class MinFaceSize(CandidateFilter):
    """The median track box side (source pixels) must reach the floor: AniTalker keeps faces ≥ 256 px."""

    reason = "face_too_small"

    def __init__(self, min_face_size: float):
        self.min_face_size = float(min_face_size)

    def filter(self, row):
        size = float(row["face_size_median"])
        return True if size >= self.min_face_size else (False, self.reason, size, self.min_face_size)


class MaxPose(CandidateFilter):
    """|yaw|, |pitch| and |roll| must stay below their limits over every sample of the clip.

    The recorded value is the largest |angle| that broke its limit; the threshold is that angle's limit.
    """

    reason = "pose_too_large"

    def __init__(self, max_yaw: float, max_pitch: float, max_roll: float):
        self.limits = {"yaw": float(max_yaw), "pitch": float(max_pitch), "roll": float(max_roll)}

    def filter(self, row):
        worst = None
        for angle, limit in self.limits.items():
            value = float(row[f"{angle}_max"])
            if value >= limit and (worst is None or value - limit > worst[0] - worst[1]):
                worst = (value, limit)
        return True if worst is None else (False, self.reason, worst[0], worst[1])


class SingleDominantFace(CandidateFilter):
    """Reject when another face in the same frames is larger than ``ratio`` × the tracked face."""

    reason = "multiple_faces"

    def __init__(self, ratio: float):
        self.ratio = float(ratio)

    def filter(self, row):
        value = float(row["second_face_ratio"])
        return True if value <= self.ratio else (False, self.reason, value, self.ratio)


class CropInsideFrame(CandidateFilter):
    """Policy ``inside`` rejects crops that leave the frame; ``pad`` keeps them (export pads, ``crop_padded``)."""

    reason = "crop_outside_frame"

    def __init__(self, policy: str):
        if policy not in CROP_POLICIES:
            raise ConfigError(f"unknown crop policy {policy!r}; choose from {sorted(CROP_POLICIES)}")
        self.policy = policy

    def filter(self, row):
        if self.policy == "pad" or not row["crop_padded"]:
            return True
        x0, y0, side = int(row["crop_x0"]), int(row["crop_y0"]), int(row["crop_size"])
        w, h = int(row["frame_width"]), int(row["frame_height"])
        outside = max(0, -x0, -y0, x0 + side - w, y0 + side - h)  # pixels beyond the worst edge
        return False, self.reason, float(outside), 0.0


class AudioPresent(CandidateFilter):
    reason = "no_audio"

    def filter(self, row):
        return True if row.get("has_audio") else (False, self.reason, 0.0, 1.0)


class MinSharpness(CandidateFilter):
    """Variance of the Laplacian of the face box (resized to 128 px), median over the samples."""

    reason = "too_blurry"

    def __init__(self, min_sharpness: float):
        self.min_sharpness = float(min_sharpness)

    def filter(self, row):
        value = row.get("sharpness")
        if value is None:
            return False, self.reason, None, self.min_sharpness
        return True if value >= self.min_sharpness else (False, self.reason, float(value), self.min_sharpness)


def make_filters(config) -> list[Filter]:
    """The configured filters, in the order they run: duration, size, pose, dominant face, crop, audio, sharpness."""
    f = config.filters
    filters: list[Filter] = [
        MinDuration(f.min_duration),
        MinFaceSize(f.min_face_size),
        MaxPose(f.max_yaw, f.max_pitch, f.max_roll),
        SingleDominantFace(f.second_face_ratio),
        CropInsideFrame(f.crop_policy),
    ]
    if f.require_audio:
        filters.append(AudioPresent())
    if f.min_sharpness is not None:
        filters.append(MinSharpness(f.min_sharpness))
    return filters
