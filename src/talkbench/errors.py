"""Exception types shared by every talkbench package.

The CLI turns any of these into one line and a non-zero exit; library code raises the most specific one
and says what failed, what was expected and what was found.
"""


class TalkbenchError(Exception):
    """Base class of every error talkbench raises on purpose."""


class ManifestError(TalkbenchError):
    """A manifest file is missing, truncated, or does not match its schema."""


class ManifestWriteError(ManifestError):
    """A manifest could not be written (disk full, permissions, a path under a file)."""


class SourceListError(TalkbenchError):
    """A source list cannot be read at all (a single bad line is reported, not raised)."""


class MediaError(TalkbenchError):
    """A media file is corrupt, empty, or not what a stage needs."""


class WeightsError(TalkbenchError):
    """A pretrained weights file is missing, has the wrong checksum, or the wrong keys/shapes."""


class MissingWeightsError(WeightsError):
    """A weights entry is not installed; the message names the command that installs it."""


class MissingDependencyError(TalkbenchError):
    """An optional dependency is not installed; the message gives the exact install command."""


class ConfigError(TalkbenchError):
    """A configuration value or combination of options is invalid."""


class StepOutputError(TalkbenchError):
    """A stage's saved output in a run folder is not in the expected data format (it is never executed)."""


def require(module: str, install: str):
    """Import an optional dependency or fail with the exact install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"{module} is not installed ({exc}); install it with: {install}") from exc


class PlanError(ConfigError):
    """A director plan (or the instruction behind it) is invalid: times past the audio, an unknown control, bad types."""
