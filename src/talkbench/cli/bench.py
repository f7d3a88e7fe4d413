"""The `bench` console script: run methods on a test split, score them, publish leaderboards."""

from __future__ import annotations

from typing import Sequence

from ._app import new_app, run_app

app = new_app("bench: score talking-head methods under pinned protocols and publish leaderboards.")


def main(argv: Sequence[str] | None = None) -> int:
    code = run_app(app, argv, "bench")
    if argv is None:
        raise SystemExit(code)
    return code
