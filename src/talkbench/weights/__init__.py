"""The weights layer: every pretrained network file is a named, checksummed entry (below metrics, curation, models).

- ``registry``: ``WeightsEntry`` (data + the owner's ``build`` / ``check``), ``register``, ``OWNERS``, ``get_entry``;
- ``formats``: container readers and the state-dict / ONNX structure checks owners build their ``check`` from;
- ``store``: the installed files, fetch (offline local source or resumable download), import, verify;
- ``backbones``: torchvision-layout AlexNet / VGG (the ImageNet files' key layout), shared by LPIPS and the
  perceptual losses; owner of the ``alexnet``, ``vgg16`` and ``vgg19`` entries.

``talkbench weights list|fetch|import PATH|verify`` is the command line of this package.
"""

from .formats import (check_state_dict, expected_state_dict, extract_pack, load_torchscript_file, onnx_io,
                      onnx_session, state_dict_entry, torch_load)
from .registry import OWNERS, REGISTRY, WeightsEntry, all_entries, entry_names, get_entry, register
from .store import (build, download, fetch, install_file, installed_record, installed_sha256, is_installed,
                    is_standard, load_state_dict, load_torchscript, local_source, pack_dir, sha256_file, verify,
                    weights_home, weights_path)

__all__ = [
    "OWNERS", "REGISTRY", "WeightsEntry", "all_entries", "build", "check_state_dict", "download", "entry_names",
    "expected_state_dict", "extract_pack", "fetch", "get_entry", "install_file", "installed_record",
    "installed_sha256", "is_installed", "is_standard", "load_state_dict", "load_torchscript",
    "load_torchscript_file", "local_source", "onnx_io", "onnx_session", "pack_dir", "register", "sha256_file",
    "state_dict_entry", "torch_load", "verify", "weights_home", "weights_path",
]
