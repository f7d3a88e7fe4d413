"""Random-weight files in each entry's official format, for tests and benchmarks (no real weights offline).

Containers match the originals: legacy (non-zip) torch pickles for the torchvision / lpips / pytorch-fid / syncnet
files, TorchScript for clean-fid's Inception and StyleGAN-V's I3D, ONNX for ArcFace, SCRFD and DWPose, and a zip
of ONNX files for the buffalo_l pack. Values are random: these files exercise loaders and code paths, never accuracy.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import weights
from ..faces.buffalo import BUFFALO_FILES


def random_state_dict(name: str, seed: int = 0, compact: bool = False) -> dict[str, torch.Tensor]:
    """A state dict with the entry's keys and shapes and random values.

    ``compact`` stores each tensor as one random value expanded to the full shape (stride 0), so a 550 MB VGG file
    becomes a few KB on disk while keeping every key and shape; the loader sees the real shapes.
    """
    required, optional = weights.expected_state_dict(name)
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in required.items():
        if compact:
            out[key] = (torch.randn(1, generator=gen) * 0.01).expand(shape) if shape else torch.randn((), generator=gen)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            out[key] = torch.randn(shape, generator=gen) / max(fan_in, 1) ** 0.5
    return out


def write_state_dict(name: str, path: Path, seed: int = 0, compact: bool = False) -> Path:
    # The official files predate torch 1.6's zip format: write the legacy pickle container like them.
    torch.save(random_state_dict(name, seed, compact), path, _use_new_zipfile_serialization=False)
    return path


class _CleanFIDLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2048, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(torch.tanh(self.conv(F.avg_pool2d(x, 13))), 1)  # (N, 2048, 1, 1)


class _CleanFIDInception(nn.Module):
    """Same interface as clean-fid's TorchScript: a ``layers`` submodule giving (N, 2048, 1, 1) pool features."""

    def __init__(self):
        super().__init__()
        self.layers = _CleanFIDLayers()

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(x).flatten(1)


class _I3D(nn.Module):
    """Same interface as StyleGAN-V's i3d_torchscript.pt: forward(x, rescale, resize, return_features) -> (N, 400)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 16, (3, 7, 7), stride=(2, 4, 4))
        self.fc = nn.Linear(16, 400)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        if rescale:
            x = x / 127.5 - 1.0
        if resize:
            x = F.interpolate(x, size=(x.shape[2], 224, 224), mode="trilinear", align_corners=False)
        h = F.adaptive_avg_pool3d(torch.relu(self.conv(x)), 1).flatten(1)
        return self.fc(h)


# TorchScript stand-ins with the interface of each published file (the real networks are not written here).
TORCHSCRIPT_STAND_INS = {"clean-fid-inception": _CleanFIDInception, "i3d": _I3D}


def write_torchscript(name: str, path: Path, seed: int = 0) -> Path:
    if name not in TORCHSCRIPT_STAND_INS:
        raise ValueError(f"unknown TorchScript stand-in {name!r}; choose from {sorted(TORCHSCRIPT_STAND_INS)}")
    torch.manual_seed(seed)
    module = TORCHSCRIPT_STAND_INS[name]()
    torch.jit.save(torch.jit.script(module.eval()), str(path))
    return path


def _onnx_model(graph, opset: int = 13):
    import onnx

    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def arcface_onnx(seed: int = 0) -> bytes:
    """(N, 3, 112, 112) -> (N, 512): a random 8x8-pooled linear embedding, dynamic batch like w600k_r50."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(0, 0.1, (3 * 14 * 14, 512)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 3 * 14 * 14], np.int64), "shape")
    nodes = [helper.make_node("AveragePool", ["input.1"], ["p"], kernel_shape=[8, 8], strides=[8, 8]),
             helper.make_node("Reshape", ["p", "shape"], ["f"]),
             helper.make_node("MatMul", ["f", "w"], ["683"])]
    graph = helper.make_graph(nodes, "arcface_random",
                              [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
                              [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", 512])], [w, shape])
    return _onnx_model(graph)


def scrfd_onnx() -> bytes:
    """SCRFD's 9 outputs (scores, boxes, keypoints at strides 8/16/32, 2 anchors) for a 640x640 input; all-zero scores."""
    from onnx import TensorProto, helper, numpy_helper

    outputs, inits, nodes = [], [], []
    for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
        for stride in (8, 16, 32):
            n = (640 // stride) ** 2 * 2
            name = f"{kind}_{stride}"
            inits.append(numpy_helper.from_array(np.zeros((n, width), np.float32), f"c_{name}"))
            nodes.append(helper.make_node("Identity", [f"c_{name}"], [name]))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, width]))
    graph = helper.make_graph(nodes, "scrfd_random",
                              [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 640, 640])], outputs, inits)
    return _onnx_model(graph)


