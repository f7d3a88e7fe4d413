"""A small clip manifest for the CLI tests: the bench tests' builder (real Megamind/astronaut frames, espeak audio)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def _bench_conftest():
    path = Path(__file__).resolve().parents[1] / "bench" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_bench_conftest_for_cli", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def clip_manifest(tmp_path_factory) -> Path:
    return _bench_conftest().build_manifest(tmp_path_factory.mktemp("cli_clips"), n=12)
