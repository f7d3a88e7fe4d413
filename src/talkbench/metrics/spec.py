"""The metric registry: one ``MetricSpec`` per metric, the one home of its name, inputs, level, direction, label,
weights and compute entry.

The Evaluator, the bench tasks, the run summaries and the leaderboards all read ``METRICS``; nothing else lists
metric names or directions. Adding a metric is one new file (its functional core and compute entry) plus one
registration here. This module imports nothing heavy, so the leaderboards and the CLI can read it cheaply.

Compute entries are callables, or dotted paths ``"module:function"`` resolved on first use (so this module stays
light):

- a per-clip metric's entry is ``fn(ev, video) -> Score | dict[str, Score]`` (``ev``: the Evaluator, which owns
  the device, the protocol and the shared networks; ``video``: :class:`talkbench.metrics.scores.Video`). Metrics
  that share an entry (Sync-C, Sync-D, AV offset) are computed once per video: the entry returns one Score per name;
- a set-level metric's entry is ``fn(ev) -> accumulator`` with ``add(pred, gt)``, ``rows_extra()`` and ``value()``
  (see :mod:`talkbench.metrics.scores`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

INPUTS = ("paired", "single", "source", "audio")  # what a metric needs beside the generated frames
LEVELS = ("clip", "set")
# Task labels of a metric (``psnr_vs_gt``): the suffix keeps the base metric's direction and names the comparison.
VARIANT_SUFFIXES = {"_vs_gt": "vs GT"}


@dataclass(frozen=True)
class MetricSpec:
    name: str
    inputs: str  # paired (ground truth or driver frames) | single (generated frames only) | source | audio
    higher_is_better: bool | None  # None: shown, never ranked
    label: str
    compute: str | Callable | None  # the entry, or "module:function" (see the module docstring); None: papers only
    level: str = "clip"  # clip | set
    weights: tuple[str, ...] | Callable[[object], tuple[str, ...]] = ()  # entries, or fn(protocol) -> entries
    network: str | None = None  # key of the shared network (``Evaluator(networks=...)`` injects it)
    tasks: tuple[str, ...] = ()  # bench tasks that score it

    def __post_init__(self):
        if self.inputs not in INPUTS:
            raise ValueError(f"unknown metric inputs {self.inputs!r}; choose from {sorted(INPUTS)}")
        if self.level not in LEVELS:
            raise ValueError(f"unknown metric level {self.level!r}; choose from {sorted(LEVELS)}")

    def entries(self, protocol=None) -> tuple[str, ...]:
        """The weights entries this metric needs under ``protocol`` (an EvalProtocol)."""
        return tuple(self.weights(protocol) if callable(self.weights) else self.weights)

    def resolve(self) -> Callable:
        if self.compute is None:
            raise ValueError(f"metric {self.name!r} is reported by papers only; talkbench does not compute it")
        if callable(self.compute):
            return self.compute
        module, _, attr = self.compute.partition(":")
        return getattr(importlib.import_module(module), attr)


def _hkc_weights(protocol) -> tuple[str, ...]:
    return ("dwpose",) if protocol is not None and protocol.hkc_detector == "dwpose" else ()


_S = "talkbench.metrics.scores:"
SELF, CROSS, AUDIO, UPPER = "self-reenact", "cross-reenact", "audio-driven", "upper-body"
INSTR = "instruction"
_SYNC = dict(inputs="audio", compute=_S + "sync", weights=("syncnet",), network="syncnet", tasks=(AUDIO, INSTR))

METRICS: dict[str, MetricSpec] = {s.name: s for s in (
    MetricSpec("psnr", "paired", True, "PSNR", _S + "psnr", tasks=(SELF, AUDIO, UPPER)),
    MetricSpec("ssim", "paired", True, "SSIM", _S + "ssim", tasks=(SELF, AUDIO, UPPER)),
    MetricSpec("lpips", "paired", False, "LPIPS", _S + "lpips", weights=("alexnet", "lpips-alex"), network="lpips",
               tasks=(SELF, AUDIO, UPPER)),
    MetricSpec("csim", "source", True, "CSIM", _S + "csim", weights=("buffalo_l",), network="arcface",
               tasks=(SELF, CROSS, AUDIO, UPPER, INSTR)),
    MetricSpec("akd", "paired", False, "AKD", _S + "akd", tasks=(SELF, UPPER)),
    MetricSpec("akd_driver", "paired", False, "AKD↔driver", "talkbench.metrics.scores:akd_driver", tasks=(CROSS,)),
    MetricSpec("aed", "paired", False, "AED", _S + "aed", weights=("buffalo_l",), network="arcface",
               tasks=(SELF, UPPER)),
    MetricSpec("fid", "paired", False, "FID", _S + "fid", level="set", weights=("fid-inception",), network="fid",
               tasks=(SELF, CROSS, AUDIO, UPPER, INSTR)),
    MetricSpec("fid_clean", "paired", False, "FID (clean)", _S + "fid_clean", level="set",
               weights=("clean-fid-inception",), network="fid_clean"),
    MetricSpec("fvd", "paired", False, "FVD", _S + "fvd", level="set", weights=("i3d",), network="fvd",
               tasks=(SELF, CROSS, AUDIO, UPPER)),
    MetricSpec("sync_c", higher_is_better=True, label="Sync-C", **_SYNC),
    MetricSpec("sync_d", higher_is_better=False, label="Sync-D", **_SYNC),
    MetricSpec("av_offset", higher_is_better=None, label="AV offset", **_SYNC),  # a diagnostic, not a quality
    # More head motion is not better by itself (a jittering video would win), and less is not either: shown beside
    # the ground truth's value, never ranked (docs/bench.md, "Directions").
    MetricSpec("diversity", "single", None, "Diversity", _S + "diversity", tasks=(AUDIO,)),
    MetricSpec("hkc", "single", True, "HKC", _S + "hkc", weights=_hkc_weights, tasks=(UPPER,)),
    # Instruction following (bench.instruction; docs/director.md). adh_*: direction × effect against the neutral
    # run over the control's span, per (clip, instruction, control); success_*: the rate of effects beyond their
    # margin. They need the neutral video beside the directed one, so bench.instruction computes them, not the
    # Evaluator (compute None keeps them out of `metrics compute --metrics all`).
    MetricSpec("adh_nod", "single", True, "Nod (pitch osc.)", None, tasks=(INSTR,)),
    MetricSpec("adh_shake", "single", True, "Shake (yaw osc.)", None, tasks=(INSTR,)),
    MetricSpec("adh_tilt", "single", True, "Tilt (roll)", None, tasks=(INSTR,)),
    MetricSpec("adh_still", "single", True, "Still (head osc. ↓)", None, tasks=(INSTR,)),
    MetricSpec("adh_zoom_in", "single", True, "Zoom in (scale)", None, tasks=(INSTR,)),
    MetricSpec("adh_zoom_out", "single", True, "Zoom out (scale ↓)", None, tasks=(INSTR,)),
    MetricSpec("adh_pan", "single", True, "Pan (centre drift)", None, tasks=(INSTR,)),
    MetricSpec("adh_static", "single", True, "Static camera (motion ↓)", None, tasks=(INSTR,)),
    MetricSpec("adh_emotion", "single", True, "Emotion (expr. amplitude)", None, tasks=(INSTR,)),
    MetricSpec("adh_gesture", "single", True, "Gesture (expr. amplitude)", None, tasks=(INSTR,)),
    MetricSpec("adh_intensity", "single", True, "Intensity (expr. amplitude)", None, tasks=(INSTR,)),
    MetricSpec("success", "single", True, "Success rate", None, level="set", tasks=(INSTR,)),
    *(MetricSpec(f"success_{c}", "single", True, f"Success {c.replace('_', ' ')}", None, level="set", tasks=(INSTR,))
      for c in ("nod", "shake", "tilt", "still", "zoom_in", "zoom_out", "pan", "static", "emotion", "gesture",
                "intensity")),
    # Figures that only papers report (user studies, speed); kept here so reported tables know their direction.
    MetricSpec("mos_ls", "single", True, "MOS-LS", None),
    MetricSpec("mos_n", "single", True, "MOS-N", None),
    MetricSpec("fps", "single", True, "FPS", None),
)}


def get_metric(name: str) -> MetricSpec:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose from {sorted(computable())}")
    return METRICS[name]


def computable() -> tuple[str, ...]:
    """Names of the metrics talkbench computes (``metrics compute --metrics all``), in registry order."""
    return tuple(n for n, s in METRICS.items() if s.compute is not None)


def base_metric(name: str) -> str:
    """``psnr_vs_gt`` → ``psnr``: a task label keeps its metric's direction."""
    for suffix in VARIANT_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in METRICS:
            return name[: -len(suffix)]
    return name


def higher_is_better(name: str) -> bool | None:
    """True/False for ranked metrics; None for ones shown but not ranked (and for names not registered)."""
    spec = METRICS.get(base_metric(name))
    return None if spec is None else spec.higher_is_better


def label(name: str) -> str:
    base = base_metric(name)
    if base not in METRICS:
        return name
    return METRICS[base].label if base == name else f"{METRICS[base].label} {VARIANT_SUFFIXES[name[len(base):]]}"


def arrow(name: str) -> str:
    hib = higher_is_better(name)
    return "" if hib is None else ("↑" if hib else "↓")


def column_order(names) -> list[str]:
    """Registry order (a label right after its base metric); unregistered names follow in name order."""
    order = {n: i for i, n in enumerate(METRICS)}
    known = sorted((n for n in names if base_metric(n) in order), key=lambda n: (order[base_metric(n)], n))
    return known + sorted(n for n in names if base_metric(n) not in order)

