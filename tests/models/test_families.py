"""FAMILIES: a new model family is its module plus one registration; `train` and `models summary` pick it up."""

from __future__ import annotations

import importlib
import json
from dataclasses import fields

import pytest

from talkbench.cli._app import new_app, run_app
from talkbench.models import families

TOY = '''
import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class ToyConfig:
    width: int = 8


PRESETS = {"small": ToyConfig(4), "big": ToyConfig(16)}


def describe(cfg):
    return f"{cfg.width} units"


def param_table(cfg):
    return [("weights", cfg.width * cfg.width), ("total", cfg.width * cfg.width)]


@dataclass
class TrainConfig:
    manifest: str
    out: str
    preset: str = "small"
    max_steps: int = 5
    lr: float = 0.25
    d_lr: float = 0.25
    seed: int = 0


def main(cfg):
    Path(cfg.out).mkdir(parents=True)
    (Path(cfg.out) / "cfg.json").write_text(json.dumps(asdict(cfg)))
    return {"step": cfg.max_steps, "history": [{"l1": 0.5}], "checkpoint": str(Path(cfg.out) / "last.pt")}
'''


@pytest.fixture
def toy_cli(tmp_path, monkeypatch):
    """A toy family registered with one line; the CLI module rebuilt from FAMILIES."""
    (tmp_path / "toy_family.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    from talkbench.cli import models as cli_models

    monkeypatch.setitem(families.FAMILIES, "toy", families.Family("toy", "a toy family for the registry test",
                                                                  model="toy_family", trainer="toy_family"))
    try:
        app = new_app("talkbench")
        importlib.reload(cli_models).register(app)  # the root app as cli.main builds it
        yield lambda args: run_app(app, args, "talkbench")
    finally:
        families.FAMILIES.pop("toy", None)
        importlib.reload(cli_models)


def test_a_registered_family_gets_train_and_summary(toy_cli, tmp_path, capsys):
    out = tmp_path / "run"
    assert toy_cli(["train", "toy", "--manifest", "m.parquet", "--out", str(out), "--max-steps", "3",
                                       "--lr", "0.5"]) == 0
    cfg = json.loads((out / "cfg.json").read_text())
    # Given values are passed; everything else is the family's own TrainConfig default (its only copy).
    assert cfg == {"manifest": "m.parquet", "out": str(out), "preset": "small", "max_steps": 3, "lr": 0.5,
                   "d_lr": 0.5, "seed": 0}
    assert "trained to step 3; l1 0.5" in capsys.readouterr().out
    assert toy_cli(["models", "summary", "toy"]) == 0
    printed = capsys.readouterr().out
    assert "toy / small (4 units)" in printed and "16" in printed
    assert toy_cli(["models", "summary", "toy", "--preset", "big"]) == 0
    assert "256" in capsys.readouterr().out
    assert toy_cli(["train", "--help"]) == 0
    assert "a toy family for the registry test" in capsys.readouterr().out


def test_options_a_family_does_not_have_are_refused(toy_cli, tmp_path, capsys):
    code = toy_cli(["train", "toy", "--manifest", "m", "--out", str(tmp_path / "r"), "--perceptual",
                                       "vgg19"])
    err = capsys.readouterr().err
    assert code == 1 and err.strip() == "error: --perceptual does not apply to the toy family"
    assert not (tmp_path / "r").exists()
    code = toy_cli(["train", "toy", "--manifest", "m", "--out", str(tmp_path / "r"), "--preset", "huge"])
    assert code == 1 and "unknown preset 'huge'; choose from ['big', 'small']" in capsys.readouterr().err


def test_motion_training_defaults_live_once():
    """The CLI and the torchrun entry point pass only given values, so TrainConfig's defaults are the ones used."""
    from talkbench.models.train_motion import TrainConfig

    defaults = {f.name: f.default for f in fields(TrainConfig) if f.name in ("preset", "num_workers", "max_steps")}
    assert defaults == {"preset": "base", "num_workers": 2, "max_steps": 100_000}
    assert families.FAMILIES["motion"].default_preset() == "base"
    with pytest.raises(Exception, match=r"unknown model family 'audio'; choose from \['audio2motion', 'avatar-body', "
                                         r"'avatar-face', 'avatar-render', 'motion'\]"):
        families.get_family("audio")
