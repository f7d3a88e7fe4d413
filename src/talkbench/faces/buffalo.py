"""insightface's ``buffalo_l`` model pack: its weights entry (a zip of ONNX files) and the extracted folder.

The pack holds SCRFD ``det_10g.onnx`` (boxes + five points), ArcFace ``w600k_r50.onnx`` (identity) and, in the full
pack, ``1k3d68.onnx`` (68 3-D landmarks). The check needs the detector and the recognition model with their
official shapes; the 3-D landmark model is checked where it is used (the insightface detection backend).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .. import weights
from ..errors import MissingWeightsError, WeightsError

BUFFALO_ENTRY = "buffalo_l"
BUFFALO_FILES = {"recognition": "w600k_r50.onnx", "detection": "det_10g.onnx"}
SCRFD_OUTPUTS = 9  # scores, boxes, keypoints at strides 8, 16, 32


def check_pack_dir(folder: Path) -> None:
    rec = folder / BUFFALO_FILES["recognition"]
    det = folder / BUFFALO_FILES["detection"]
    for f in (rec, det):
        if not f.is_file():
            raise WeightsError(f"weights {BUFFALO_ENTRY!r}: the pack has no {f.name}")
    (inp,), outs = weights.onnx_io(rec)
    if inp[1:] != (3, 112, 112) or len(outs) != 1 or outs[0][-1] != 512:
        raise WeightsError(f"weights {BUFFALO_ENTRY!r}: {rec.name} has input {inp} and outputs {outs}, "
                           "expected (N, 3, 112, 112) -> (N, 512)")
    _, det_outs = weights.onnx_io(det)
    if len(det_outs) != SCRFD_OUTPUTS:
        raise WeightsError(f"weights {BUFFALO_ENTRY!r}: {det.name} has {len(det_outs)} outputs, expected "
                           f"{SCRFD_OUTPUTS} (SCRFD scores/boxes/keypoints at strides 8, 16, 32)")


def check_pack(path: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check_pack_dir(weights.extract_pack(path, Path(tmp)))


def buffalo_dir() -> Path:
    """The extracted pack folder, or one clear error naming the install command (and the offline alternative)."""
    if not weights.is_installed(BUFFALO_ENTRY):
        raise MissingWeightsError(f"weights entry {BUFFALO_ENTRY!r} (insightface SCRFD, ArcFace, 3-D landmarks) is "
                                  f"not installed; install it with: talkbench weights fetch {BUFFALO_ENTRY} (or "
                                  f"talkbench weights import /path/to/buffalo_l.zip --as {BUFFALO_ENTRY})")
    return weights.pack_dir(BUFFALO_ENTRY)


weights.register(weights.WeightsEntry(
    name=BUFFALO_ENTRY, filename="buffalo_l.zip",
    urls=("https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",),
    hash_kind="unpinned", sha256="", size=None, size_exact=False,
    licence="insightface models: non-commercial research use only", container="zip-archive",
    description="insightface buffalo_l pack: ArcFace R50 (CSIM, AED, identity) and SCRFD 5-point detector",
    build=lambda path: weights.pack_dir(BUFFALO_ENTRY), check=check_pack))
