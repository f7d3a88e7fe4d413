"""Motion agreement with the driver (cross-reenactment's ``akd_driver``).

Raw keypoint distance between a generated video and a driver of *another identity* mostly measures how their face
shapes differ. So each video's Face Mesh keypoints are normalised first: the displacement of every keypoint from
the video's first frame with a face, divided by the video's median inter-ocular distance. ``akd_driver`` is the
mean L2 distance between the generated and driver displacements (unit: inter-ocular distances; lower = the motion
follows the driver more closely). A static video scores the driver's own mean motion magnitude.
"""

from __future__ import annotations

import numpy as np

NORMALISATION = "displacement from the first face frame / median inter-ocular distance (MediaPipe Face Mesh 468)"


def normalised_displacements(mesh: np.ndarray) -> np.ndarray:
    """(T, 468, 3) landmarks (NaN rows: no face) -> (T, 468, 2) normalised displacements (NaN rows kept)."""
    from ..faces.points import five_points_from_mesh

    pts = mesh[..., :2]
    valid = ~np.isnan(pts[:, 0, 0])
    if not valid.any():
        return np.full(pts.shape, np.nan)
    five = five_points_from_mesh(mesh)
    scale = float(np.nanmedian(np.linalg.norm(five[:, 0] - five[:, 1], axis=-1)))
    ref = pts[int(np.argmax(valid))]
    return (pts - ref) / max(scale, 1e-6)


def motion_agreement(pred: np.ndarray, driver: np.ndarray) -> dict:
    """A result row (metric ``akd_driver``) for uint8 videos (T, H, W, 3) of equal length."""
    import json

    from ..faces.detect import mesh_landmarks

    n = min(len(pred), len(driver))
    dp = normalised_displacements(mesh_landmarks(pred[:n]))
    dd = normalised_displacements(mesh_landmarks(driver[:n]))
    both = ~np.isnan(dp[:, 0, 0]) & ~np.isnan(dd[:, 0, 0])
    extra = json.dumps({"normalisation": NORMALISATION, "compared_with": "driver",
                        "face_frames": int(both.sum()), "frames": int(n)}, sort_keys=True)
    if not both.any():
        return {"metric": "akd_driver", "value": None, "null_reason": "no face found in generated and driver frames",
                "n": 0, "flags": None, "weights": json.dumps({}), "extra": extra}
    value = float(np.linalg.norm(dp[both] - dd[both], axis=-1).mean())
    return {"metric": "akd_driver", "value": value, "null_reason": None, "n": int(both.sum()), "flags": None,
            "weights": json.dumps({}), "extra": extra}
