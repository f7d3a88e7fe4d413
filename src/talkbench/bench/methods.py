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


def checkpoint_family(checkpoint: str | Path | None, needs: str = "--checkpoint PATH") -> str:
    """The model family a checkpoint was trained as (its ``cfg["family"]``); ConfigError when it is missing."""
    from ..models import checkpoints

    if not checkpoint:
        raise ConfigError(f"no checkpoint given: method 'ours' needs {needs}")
    path = Path(checkpoint)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist")
    family = checkpoints.load(path).get("cfg", {}).get("family")
    if family not in OURS_BY_FAMILY:
        raise ConfigError(f"unknown checkpoint family {family!r} in {path}; choose from {sorted(OURS_BY_FAMILY)}")
    return family


class Ours(Method):
    """``ours``: what it does comes from the checkpoint it is given. The checkpoint's family (``cfg["family"]``)
    picks the implementation in ``OURS_BY_FAMILY``: a stage-1 ``motion`` checkpoint reenacts; an ``audio2motion``
    checkpoint (with ``--motion-checkpoint``, the stage-1 model it was trained on) speaks the clip's audio."""

    name = "ours"
    tasks = ("self-reenact", "cross-reenact", "audio-driven", "upper-body")
    description = ("the bundled reference model, chosen by its checkpoint: --checkpoint STAGE1.pt (reenactment) | "
                   "--checkpoint A2M.pt --motion-checkpoint STAGE1.pt (audio-driven) | --checkpoint "
                   "AVATAR_RENDER.pt (upper-body)")
    options = ("checkpoint", "motion_checkpoint", "batch_size", "steps")

    @classmethod
    def create(cls, arg: str, **options) -> "Method":
        impl = OURS_BY_FAMILY[checkpoint_family(options.get("checkpoint"))]
        return impl(**{k: v for k, v in options.items() if k in impl.options or k == "device"})


class OursReenact(Ours):
    tasks = ("self-reenact", "cross-reenact", "upper-body")
    options = ("checkpoint", "batch_size")

    def __init__(self, checkpoint: str | Path | None = None, device: str = "cpu", batch_size: int = 8):
        checkpoint_family(checkpoint)
        self.checkpoint = Path(checkpoint)
        if int(batch_size) < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
        self.device, self.batch_size = device, int(batch_size)
        # Load it now: an unreadable file or mismatched weights are refused before the run touches OUT (the model is
        # kept per process, so the first clip does not load it again).
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
            # The model encodes at its own resolution and warps the full-size source (its flow upsampled), so the
            # output has the protocol's size; recorded.
            extra["resampled"] = {"model_size": size, "size": [size, inputs.size]}
        frames = np.stack(list(model.reenact(source, driver, batch_size=self.batch_size))).astype(np.uint8)
        if frames.shape[1:3] != (inputs.size, inputs.size):  # a source of another size: the protocol's resize
            from ..manifests.frames import resize_frames

            frames = resize_frames(frames, inputs.protocol)
        return Generated(frames, extra)


class OursSpeech(Ours):
    """Portrait (the clip's first frame) + the clip's audio → motion (audio2motion, DDIM) → stage-1 renderer."""

    tasks = ("audio-driven",)
    options = ("checkpoint", "motion_checkpoint", "batch_size", "steps")

    def __init__(self, checkpoint: str | Path | None = None, motion_checkpoint: str | Path | None = None,
                 device: str = "cpu", batch_size: int = 8, steps: int = 50):
        checkpoint_family(checkpoint)
        if not motion_checkpoint:
            raise ConfigError("an audio2motion checkpoint needs --motion-checkpoint STAGE1.pt (the stage-1 model it "
                              "was trained on)")
        if not Path(motion_checkpoint).is_file():
            raise ConfigError(f"motion checkpoint {motion_checkpoint} does not exist")
        from ..models.speech import load_models

        load_models(checkpoint, motion_checkpoint, "cpu")  # refuses a mismatched pair before anything is written
        self.checkpoint, self.motion_checkpoint = Path(checkpoint), Path(motion_checkpoint)
        self.device, self.batch_size, self.steps = device, batch_size, int(steps)

    def run_key(self):
        from ..media import sha256_file

        return {"method": self.name, "checkpoint_sha256": sha256_file(self.checkpoint),
                "motion_checkpoint_sha256": sha256_file(self.motion_checkpoint), "steps": self.steps}

    def _models(self):
        key = (str(self.checkpoint.resolve()), self.checkpoint.stat().st_mtime_ns,
               str(self.motion_checkpoint.resolve()), self.motion_checkpoint.stat().st_mtime_ns, self.device)
        if key not in _MODELS:
            from ..models.speech import load_models

            _MODELS[key] = load_models(self.checkpoint, self.motion_checkpoint, self.device)
        return _MODELS[key]

    def generate(self, inputs):
        from ..models.audio_features import AUDIO_RATE
        from ..models.speech import speech_frames

        if inputs.audio is None or not len(inputs.audio):
            raise OutputError("no_audio", "the clip has no audio to drive the model with")
        model, renderer, meta = self._models()
        audio = inputs.audio
        if inputs.protocol is not None and getattr(inputs.protocol, "audio_rate", AUDIO_RATE) != AUDIO_RATE:
            raise OutputError("audio_rate", f"the model reads {AUDIO_RATE} Hz audio, the protocol gives "
                                            f"{inputs.protocol.audio_rate} Hz")
        frames = np.concatenate(list(speech_frames(model, renderer, inputs.source, audio, steps=self.steps,
                                                   batch_size=self.batch_size)))
        n = len(inputs.driver)
        extra = {"checkpoint": self.checkpoint.name, "motion_checkpoint": self.motion_checkpoint.name,
                 "steps": self.steps, "speech_frames": int(len(frames))}
        # the audio gives ⌊samples / 640⌋ frames; the clip's frame count can differ by one at the end
        if len(frames) < n:
            frames = np.concatenate([frames, np.repeat(frames[-1:], n - len(frames), 0)])
        frames = frames[:n]
        if renderer.size != inputs.size:
            from ..manifests.frames import resize_frames

            frames = resize_frames(frames, inputs.protocol) if frames.shape[1] != inputs.size else frames
            extra["resampled"] = {"model_size": renderer.size, "size": [renderer.size, inputs.size]}
        return Generated(frames, extra)


