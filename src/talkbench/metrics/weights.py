"""Weights registry: every pretrained network a metric uses is a named, checksummed entry.

Files live in ``$TALKBENCH_HOME/weights`` (default ``~/.cache/talkbench/weights``) beside ``installed.json``, which
records for each entry the file's SHA-256, where it came from, and whether that hash is the official one.

Hash policy (``WeightsEntry.hash_kind``):
- ``sha256``: the full official SHA-256 is known; any other file is refused (unless imported ``--unverified``).
- ``prefix``: only a published prefix is known (torch.hub's ``name-<first 8 hex of sha256>.pth`` convention);
  the file's SHA-256 must start with it.
- ``unpinned``: no hash is published; the file is accepted on its structure (keys/shapes, TorchScript methods,
  ONNX shapes) and its SHA-256 is recorded, so every result row still says exactly which file made it.
Every install checks structure too, so an ``--unverified`` file is only accepted if it fits the architecture.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import MissingWeightsError, WeightsError

CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightsEntry:
    name: str
    filename: str
    urls: tuple[str, ...]
    hash_kind: str  # "sha256" | "prefix" | "unpinned" (see module docstring)
    sha256: str  # full hash, the published prefix, or "" when unpinned
    size: int | None  # bytes; informational (measured where marked exact, else the published figure)
    size_exact: bool
    licence: str
    container: str  # "legacy-pickle" | "zip-pickle" | "torchscript" | "onnx" | "zip-archive"
    loader: str  # the function that builds the model from the file
    description: str
    local_sources: tuple[str, ...] = field(default=())  # "package:relative/path" installable offline

    @property
    def install_hint(self) -> str:
        return f"talkbench weights fetch {self.name}  (or: talkbench weights import PATH --as {self.name})"

    def hash_matches(self, digest: str) -> bool | None:
        """True/False against the official hash; None when the entry publishes no hash."""
        if self.hash_kind == "sha256":
            return digest == self.sha256
        if self.hash_kind == "prefix":
            return digest.startswith(self.sha256)
        return None


def _e(**kw) -> WeightsEntry:
    return WeightsEntry(**kw)


REGISTRY: dict[str, WeightsEntry] = {
    e.name: e
    for e in (
        _e(name="alexnet", filename="alexnet-owt-7be5be79.pth",
           urls=("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",),
           hash_kind="prefix", sha256="7be5be79", size=244_408_911, size_exact=False,
           licence="BSD-3-Clause (torchvision); ImageNet-trained", container="legacy-pickle",
           loader="talkbench.metrics.nets.backbones.AlexNet (load_state_dict)",
           description="torchvision AlexNet ImageNet weights: LPIPS-alex backbone"),
        _e(name="vgg16", filename="vgg16-397923af.pth",
           urls=("https://download.pytorch.org/models/vgg16-397923af.pth",),
           hash_kind="prefix", sha256="397923af", size=553_433_881, size_exact=False,
           licence="BSD-3-Clause (torchvision); ImageNet-trained (CC BY 4.0 VGG weights)", container="legacy-pickle",
           loader="talkbench.metrics.nets.backbones.VGG('vgg16')",
           description="torchvision VGG16 ImageNet weights: LPIPS-vgg backbone"),
        _e(name="vgg19", filename="vgg19-dcbb9e9d.pth",
           urls=("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",),
           hash_kind="prefix", sha256="dcbb9e9d", size=574_673_361, size_exact=False,
           licence="BSD-3-Clause (torchvision); ImageNet-trained (CC BY 4.0 VGG weights)", container="legacy-pickle",
           loader="talkbench.metrics.nets.backbones.VGG('vgg19')",
           description="torchvision VGG19 ImageNet weights: perceptual losses of the reference models"),
        _e(name="lpips-alex", filename="lpips-v0.1-alex.pth",
           urls=("https://github.com/richzhang/PerceptualSimilarity/raw/v0.1/lpips/weights/v0.1/alex.pth",),
           hash_kind="sha256", sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
           size=6009, size_exact=True, licence="BSD-2-Clause (lpips)", container="legacy-pickle",
           loader="talkbench.metrics.lpips.LPIPSNet('alex')",
           description="LPIPS v0.1 linear heads for AlexNet (lin0..lin4)",
           local_sources=("torchmetrics:functional/image/lpips_models/alex.pth",)),
        _e(name="lpips-vgg", filename="lpips-v0.1-vgg.pth",
           urls=("https://github.com/richzhang/PerceptualSimilarity/raw/v0.1/lpips/weights/v0.1/vgg.pth",),
           hash_kind="sha256", sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
           size=7289, size_exact=True, licence="BSD-2-Clause (lpips)", container="legacy-pickle",
           loader="talkbench.metrics.lpips.LPIPSNet('vgg')",
           description="LPIPS v0.1 linear heads for VGG16 (lin0..lin4)",
           local_sources=("torchmetrics:functional/image/lpips_models/vgg.pth",)),
        _e(name="fid-inception", filename="pt_inception-2015-12-05-6726825d.pth",
           urls=("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",),
           hash_kind="prefix", sha256="6726825d", size=95_628_359, size_exact=False,
           licence="Apache-2.0 (pytorch-fid; TF Inception weights)", container="legacy-pickle",
           loader="talkbench.metrics.nets.inception.FIDInceptionV3",
           description="pytorch-fid Inception-v3 (TF 2015-12-05 graph), pool3 2048-d"),
        _e(name="clean-fid-inception", filename="inception-2015-12-05.pt",
           urls=("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",),
           hash_kind="unpinned", sha256="", size=None, size_exact=False,
           licence="NVIDIA Source Code License (StyleGAN2-ADA); TF Inception weights", container="torchscript",
           loader="torch.jit.load -> .layers (clean-fid)",
           description="clean-fid / StyleGAN2-ADA TorchScript Inception-v3"),
        _e(name="i3d", filename="i3d_torchscript.pt",
           urls=("https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",),
           hash_kind="unpinned", sha256="", size=None, size_exact=False,
           licence="Apache-2.0 (google-research FVD I3D, TorchScript port by StyleGAN-V)", container="torchscript",
           loader="torch.jit.load (forward(x, rescale, resize, return_features))",
           description="StyleGAN-V FVD I3D (Kinetics-400), 400-d logits"),
        _e(name="syncnet", filename="syncnet_v2.model",
           urls=("http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",),
           hash_kind="unpinned", sha256="", size=None, size_exact=False,
           licence="MIT (syncnet_python)", container="legacy-pickle",
           loader="talkbench.metrics.nets.syncnet.SyncNet",
           description="SyncNet v2 (Chung & Zisserman), LSE-C/LSE-D"),
        _e(name="buffalo_l", filename="buffalo_l.zip",
           urls=("https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",),
           hash_kind="unpinned", sha256="", size=None, size_exact=False,
           licence="insightface models: non-commercial research use only", container="zip-archive",
           loader="onnxruntime: w600k_r50.onnx (ArcFace), det_10g.onnx (SCRFD)",
           description="insightface buffalo_l pack: ArcFace R50 (CSIM, AED) and SCRFD 5-point detector"),
        _e(name="dwpose", filename="dw-ll_ucoco_384.onnx",
           urls=("https://huggingface.co/yzd-v/DWPose/resolve/main/dw-ll_ucoco_384.onnx",),
           hash_kind="unpinned", sha256="", size=None, size_exact=False,
           licence="Apache-2.0 (DWPose)", container="onnx",
           loader="onnxruntime: RTMPose-l whole-body 133 keypoints, SimCC outputs",
           description="DWPose whole-body pose (HKC, paper-compatible detector)"),
    )
}


def get_entry(name: str) -> WeightsEntry:
    if name not in REGISTRY:
        raise ValueError(f"unknown weights entry {name!r}; choose from {sorted(REGISTRY)}")
    return REGISTRY[name]


# ----------------------------------------------------------------------------- locations and records


def weights_home() -> Path:
    base = os.environ.get("TALKBENCH_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "talkbench")
    return Path(base) / "weights"


def _records_path() -> Path:
    return weights_home() / "installed.json"


def _records() -> dict:
    path = _records_path()
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def _write_records(records: dict) -> None:
    path = _records_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(records, indent=2, sort_keys=True))
    os.replace(tmp, path)


def is_installed(name: str) -> bool:
    return (weights_home() / get_entry(name).filename).is_file()


def weights_path(name: str) -> Path:
    """The installed file of an entry, or MissingWeightsError naming the install command."""
    entry = get_entry(name)
    path = weights_home() / entry.filename
    if not path.is_file():
        raise MissingWeightsError(f"weights {name!r} ({entry.filename}) are not installed in {weights_home()}; "
                                  f"install with: {entry.install_hint}")
    return path


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def installed_sha256(name: str) -> str | None:
    if not is_installed(name):
        return None
    record = _records().get(name)
    if record and record.get("sha256"):
        return record["sha256"]
    return sha256_file(weights_path(name))


def installed_record(name: str) -> dict | None:
    """{sha256, official (True/False/None), source} of an installed entry, or None."""
    if not is_installed(name):
        return None
    record = dict(_records().get(name) or {})
    if "sha256" not in record:
        digest = sha256_file(weights_path(name))
        record = {"sha256": digest, "official": get_entry(name).hash_matches(digest), "source": "unrecorded"}
    return record


def is_standard(name: str) -> bool:
    """False when the installed file's hash is known not to be the official one (an --unverified import)."""
    record = installed_record(name)
    return record is None or record.get("official") is not False


