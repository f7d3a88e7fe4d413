"""The weights layer: entries registered by their owners, resolved lazily, no upward import; a new entry is one
registration and gets install, check, build, random files and the CLI with no other edit."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from talkbench import weights
from talkbench.cli.main import main
from talkbench.errors import WeightsError
from talkbench.metrics import random_weights

SRC = Path(weights.__file__).parent


def test_every_owner_defines_its_entries_structure():
    """OWNERS names, for each entry, the module that registers it and defines its structure (layout or check)."""
    entries = weights.all_entries()
    assert sorted(entries) == sorted(weights.OWNERS)
    for name, entry in entries.items():
        defining = entry.layout if entry.layout is not None else entry.check
        assert defining.__module__ == weights.OWNERS[name], name
        assert callable(entry.build) and callable(entry.check)


def test_weights_layer_imports_nothing_above_it():
    """No module of the weights layer imports talkbench's upper layers (the lpips <-> weights cycle is gone)."""
    upper = ("faces", "runtime", "metrics", "curation", "models", "results", "leaderboards", "bench", "cli")
    for path in sorted(SRC.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative to talkbench.weights
                    package = "talkbench.weights".rsplit(".", node.level - 1)[0]
                    base = f"{package}.{base}" if base else package
                targets = [base] if node.module else [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                parts = target.split(".")
                assert not (parts[0] == "talkbench" and len(parts) > 1 and parts[1] in upper), f"{path.name}: {target}"
    # At run time too: importing the layer loads no owner; asking for an entry loads only its owner.
    code = ("import sys, talkbench.weights as w; before = {m for m in sys.modules if m.startswith('talkbench.')}; "
            "w.get_entry('lpips-alex'); after = {m for m in sys.modules if m.startswith('talkbench.')}; "
            "print(sorted(before)); print('talkbench.metrics.lpips' in after, 'talkbench.faces' in after)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert not [m for m in eval(out[0]) if m.split(".")[1] in upper], out[0]
    assert out[1] == "True False"


def test_unknown_entry_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown weights entry 'nope'; choose from \['alexnet', "):
        weights.get_entry("nope")


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 3)
        self.norm = nn.BatchNorm1d(3)


@pytest.fixture
def toy_entry():
    entry = weights.register(weights.state_dict_entry(
        _Toy, name="toy-net", filename="toy-net.pth", urls=("https://example.invalid/toy-net.pth",),
        hash_kind="unpinned", sha256="", size=None, size_exact=False, licence="test", description="a toy entry"))
    yield entry
    weights.REGISTRY.pop("toy-net")


def test_a_new_entry_is_one_registration(toy_entry, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / "home"))
    path = random_weights.write_random("toy-net", tmp_path / "toy-net.pth", seed=1)
    assert main(["weights", "import", str(path), "--as", "toy-net"]) == 0
    net = weights.build("toy-net")
    state = torch.load(path, weights_only=True)
    assert isinstance(net, _Toy) and not net.training
    assert torch.equal(net.proj.weight, state["proj.weight"]) and torch.equal(net.norm.running_var, state["norm.running_var"])
    assert main(["weights", "list"]) == 0 and "toy-net" in capsys.readouterr().out
    assert [r["status"] for r in weights.verify(["toy-net"])] == ["ok-unpinned"]
    state["proj.weight"] = torch.zeros(3, 5)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match=r"'proj.weight' has shape \(3, 5\), expected \(3, 4\)"):
        weights.install_file("toy-net", tmp_path / "bad.pth")
