"""The `talkbench` console script: every command group is registered here from its own module."""

from __future__ import annotations

from typing import Sequence

from . import avatar, bench, curate, demo, directed, manifests, metrics, models, plan, speech, targets, weights
from ._app import new_app, run_app

app = new_app("talkbench: curate talking-head data, train reference models, score methods under pinned protocols.",
              root=True)

# Each module adds its own commands or groups; the curate and bench scripts are also reachable as groups here.
for module in (manifests, weights, metrics, models, demo, plan, targets):
    module.register(app)
speech.register(app, models.train_app, models.generate_app)  # train audio2motion, generate speech
directed.register(models.generate_app)  # generate directed
avatar.register(models.train_app, models.generate_app, app)  # train avatar, generate avatar, export-avatar-data
app.add_typer(curate.app, name="curate")
app.add_typer(bench.app, name="bench")


def main(argv: Sequence[str] | None = None) -> int:
    code = run_app(app, argv, "talkbench")
    if argv is None:
        raise SystemExit(code)
    return code


if __name__ == "__main__":  # python -m talkbench.cli.main
    main()
