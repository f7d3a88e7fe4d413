"""Readers and structure checks for the containers pretrained files come in, shared by every owner's ``check``.

- state dicts (legacy or zip torch pickles): ``torch.load(weights_only=True)``, keys and shapes compared with the
  owner's ``layout`` module built on the meta device;
- TorchScript: ``torch.jit.load``;
- ONNX: input/output shapes read with ``onnx`` (no session needed), sessions through onnxruntime;
- zip archives of ONNX files (model packs): extracted flat.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any, Callable

from ..errors import WeightsError, require
from .registry import WeightsEntry, get_entry


# ----------------------------------------------------------------------------- state dicts


def torch_load(path: Path) -> Any:
    import torch

    try:
        # The official files are pickles saved on CUDA (the lpips heads, for one): map them to the CPU.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a wrong file
        raise WeightsError(f"{path}: not a torch state dict that loads with weights_only=True ({_why(exc)})") from exc


def _why(exc: Exception) -> str:
    """torch's unpickling errors are paragraphs of advice (to load with weights_only=False); keep the cause."""
    text = " ".join(str(exc).split())
    found = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
    return f"{type(exc).__name__}: {(found.group(1) if found else text)[:80]}"


@functools.lru_cache(maxsize=None)
def _layout_shapes(layout: Callable[[], Any]) -> dict[str, tuple[int, ...]]:
    import torch

    with torch.device("meta"):  # shapes only: no memory, no random init
        module = layout()
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def expected_state_dict(name: str) -> tuple[dict[str, tuple[int, ...]], set[str]]:
    """(required key -> shape, optional keys) of a state-dict entry, from its owner's layout module."""
    entry = get_entry(name)
    if entry.layout is None:
        raise ValueError(f"weights {name!r} is a {entry.container} entry, not a state dict")
    shapes = _layout_shapes(entry.layout)
    # Files older than torch 0.4.1 have no BatchNorm num_batches_tracked buffers; both forms are official.
    optional = {k for k in shapes if k.endswith("num_batches_tracked")}
    return {k: s for k, s in shapes.items() if k not in optional}, optional


def check_state_dict(name: str, state: object) -> None:
    """Refuse a state dict whose keys or shapes differ from the entry's layout, naming the first mismatch."""
    if not isinstance(state, dict):
        raise WeightsError(f"weights {name!r}: expected a state dict, found {type(state).__name__}")
    required, optional = expected_state_dict(name)
    missing = sorted(set(required) - set(state))
    if missing:
        raise WeightsError(f"weights {name!r}: missing key {missing[0]!r} ({len(missing)} missing in all)")
    unexpected = sorted(set(state) - set(required) - optional)
    if unexpected:
        raise WeightsError(f"weights {name!r}: unexpected key {unexpected[0]!r} ({len(unexpected)} unexpected in all)")
    for key, shape in required.items():
        found = tuple(state[key].shape)
        if found != shape:
            raise WeightsError(f"weights {name!r}: key {key!r} has shape {found}, expected {shape}")


def state_dict_entry(layout: Callable[[], Any], container: str = "legacy-pickle", **data) -> WeightsEntry:
    """An entry whose file is a state dict of ``layout()``: check = keys/shapes, build = the loaded module (eval)."""
    name = data["name"]

    def check(path: Path) -> None:
        check_state_dict(name, torch_load(path))

    def build(path: Path):
        state = torch_load(path)
        check_state_dict(name, state)
        module = layout()
        module.load_state_dict(state, strict=False)  # strict apart from the optional num_batches_tracked
        return module.eval()

    return WeightsEntry(layout=layout, container=container, check=check, build=build, **data)


# ----------------------------------------------------------------------------- TorchScript


def load_torchscript_file(path: Path):
    import torch

    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"{path}: not a loadable TorchScript module ({type(exc).__name__}: {exc})") from exc


# ----------------------------------------------------------------------------- ONNX


def onnx_io(path: Path) -> tuple[list[tuple], list[tuple]]:
    """(input shapes, output shapes) of an ONNX model, dynamic dimensions as None; initialisers are not inputs."""
    onnx = require("onnx", "pip install onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"{path}: not a readable ONNX model ({exc})") from exc

    def dims(values):
        out = []
        for v in values:
            shape = v.type.tensor_type.shape
            out.append(tuple(d.dim_value if d.HasField("dim_value") else None for d in shape.dim))
        return out

    inits = {i.name for i in model.graph.initializer}
    return dims([i for i in model.graph.input if i.name not in inits]), dims(model.graph.output)


def onnx_session(path: Path):
    ort = require("onnxruntime", "pip install onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# ----------------------------------------------------------------------------- zip archives (model packs)


def extract_pack(zip_path: Path, dest: Path) -> Path:
    """Extract the ONNX files of a model-pack zip (flat, or in one folder) into dest; returns dest."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                base = os.path.basename(info.filename)
                if base.endswith(".onnx"):
                    with zf.open(info) as src, open(dest / base, "wb") as out:
                        shutil.copyfileobj(src, out)
    except zipfile.BadZipFile as exc:
        raise WeightsError(f"{zip_path}: not a zip archive ({exc})") from exc
    return dest