# ----------------------------------------------------------------------------- structure checks


@functools.lru_cache(maxsize=None)
def _module_shapes(name: str) -> dict[str, tuple[int, ...]]:
    import torch

    from .nets import backbones, inception, syncnet

    builders = {"fid-inception": inception.FIDInceptionV3, "syncnet": syncnet.SyncNet,
                **{n: (lambda n=n: backbones.build_backbone(n)) for n in ("alexnet", "vgg16", "vgg19")}}
    if name not in builders:
        raise ValueError(f"{name!r} is not a state-dict entry")
    with torch.device("meta"):  # shapes only: no memory, no random init
        module = builders[name]()
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def expected_state_dict(name: str) -> tuple[dict[str, tuple[int, ...]], set[str]]:
    """(required key -> shape, optional keys) of a state-dict entry, from the architecture written here."""
    if name in ("lpips-alex", "lpips-vgg"):
        from .lpips import LPIPS_CHANNELS

        chans = LPIPS_CHANNELS[name.split("-")[1]]
        return {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate(chans)}, set()
    shapes = _module_shapes(name)
    # Files older than torch 0.4.1 have no BatchNorm num_batches_tracked buffers; both forms are official.
    optional = {k for k in shapes if k.endswith("num_batches_tracked")}
    return {k: s for k, s in shapes.items() if k not in optional}, optional


