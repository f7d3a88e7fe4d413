"""FAMILIES: the bundled model families, the one list the CLI builds `train`, `models summary` and their help from.

A family is one module (its ``@dataclass`` configs, networks and size presets) plus a training ``main(cfg)``, and
provides:

    TrainConfig          the training configuration; its defaults are the only copy (the CLI passes only what is given)
    PRESETS              size preset → model config
    param_table(cfg)     [(module, parameter count)] for `models summary`
    describe(cfg)        a one-line description of a model config
    main(cfg)            trains, returns {"step", "history", "checkpoint"}

The entries name modules rather than import them, so building the CLI does not import torch. Adding a family is its
module plus one ``Family(...)`` line here.

The upper-body avatar (ChatAnyone recipe) is three families, one per part, trained by one script
(``train_avatar``, ``part=``): ``avatar-face`` (face motion DiT), ``avatar-body`` (body/hand transformer) and
``avatar-render`` (keypoint renderer). Their names are the ``cfg["family"]`` their checkpoints carry, so
``bench run --method ours`` picks the implementation from the checkpoint like for the other families.
``train avatar --part face|body|render --data DIR`` stays as the npz-folder entry point (cli/avatar.py).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from ..errors import ConfigError


@dataclass(frozen=True)
class Family:
    name: str
    summary: str  # one line, shown in help texts
    model: str  # module with PRESETS, param_table and describe
    trainer: str  # module with TrainConfig and main
    part: str | None = None  # a trainer module that trains several parts: its ``TRAINERS[part]`` has them

    def model_module(self) -> ModuleType:
        return importlib.import_module(self.model)

    def trainer_module(self) -> ModuleType:
        module = importlib.import_module(self.trainer)
        return module.TRAINERS[self.part] if self.part else module

    def train_config(self, **overrides):
        """The family's TrainConfig with only the given (non-None) values changed."""
        config = self.trainer_module().TrainConfig
        return config(**{k: v for k, v in overrides.items() if v is not None})

    def default_preset(self) -> str:
        from dataclasses import fields

        return next(f.default for f in fields(self.trainer_module().TrainConfig) if f.name == "preset")


FAMILIES: dict[str, Family] = {
    "motion": Family("motion", "motion encoder + warping renderer (AniTalker stage 1 on LIA)",
                     model="talkbench.models.motion", trainer="talkbench.models.train_motion"),
    "audio2motion": Family("audio2motion", "speech → motion diffusion (AniTalker stage 2)",
                           model="talkbench.models.audio2motion", trainer="talkbench.models.train_audio2motion"),
    "avatar-face": Family("avatar-face", "upper-body face motion DiT: expression + 6-D pose diffusion (ChatAnyone)",
                          model="talkbench.models.face_dit", trainer="talkbench.models.train_avatar", part="face"),
    "avatar-body": Family("avatar-body", "upper-body body/hand keypoint transformer (ChatAnyone)",
                          model="talkbench.models.body_hands", trainer="talkbench.models.train_avatar", part="body"),
    "avatar-render": Family("avatar-render", "upper-body keypoint-driven renderer with hand skeletons (ChatAnyone)",
                            model="talkbench.models.kp_renderer", trainer="talkbench.models.train_avatar",
                            part="render"),
}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"unknown model family {name!r}; choose from {sorted(FAMILIES)}")
    return FAMILIES[name]


def families_help() -> str:
    return "; ".join(f"{f.name}: {f.summary}" for f in FAMILIES.values())