class OursAvatar(Ours):
    """Upper-body self-reenactment, ChatAnyone Table 1's self-driven setting: the keypoint renderer of an
    ``avatar-render`` checkpoint animates the clip's first frame with the clip's own motion. The driving signal is
    read from the ground-truth frames the way the training targets were (MediaPipe face mesh on the renderer's
    expression basis, Pose, Hands; ``curation.targets`` + ``models.avatar_data``), so the score is the renderer's,
    as FOMM/MRAA/LIA/TPSMM's are in that table. The protocol's square frames are resized back to the renderer's 2:3
    size to read and render, and the output to the protocol's size (recorded in ``extra``)."""

    tasks = ("upper-body",)
    options = ("checkpoint", "batch_size")

    def __init__(self, checkpoint: str | Path | None = None, device: str = "cpu", batch_size: int = 8):
        checkpoint_family(checkpoint)
        if int(batch_size) < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
        self.checkpoint, self.device, self.batch_size = Path(checkpoint), device, int(batch_size)
        self._model()  # an unreadable checkpoint or one without a basis is refused before OUT is touched

    def run_key(self):
        from ..media import sha256_file

        return {"method": self.name, "checkpoint_sha256": sha256_file(self.checkpoint)}

    def _model(self):
        key = (str(self.checkpoint.resolve()), self.checkpoint.stat().st_mtime_ns, self.device)
        if key not in _MODELS:
            from ..models.avatar import RenderModel

            _MODELS[key] = RenderModel.load(self.checkpoint, self.device)
        return _MODELS[key]

    def generate(self, inputs):
        from PIL import Image

        from ..curation.targets import detect_landmarks, pose6
        from ..manifests.frames import resize_frames
        from ..manifests.targets import expression_coefficients
        from ..models.avatar_data import model_arrays

        model = self._model()
        h, w = model.size
        frames = np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC)) for f in inputs.driver])
        lm = detect_landmarks(frames)
        try:
            arrays, record = model_arrays(expression_coefficients(lm.mesh, *model.basis), pose6(lm.mesh, w),
                                          lm.body / w, lm.hands / w, lm.hand_score > 0, w, h)
        except ValueError as exc:
            raise OutputError("no_landmarks", f"the driving clip gives no motion to render: {exc}") from exc
        out = np.concatenate(list(model.reenact(frames[0], arrays, batch_size=self.batch_size)))
        extra = {"checkpoint": self.checkpoint.name, "driving": "clip landmarks (face mesh, Pose, Hands)",
                 "resampled": {"model_size": [w, h], "size": [inputs.size, inputs.size]},
                 **{k: v for k, v in record.items() if k != "frames"}}
        return Generated(resize_frames(out, inputs.protocol), extra)


OURS_BY_FAMILY: dict[str, type[Ours]] = {"motion": OursReenact, "audio2motion": OursSpeech,
                                         "avatar-render": OursAvatar}


# ----------------------------------------------------------------------------- registries
# A new method is one class plus one line here: `bench methods`, the --method help and its choices, make_method and
# the unknown-method error all read METHODS; its options come from METHOD_OPTIONS (one CLI flag each).


@dataclass(frozen=True)
class MethodOption:
    default: object
    help: str


METHOD_OPTIONS: dict[str, MethodOption] = {
    "checkpoint": MethodOption(None, "model checkpoint (method 'ours'; its family picks what ours does)"),
    "motion_checkpoint": MethodOption(None, "stage-1 checkpoint an audio2motion --checkpoint was trained on"),
    "steps": MethodOption(50, "DDIM steps (method 'ours' with an audio2motion checkpoint)"),
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