def check_state_dict(name: str, state: object) -> None:
    """Refuse a state dict whose keys or shapes differ from the entry's architecture, naming the first mismatch."""
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


def _torch_load(path: Path):
    import torch

    try:
        # The official files are pickles saved on CUDA (the lpips heads, for one): map them to the CPU.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a wrong file
        raise WeightsError(f"{path}: not a loadable torch state dict ({type(exc).__name__}: {exc})") from exc


def _onnx_io(path: Path) -> tuple[list[tuple], list[tuple]]:
    import onnx

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


BUFFALO_FILES = {"recognition": "w600k_r50.onnx", "detection": "det_10g.onnx"}


def _check_buffalo_dir(folder: Path) -> None:
    rec = folder / BUFFALO_FILES["recognition"]
    det = folder / BUFFALO_FILES["detection"]
    for f in (rec, det):
        if not f.is_file():
            raise WeightsError(f"weights 'buffalo_l': the pack has no {f.name}")
    (inp,), outs = _onnx_io(rec)
    if inp[1:] != (3, 112, 112) or len(outs) != 1 or outs[0][-1] != 512:
        raise WeightsError(f"weights 'buffalo_l': {rec.name} has input {inp} and outputs {outs}, "
                           "expected (N, 3, 112, 112) -> (N, 512)")
    _, det_outs = _onnx_io(det)
    if len(det_outs) != 9:
        raise WeightsError(f"weights 'buffalo_l': {det.name} has {len(det_outs)} outputs, expected 9 "
                           "(SCRFD scores/boxes/keypoints at strides 8, 16, 32)")