def dwpose_onnx(seed: int = 0) -> bytes:
    """(1, 3, 384, 288) -> simcc_x (1, 133, 576), simcc_y (1, 133, 768) from the pooled colour (random linear)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.random((3, 133 * 576)).astype(np.float32), "wx"),
             numpy_helper.from_array(rng.random((3, 133 * 768)).astype(np.float32), "wy"),
             numpy_helper.from_array(np.array([1, 3], np.int64), "s2"),
             numpy_helper.from_array(np.array([1, 133, 576], np.int64), "sx"),
             numpy_helper.from_array(np.array([1, 133, 768], np.int64), "sy")]
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["g"]),
             helper.make_node("Reshape", ["g", "s2"], ["f"]),
             helper.make_node("Sigmoid", ["f"], ["fs"]),
             helper.make_node("MatMul", ["fs", "wx"], ["ax"]), helper.make_node("Reshape", ["ax", "sx"], ["simcc_x"]),
             helper.make_node("MatMul", ["fs", "wy"], ["ay"]), helper.make_node("Reshape", ["ay", "sy"], ["simcc_y"])]
    graph = helper.make_graph(nodes, "dwpose_random",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 384, 288])],
                              [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [1, 133, 576]),
                               helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [1, 133, 768])], inits)
    return _onnx_model(graph)


def write_buffalo_zip(path: Path, seed: int = 0) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(f"buffalo_l/{BUFFALO_FILES['recognition']}", arcface_onnx(seed))
        zf.writestr(f"buffalo_l/{BUFFALO_FILES['detection']}", scrfd_onnx())
    path.write_bytes(buffer.getvalue())
    return path


# ONNX files and model packs: a random stand-in per entry, with the official input/output shapes.
ONNX_STAND_INS = {"dwpose": lambda path, seed: path.write_bytes(dwpose_onnx(seed)), "buffalo_l": write_buffalo_zip}
COMPACT_ABOVE = 50_000_000  # parameters: the ImageNet backbones (61 M and more) are written compact by default


def write_random(name: str, path: Path, seed: int = 0, compact: bool | None = None) -> Path:
    """Write a random-weight file for any registry entry in its official container."""
    entry = weights.get_entry(name)
    path = Path(path)
    if entry.container in ("legacy-pickle", "zip-pickle"):
        if compact is None:
            required, _ = weights.expected_state_dict(name)
            compact = sum(int(np.prod(s)) for s in required.values()) > COMPACT_ABOVE
        return write_state_dict(name, path, seed, compact=compact)
    if entry.container == "torchscript":
        return write_torchscript(name, path, seed)
    if name not in ONNX_STAND_INS:
        raise ValueError(f"unknown ONNX stand-in {name!r}; choose from {sorted(ONNX_STAND_INS)}")
    ONNX_STAND_INS[name](path, seed)
    return path


def install_random(names=None, seed: int = 0) -> None:
    """Install random files for entries (as --unverified where the entry pins a hash), e.g. for benchmarks."""
    import tempfile

    for name in names or weights.entry_names():
        with tempfile.TemporaryDirectory() as tmp:
            path = write_random(name, Path(tmp) / weights.get_entry(name).filename, seed)
            weights.install_file(name, path, unverified=True, source="random (random_weights)")
