"""Files written atomically follow the umask, as ``open()`` would (issue 11, point 9: mkstemp made them 0600)."""

from __future__ import annotations

import os
import stat

import pytest

from talkbench.manifests.io import atomic_write_bytes, atomic_write_text, write_table

REJECTION = {"stage": "read", "item_id": "l.csv:2", "source_id": None, "reason": "malformed_line", "value": None,
             "threshold": None, "detail": None}


@pytest.fixture
def set_umask():
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_written_files_follow_the_umask(set_umask, tmp_path, mask, mode):
    set_umask(mask)
    with open(tmp_path / "reference.txt", "w") as fh:  # what open() gives under this umask
        fh.write("x")
    assert stat.S_IMODE(os.stat(tmp_path / "reference.txt").st_mode) == mode
    atomic_write_bytes(tmp_path / "a.bin", b"data")
    atomic_write_text(tmp_path / "b.json", "{}")
    write_table([REJECTION], tmp_path / "rejections.parquet", "rejections")
    for name in ("a.bin", "b.json", "rejections.parquet"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name
    # Rewriting an existing file gives the umask's mode too, not the old file's or mkstemp's.
    os.chmod(tmp_path / "a.bin", 0o600)
    atomic_write_bytes(tmp_path / "a.bin", b"new data")
    assert stat.S_IMODE(os.stat(tmp_path / "a.bin").st_mode) == mode
    # The umask itself is left as it was.
    assert os.umask(mask) == mask