def check_file(name: str, path: Path) -> None:
    """Check an entry's file fits the architecture (keys/shapes, TorchScript methods, ONNX shapes)."""
    entry = get_entry(name)
    if entry.container in ("legacy-pickle", "zip-pickle"):
        check_state_dict(name, _torch_load(path))
    elif entry.container == "torchscript":
        module = load_torchscript_file(path)
        if name == "clean-fid-inception" and not hasattr(module, "layers"):
            raise WeightsError(f"weights {name!r}: TorchScript module has no 'layers' submodule (clean-fid format)")
        if name == "i3d":
            args = [a.name for a in module.forward.schema.arguments]
            for needed in ("rescale", "resize", "return_features"):
                if needed not in args:
                    raise WeightsError(f"weights {name!r}: forward() has arguments {args[1:]}, missing {needed!r}")
    elif entry.container == "onnx":
        (inp,), outs = _onnx_io(path)
        if name == "dwpose" and (inp[1:] != (3, 384, 288) or [o[1:] for o in outs] != [(133, 576), (133, 768)]):
            raise WeightsError(f"weights 'dwpose': input {inp} outputs {outs}, expected (1, 3, 384, 288) -> "
                               "simcc_x (1, 133, 576), simcc_y (1, 133, 768)")
    elif entry.container == "zip-archive":
        with tempfile.TemporaryDirectory() as tmp:
            _check_buffalo_dir(_extract_pack(path, Path(tmp)))


def _extract_pack(zip_path: Path, dest: Path) -> Path:
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


def pack_dir(name: str = "buffalo_l") -> Path:
    """The extracted folder of a zip-archive entry (extracted at install time)."""
    weights_path(name)
    folder = weights_home() / name
    if not folder.is_dir():
        folder.mkdir(parents=True)
        _extract_pack(weights_path(name), folder)
    return folder


# ----------------------------------------------------------------------------- loaders


def load_state_dict(name: str) -> dict:
    """The installed state dict of an entry (keys and shapes verified), tensors on the CPU."""
    path = weights_path(name)
    state = _torch_load(path)
    check_state_dict(name, state)
    return state


def load_torchscript_file(path: Path):
    import torch

    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"{path}: not a loadable TorchScript module ({type(exc).__name__}: {exc})") from exc


def load_torchscript(name: str):
    return load_torchscript_file(weights_path(name))


