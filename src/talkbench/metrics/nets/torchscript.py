"""The two feature networks used as published TorchScript files (not written here): their entries and checks.

- clean-fid's Inception-v3 (StyleGAN2-ADA's ``inception-2015-12-05.pt``): clean-fid reads pool features through
  the module's ``layers`` submodule, so a file without it is the wrong network.
- StyleGAN-V's FVD I3D (``i3d_torchscript.pt``): called as ``forward(x, rescale, resize, return_features)``.
"""

from __future__ import annotations

from pathlib import Path

from ... import weights
from ...errors import WeightsError


def check_clean_fid(path: Path) -> None:
    if not hasattr(weights.load_torchscript_file(path), "layers"):
        raise WeightsError("weights 'clean-fid-inception': TorchScript module has no 'layers' submodule "
                           "(clean-fid format)")


I3D_ARGUMENTS = ("rescale", "resize", "return_features")


def check_i3d(path: Path) -> None:
    args = [a.name for a in weights.load_torchscript_file(path).forward.schema.arguments]
    for needed in I3D_ARGUMENTS:
        if needed not in args:
            raise WeightsError(f"weights 'i3d': forward() has arguments {args[1:]}, missing {needed!r}")


weights.register(weights.WeightsEntry(
    name="clean-fid-inception", filename="inception-2015-12-05.pt",
    urls=("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",),
    hash_kind="unpinned", sha256="", size=None, size_exact=False,
    licence="NVIDIA Source Code License (StyleGAN2-ADA); TF Inception weights", container="torchscript",
    description="clean-fid / StyleGAN2-ADA TorchScript Inception-v3",
    build=weights.load_torchscript_file, check=check_clean_fid))
weights.register(weights.WeightsEntry(
    name="i3d", filename="i3d_torchscript.pt",
    urls=("https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",),
    hash_kind="unpinned", sha256="", size=None, size_exact=False,
    licence="Apache-2.0 (google-research FVD I3D, TorchScript port by StyleGAN-V)", container="torchscript",
    description="StyleGAN-V FVD I3D (Kinetics-400), 400-d logits",
    build=weights.load_torchscript_file, check=check_i3d))
