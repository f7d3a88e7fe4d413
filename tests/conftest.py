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