def onnx_session(path: Path):
    from ..errors import require

    ort = require("onnxruntime", "pip install onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# ----------------------------------------------------------------------------- install / fetch / verify


def install_file(name: str, src: str | os.PathLike, *, unverified: bool = False, source: str = "import") -> dict:
    """Check and copy a file into the weights home; returns its record.

    A hash that differs from the official one is refused unless ``unverified``; structure is always checked.
    A file installed ``unverified`` is recorded as not official (so results made with it are non-standard), also
    for entries that publish no hash.
    """
    entry = get_entry(name)
    src = Path(src)
    if not src.is_file():
        raise WeightsError(f"{src}: no such file to install as {name!r}")
    digest = sha256_file(src)
    official = entry.hash_matches(digest)
    if official is False and not unverified:
        raise WeightsError(f"weights {name!r}: sha256 {digest} does not match the official "
                           f"{'prefix' if entry.hash_kind == 'prefix' else 'hash'} {entry.sha256}; refusing "
                           f"(use 'talkbench weights import PATH --as {name} --unverified' for a non-standard file)")
    if unverified and official is not True:
        # The user says this is not the official file (a re-trained SyncNet, say). Entries that publish no hash
        # cannot tell by themselves, so the declaration decides: results made with it are non-standard.
        official = False
    check_file(name, src)
    home = weights_home()
    home.mkdir(parents=True, exist_ok=True)
    dest = home / entry.filename
    fd, tmp = tempfile.mkstemp(dir=home, prefix=f".{entry.filename}.", suffix=".tmp")
    os.close(fd)
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    if entry.container == "zip-archive":
        folder = home / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        _extract_pack(dest, folder)
    record = {"sha256": digest, "official": official, "source": source, "size": dest.stat().st_size,
              "hash_kind": entry.hash_kind}
    records = _records()
    records[name] = record
    _write_records(records)
    return record


def _local_source(spec: str) -> Path | None:
    package, rel = spec.split(":", 1)
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(list(found.submodule_search_locations)[0]) / rel
    return path if path.is_file() else None


def download(url: str, dest: Path, *, timeout: float = 60.0, progress: Callable[[int, int | None], None] | None = None) -> Path:
    """HTTP(S) download to dest, resuming from ``dest.part`` with a Range request when a partial file exists."""
    part = dest.with_name(dest.name + ".part")
    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "talkbench"})
    if done:
        request.add_header("Range", f"bytes={done}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and done:  # the partial file is already complete
            os.replace(part, dest)
            return dest
        raise WeightsError(f"download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise WeightsError(f"download {url}: {exc}") from exc
    with response:
        resumed = response.status == 206
        if done and not resumed:
            done = 0  # the server ignored the Range header: start again
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None else None
        with open(part, "ab" if resumed else "wb") as out:
            while block := response.read(CHUNK):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    if total is not None and done != total:
        raise WeightsError(f"download {url}: got {done} of {total} bytes; run fetch again to resume")
    os.replace(part, dest)
    return dest


def fetch(name: str, *, url: str | None = None, progress=None) -> dict:
    """Install an entry: from an offline local source when one exists, else download (resumable) and check."""
    entry = get_entry(name)
    if url is None:
        for spec in entry.local_sources:
            path = _local_source(spec)
            if path is not None and entry.hash_matches(sha256_file(path)) is not False:
                return install_file(name, path, source=f"local:{spec}")
    urls = (url,) if url else entry.urls
    home = weights_home()
    home.mkdir(parents=True, exist_ok=True)
    staging = home / f".download-{entry.filename}"
    errors = []
    for candidate in urls:
        try:
            download(candidate, staging, progress=progress)
        except WeightsError as exc:
            errors.append(str(exc))
            continue
        try:
            return install_file(name, staging, source=candidate)
        finally:
            staging.unlink(missing_ok=True)
    raise WeightsError(f"weights {name!r}: every source failed: {'; '.join(errors)}")


def verify(names: list[str] | None = None) -> list[dict]:
    """Re-hash installed files; each result says ok / mismatch against the record and the official hash."""
    results = []
    records = _records()
    for name in names or sorted(REGISTRY):
        entry = get_entry(name)
        if not is_installed(name):
            results.append({"name": name, "status": "missing", "detail": entry.install_hint})
            continue
        digest = sha256_file(weights_path(name))
        recorded = (records.get(name) or {}).get("sha256")
        official = entry.hash_matches(digest)
        if recorded and recorded != digest:
            status, detail = "changed", f"file hash {digest[:16]} != recorded {recorded[:16]}"
        elif official is False:
            status, detail = "unverified", f"sha256 {digest[:16]} is not the official {entry.sha256[:16]}"
        else:
            try:
                check_file(name, weights_path(name))
                status = "ok" if official else "ok-unpinned"
                detail = digest[:16]
            except WeightsError as exc:
                status, detail = "bad", str(exc)
        results.append({"name": name, "status": status, "detail": detail, "sha256": digest})
    return results
