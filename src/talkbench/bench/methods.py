"""Methods a benchmark can score: ground truth, a static baseline, an external method's output folder, our model.

A method turns one job's inputs into generated frames at the protocol's fps and size. A problem with a single
clip's output (missing, corrupt, wrong length) raises :class:`OutputError`; the runner records a null row per metric
with that reason and scores the other clips. Problems with the method itself (no checkpoint, no folder) raise
:class:`~talkbench.errors.ConfigError` before anything is written.

``folder:PATH`` outputs: ``PATH/<clip_id>.mp4`` (any container ffmpeg reads), or ``PATH/<clip_id>/`` holding PNG
frames whose sorted file names give the frame order. The mp4 wins when both exist. Their audio is ignored: audio
metrics use the clip's own audio, which is what drove the method. Frame rate, size, non-square frames and length are
handled by the input policy that `metrics compute` applies too (``talkbench.metrics.inputs``, same defaults):
every resample and trim is recorded in the rows; a refused output gives null rows with the reason (``not_square``,
``frame_count_mismatch``, ``missing_output``, ``corrupt_output``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, TalkbenchError
from ..metrics.inputs import LENGTH_POLICIES  # noqa: F401 - one home: the input policy shared with `metrics compute`


class OutputError(TalkbenchError):
    """One clip's generated output cannot be scored; ``reason`` is the short code stored in ``null_reason``."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass
class Inputs:
    job: dict
    source: np.ndarray  # (H, W, 3) uint8: the portrait to animate
    driver: np.ndarray  # (T, H, W, 3) uint8: the clip itself (ground truth) or the cross-reenactment driver
    audio: np.ndarray | None  # float32 mono at the protocol's audio rate
    fps: float
    size: int
    protocol: object = None  # the EvalProtocol: outputs are read and resized through its frame reader


@dataclass
class Generated:
    frames: np.ndarray  # (T, H, W, 3) uint8 at the protocol fps and size
    extra: dict = field(default_factory=dict)  # recorded resampling, trimming, model details
    flags: list[str] = field(default_factory=list)
    reference_frames: int | None = None  # when trimmed, how many ground-truth frames to compare with


class Method:
    """A registered method (``METHODS``). ``arg`` names the part after ``key:`` (``folder:PATH``); ``options`` are
    the ``METHOD_OPTIONS`` its constructor takes, besides ``arg`` and ``device``."""

    name = "base"
    tasks: tuple[str, ...] = ()
    description = ""
    arg: str | None = None
    options: tuple[str, ...] = ()

    def __init__(self, device: str = "cpu"):
        self.device = device

    @classmethod
    def create(cls, arg: str, **options) -> "Method":
        return cls(arg, **options) if cls.arg else cls(**options)

    def generate(self, inputs: Inputs) -> Generated:
        raise NotImplementedError

    def run_key(self) -> dict:
        """What identifies this method's outputs, for resume: a change means cached clip results are stale."""
        return {"method": self.name}

    def clip_key(self, job: dict) -> str | None:
        """What identifies one clip's output (its content hash), for resume: a change rescores that clip only."""
        return None

    def check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise ConfigError(f"method {self.name!r} does not support task {task!r}; it supports {sorted(self.tasks)}")

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_lazy")}


class GroundTruth(Method):
    name = "gt"
    tasks = ("self-reenact", "audio-driven", "upper-body")
    description = "returns the ground-truth clip: the sanity ceiling that makes metric bugs visible"

    def generate(self, inputs):
        return Generated(inputs.driver.copy())


class Static(Method):
    name = "static"
    tasks = ("self-reenact", "cross-reenact", "audio-driven", "upper-body")
    description = "repeats the source frame for the whole clip: the lower baseline"

    def generate(self, inputs):
        frames = np.repeat(inputs.source[None], len(inputs.driver), axis=0)
        return Generated(frames)


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
    """To a model's own input size (not the protocol's: that resize goes through the protocol's frame reader)."""
    import cv2

    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_CUBIC) for f in frames])


class Folder(Method):
    tasks = ("self-reenact", "cross-reenact", "audio-driven", "upper-body")
    description = "outputs of an external method: PATH/<clip_id>.mp4 or PATH/<clip_id>/*.png"
    arg = "PATH"
    options = ("length_policy", "allow_nonsquare")

    def __init__(self, path: str | Path, length_policy: str = "error", allow_nonsquare: bool = False,
                 device: str = "cpu"):
        from ..metrics.inputs import InputPolicy

        self.path = Path(path)
        if not self.path.is_dir():
            raise ConfigError(f"folder method: {self.path} is not a folder (expected PATH/<clip_id>.mp4 files)")
        self.policy = InputPolicy(length_policy, bool(allow_nonsquare))  # the one policy `metrics compute` uses
        self.length_policy = length_policy
        self.name = f"folder:{self.path.name}"

    def run_key(self):
        return {"method": self.name, "path": str(self.path.resolve()), "length_policy": self.policy.length,
                "allow_nonsquare": self.policy.allow_nonsquare}

    def clip_key(self, job: dict) -> str | None:
        """sha256 of the file the clip is read from (the mp4, or every PNG's name and bytes); None when missing."""
        import hashlib

        from ..media import sha256_file

        clip_id = job["clip_id"]
        video, frames_dir = self.path / f"{clip_id}.mp4", self.path / clip_id
        if video.is_file():
            return sha256_file(video)
        if frames_dir.is_dir():
            h = hashlib.sha256()
            for f in sorted(frames_dir.glob("*.png")):
                h.update(f.name.encode() + b"\0" + bytes.fromhex(sha256_file(f)))
            return "png:" + h.hexdigest()
        return None

    def generate(self, inputs):
        from ..metrics.inputs import InputError, match_length, read_frames_policy

        clip_id = inputs.job["clip_id"]
        video, frames_dir = self.path / f"{clip_id}.mp4", self.path / clip_id
        if video.is_file():
            source, extra = video, {"output": video.name}
        elif frames_dir.is_dir():
            source = frames_dir
            extra = {"output": f"{frames_dir.name}/ ({len(list(frames_dir.glob('*.png')))} png)"}
        else:
            raise OutputError("missing_output", f"neither {video.name} nor {clip_id}/ in {self.path}")
        try:
            frames, record, flags = read_frames_policy(source, inputs.protocol, self.policy)
            frames, n_ref, trim, trim_flags = match_length(frames, len(inputs.driver), self.policy)
        except InputError as exc:
            raise OutputError(exc.reason, exc.message) from exc
        return Generated(frames, {**extra, **record, **trim}, flags + trim_flags,
                         reference_frames=n_ref if trim else None)


