"""Suite-wide settings: an isolated TALKBENCH_HOME (no test sees or changes a user's weights), headless plotting,
one thread per pytest-xdist worker (the workers share the cores), and the demo curation built once per run."""

import os

import pytest
from filelock import FileLock

if os.environ.get("PYTEST_XDIST_WORKER"):  # -n N: N processes already share the cores; more threads only contend
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def build_once(tmp_path_factory, name: str, build):
    """``build(folder)`` once per test run, however many xdist workers ask: the first builds it under a lock in the
    run's shared temp root, the others wait and reuse it. Returns the folder."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the root shared by the workers
    folder, done = base / name, base / f"{name}.done"
    with FileLock(str(base / f"{name}.lock")):
        if not done.exists():
            folder.mkdir(parents=True, exist_ok=True)
            build(folder)
            done.touch()
    return folder


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
def shared_once(tmp_path_factory):
    """``shared_once(name, build)``: the folder ``build`` filled once per test run (see ``build_once``)."""
    return lambda name, build: build_once(tmp_path_factory, name, build)


@pytest.fixture(scope="session")
def demo_curated(tmp_path_factory):
    """`talkbench demo make DEMO` then `talkbench curate build-manifest DEMO/sources.csv --out DATA`, once per session,
    the way a user types them. Returns (DEMO, DATA); tests read both and write elsewhere."""
    from talkbench.cli.main import main

    def build(root):
        assert main(["demo", "make", str(root / "demo")]) == 0
        assert main(["curate", "build-manifest", str(root / "demo" / "sources.csv"), "--out", str(root / "data"),
                     "--quiet"]) == 0

    root = build_once(tmp_path_factory, "demo-curated", build)
    return root / "demo", root / "data"
