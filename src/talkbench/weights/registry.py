"""The weights registry: one ``WeightsEntry`` per pretrained network file, registered by the package that owns it.

An entry is data (file name, URLs, hash, licence, container) plus two callables written by the owner of the
network: ``build(path)`` turns the installed file into the ready network, and ``check(path)`` refuses a file that
does not fit the architecture (keys/shapes, TorchScript methods, ONNX shapes), naming the first mismatch.

Registration without upward imports: an owner module calls ``register(WeightsEntry(...))`` when it is imported.
This layer sits below every owner, so it never imports one in code; ``OWNERS`` maps each entry name to its owner
module's dotted name, as data, and ``get_entry`` imports that module the first time the entry is asked for by name
(``talkbench weights list`` and ``verify`` resolve all of them). The import-layer test sees no upward import, and
no code here branches on an entry's name. ``test_every_owner_registers_its_entries`` keeps ``OWNERS`` and the
registrations equal.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# entry name -> the module that registers it (imported lazily, on first use of the name).
OWNERS: dict[str, str] = {
    "alexnet": "talkbench.weights.backbones",
    "vgg16": "talkbench.weights.backbones",
    "vgg19": "talkbench.weights.backbones",
    "lpips-alex": "talkbench.metrics.lpips",
    "lpips-vgg": "talkbench.metrics.lpips",
    "fid-inception": "talkbench.metrics.nets.inception",
    "clean-fid-inception": "talkbench.metrics.nets.torchscript",
    "i3d": "talkbench.metrics.nets.torchscript",
    "syncnet": "talkbench.metrics.nets.syncnet",
    "dwpose": "talkbench.metrics.hands",
    "buffalo_l": "talkbench.faces.buffalo",
}

HASH_KINDS = ("sha256", "prefix", "unpinned")
CONTAINERS = ("legacy-pickle", "zip-pickle", "torchscript", "onnx", "zip-archive")


@dataclass(frozen=True)
class WeightsEntry:
    """One pretrained file. Hash policy (``hash_kind``):

    - ``sha256``: the full official SHA-256 is known; any other file is refused (unless imported ``--unverified``).
    - ``prefix``: only a published prefix is known (torch.hub's ``name-<first 8 hex of sha256>.pth``); the file's
      SHA-256 must start with it.
    - ``unpinned``: no hash is published; the file is accepted on its structure (``check``) and its SHA-256 is
      recorded, so every result row still says exactly which file made it.
    """

    name: str
    filename: str
    urls: tuple[str, ...]
    hash_kind: str
    sha256: str  # full hash, the published prefix, or "" when unpinned
    size: int | None  # bytes; informational (measured where size_exact, else the published figure)
    size_exact: bool
    licence: str
    container: str  # one of CONTAINERS: how the file is stored (and how random stand-ins are written)
    description: str
    build: Callable[[Path], Any]  # installed file -> the ready network (module, session or extracted folder)
    check: Callable[[Path], None]  # raises WeightsError when the file does not fit the architecture
    layout: Callable[[], Any] | None = None  # state-dict entries: the module whose keys/shapes the file holds
    local_sources: tuple[str, ...] = field(default=())  # "package:relative/path" installable offline

    def __post_init__(self):
        if self.hash_kind not in HASH_KINDS:
            raise ValueError(f"unknown hash kind {self.hash_kind!r}; choose from {sorted(HASH_KINDS)}")
        if self.container not in CONTAINERS:
            raise ValueError(f"unknown container {self.container!r}; choose from {sorted(CONTAINERS)}")

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


REGISTRY: dict[str, WeightsEntry] = {}


def register(entry: WeightsEntry) -> WeightsEntry:
    """Called by the owner module at import. Re-registering the same name (a module reload) replaces the entry."""
    REGISTRY[entry.name] = entry
    return entry


def get_entry(name: str) -> WeightsEntry:
    if name not in REGISTRY and name in OWNERS:
        importlib.import_module(OWNERS[name])
    if name not in REGISTRY:
        raise ValueError(f"unknown weights entry {name!r}; choose from {entry_names()}")
    return REGISTRY[name]


def entry_names() -> list[str]:
    """Every entry name: those of ``OWNERS`` and any registered directly (a test's toy entry, say)."""
    return sorted(set(OWNERS) | set(REGISTRY))


def all_entries() -> dict[str, WeightsEntry]:
    """Every entry, each owner module imported once."""
    return {name: get_entry(name) for name in entry_names()}
