"""Suite-wide settings: an isolated TALKBENCH_HOME (no test sees or changes a user's weights), headless plotting."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("talkbench-home")
    old = os.environ.get("TALKBENCH_HOME")
    os.environ["TALKBENCH_HOME"] = str(home)
    os.environ.setdefault("MPLBACKEND", "Agg")
    yield home
    if old is None:
        os.environ.pop("TALKBENCH_HOME", None)
    else:
        os.environ["TALKBENCH_HOME"] = old


@pytest.fixture(scope="session")
def demo_curated(tmp_path_factory):
    """`talkbench demo make DEMO` then `talkbench curate build-manifest DEMO/sources.csv --out DATA`, once per session,
    the way a user types them. Returns (DEMO, DATA); tests read both and write elsewhere."""
    from talkbench.cli.main import main

    root = tmp_path_factory.mktemp("demo-curated")
    demo, data = root / "demo", root / "data"
    assert main(["demo", "make", str(demo)]) == 0
    assert main(["curate", "build-manifest", str(demo / "sources.csv"), "--out", str(data), "--quiet"]) == 0
    return demo, data
