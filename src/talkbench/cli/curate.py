"""The `curate` console script: source lists → normalised videos → clip dataset."""

from __future__ import annotations

from typing import Sequence

from ._app import new_app, run_app

app = new_app("curate: build identity-tagged talking-head clip datasets from source lists.")


def main(argv: Sequence[str] | None = None) -> int:
    code = run_app(app, argv, "curate")
    if argv is None:
        raise SystemExit(code)
    return code
