"""The import layers of talkbench, bottom first: the one place they are written (DESIGN.md, "Layout").

A module imports only from its own layer or the layers below it, and three pairs stay apart although the order would
allow them. ``tests/test_layers.py`` walks every import (module-level and inside functions) and fails on an upward
import, on one of these pairs, or on an import cycle.
"""

from __future__ import annotations

# Each layer lists the top-level names under ``talkbench`` (sub-packages or modules) that belong to it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "media", "demo", "demo_upper", "layers"),  # error types, the one media reader/writer, the demo's synthetic material
    ("manifests",),
    ("weights",),
    ("faces",),
    ("runtime",),
    ("director",),  # instruction → time-coded plan, keyframes, sub-clips: reads audio and arrays only
    ("metrics",),
    ("curation",),
    ("models",),
    ("results",),
    ("leaderboards",),
    ("bench",),
    ("cli",),
    ("__main__",),  # `python -m talkbench`: the CLI's entry point
)

# (importer, imported): never, although the layer order would allow it.
APART: frozenset[tuple[str, str]] = frozenset({
    ("curation", "metrics"),  # curation and metrics share faces/ and weights/, never each other
    ("models", "curation"),  # models read manifests, not curation's code
    ("leaderboards", "models"),  # leaderboards are built from result files only
    ("leaderboards", "curation"),
})


def layer_index(name: str) -> int:
    """The layer of a top-level name under ``talkbench`` (``"metrics"``, ``"errors"``...)."""
    for index, members in enumerate(LAYERS):
        if name in members:
            return index
    raise KeyError(f"unknown layer member {name!r}; add it to talkbench.layers.LAYERS")