_MODELS: dict[tuple, object] = {}  # per process: (checkpoint, mtime, device) -> ReenactModel


class Ours(Method):
    name = "ours"
    tasks = ("self-reenact", "cross-reenact", "upper-body")
    description = "the bundled reference model (motion encoder + warping renderer), needs --checkpoint PATH"
    options = ("checkpoint", "batch_size")

    def __init__(self, checkpoint: str | Path | None = None, device: str = "cpu", batch_size: int = 8):
        if not checkpoint:
            raise ConfigError("no checkpoint given: method 'ours' needs --checkpoint PATH")
        self.checkpoint = Path(checkpoint)
        if not self.checkpoint.is_file():
            raise ConfigError(f"checkpoint {self.checkpoint} does not exist")
        if int(batch_size) < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
        self.device, self.batch_size = device, int(batch_size)
        # Load it now: an unreadable file, another model family or mismatched weights are refused before the run
        # touches OUT (the model is kept per process, so the first clip does not load it again).
        self._model()

    def run_key(self):
        from ..media import sha256_file

        return {"method": self.name, "checkpoint_sha256": sha256_file(self.checkpoint)}

    def _model(self):
        # kept per process (bench runs one rank per clip): a worker loads the checkpoint once
        key = (str(self.checkpoint.resolve()), self.checkpoint.stat().st_mtime_ns, self.device)
        if key not in _MODELS:
            from ..models.inference import ReenactModel

            _MODELS[key] = ReenactModel.from_checkpoint(self.checkpoint, self.device)
        return _MODELS[key]

    def generate(self, inputs):
        model = self._model()
        size = int(getattr(model, "size", inputs.size))
        source, driver = inputs.source, inputs.driver
        extra = {"checkpoint": self.checkpoint.name}
        if size != inputs.size:
            # The model runs at its own resolution; the protocol scores at its own. Both resizes are recorded.
            source, driver = _resize(source[None], size)[0], _resize(driver, size)
            extra["resampled"] = {"model_size": size, "size": [size, inputs.size]}
        frames = np.stack(list(model.reenact(source, driver, batch_size=self.batch_size))).astype(np.uint8)
        if size != inputs.size:
            from ..manifests.frames import resize_frames

            frames = resize_frames(frames, inputs.protocol)
        return Generated(frames, extra)


# ----------------------------------------------------------------------------- registries
# A new method is one class plus one line here: `bench methods`, the --method help and its choices, make_method and
# the unknown-method error all read METHODS; its options come from METHOD_OPTIONS (one CLI flag each).


@dataclass(frozen=True)
class MethodOption:
    default: object
    help: str


METHOD_OPTIONS: dict[str, MethodOption] = {
    "checkpoint": MethodOption(None, "model checkpoint (method 'ours')"),
    "batch_size": MethodOption(8, "frames per model batch (method 'ours')"),
    "length_policy": MethodOption("error", "folder outputs of the wrong length: error (null rows) | trim (recorded)"),
    "allow_nonsquare": MethodOption(False, "folder outputs with non-square frames: resize them (recorded) instead "
                                           "of a not_square null row"),
}

METHODS: dict[str, type[Method]] = {"gt": GroundTruth, "static": Static, "folder": Folder, "ours": Ours}


def method_usage(key: str) -> str:
    return f"{key}:{METHODS[key].arg}" if METHODS[key].arg else key


def method_choices() -> list[str]:
    return sorted(method_usage(k) for k in METHODS)


def check_method_name(name: str) -> tuple[str, str]:
    """(registry key, argument) of ``key`` or ``key:ARG``; an unknown name raises ConfigError naming the choices."""
    key, _, arg = name.partition(":")
    if key not in METHODS or bool(METHODS[key].arg) != bool(arg):
        raise ConfigError(f"unknown method {name!r}; choose from {method_choices()}")
    return key, arg


def make_method(name: str, *, device: str = "cpu", **options) -> Method:
    """A method from its name (``gt``, ``folder:PATH``, ...) and the ``METHOD_OPTIONS`` values; each method takes
    the options it declares and ignores the others."""
    key, arg = check_method_name(name)
    unknown = sorted(set(options) - set(METHOD_OPTIONS))
    if unknown:
        raise ValueError(f"unknown method option {unknown[0]!r}; choose from {sorted(METHOD_OPTIONS)}")
    cls = METHODS[key]
    return cls.create(arg, device=device, **{k: v for k, v in options.items() if k in cls.options})


def method_table() -> list[dict]:
    """Rows for ``bench methods``."""
    return [{"method": method_usage(key), "tasks": list(cls.tasks), "description": cls.description,
             "options": list(cls.options)} for key, cls in METHODS.items()]


def dumps_extra(extra: dict) -> str | None:
    return json.dumps(extra, sort_keys=True) if extra else None
