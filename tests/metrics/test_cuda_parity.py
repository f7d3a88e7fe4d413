"""The Evaluator on CUDA gives the CPU's results (issue 11, point 14). Skipped without a CUDA device; run by
scripts/gpu_check.sh on a GPU machine.

Tolerances, written here once: the pixel metrics (PSNR, SSIM) are float64/float32 reductions of the same uint8
frames, equal to 1e-4 relative; networks run in float32 and CUDA convolutions may use TF32, so LPIPS is compared to
1e-3 relative and the set-level Fréchet distances (FID, FVD: a difference of large traces) to 1e-2 relative.
Random official-format weights are installed as a user would (``--unverified``): this checks devices, not accuracy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkbench import weights
from talkbench.metrics import random_weights
from talkbench.metrics.evaluate import Evaluator

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (run scripts/gpu_check.sh)")

RTOL = {"psnr": 1e-4, "ssim": 1e-4, "lpips": 1e-3, "fid": 1e-2, "fvd": 1e-2}


def clips(n_clips=2, n=16, size=256):
    from PIL import Image
    from skimage.data import astronaut

    img = astronaut()
    out = []
    for c in range(n_clips):
        frames = [np.asarray(Image.fromarray(img[8 * c + t:8 * c + t + 320, 100 + 2 * t:420 + 2 * t])
                             .resize((size, size), Image.BICUBIC)) for t in range(n)]
        out.append(np.stack(frames))
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    import os

    home = tmp_path_factory.mktemp("cuda-home")
    old = os.environ.get("TALKBENCH_HOME")
    os.environ["TALKBENCH_HOME"] = str(home)
    for name in ("alexnet", "lpips-alex", "fid-inception", "i3d"):
        src = random_weights.write_random(name, home / f"random-{weights.get_entry(name).filename}", 0)
        weights.install_file(name, src, unverified=True, source="random (random_weights)")
    yield home
    if old is None:
        os.environ.pop("TALKBENCH_HOME")
    else:
        os.environ["TALKBENCH_HOME"] = old


def score(device):
    torch.manual_seed(0)
    ev = Evaluator(metrics=list(RTOL), device=device)
    rows = []
    for i, pred in enumerate(clips()):
        gt = np.roll(pred, 3, axis=2)
        rows += ev.add_video(f"clip{i}", pred, gt)
    rows += ev.finalize()
    return {(r["clip_id"], r["metric"]): r["value"] for r in rows}


def test_evaluator_cuda_equals_cpu(installed):
    cpu, cuda = score("cpu"), score("cuda")
    assert cpu.keys() == cuda.keys()
    for key, value in cpu.items():
        assert value is not None and cuda[key] is not None, key
        assert cuda[key] == pytest.approx(value, rel=RTOL[key[1]], abs=1e-6), key
