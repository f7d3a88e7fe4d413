"""`talkbench train motion` validates its options and its run folder before it writes anything (issue 11, point 10)."""

from __future__ import annotations

import pytest

from talkbench.cli.main import main as cli


def _train(manifest, out, *extra: str) -> list[str]:
    return ["train", "motion", "--manifest", str(manifest), "--out", str(out), "--preset", "tiny", "--batch-size", "2",
            "--num-workers", "0", "--perceptual", "none-l1-pyramid", "--device", "cpu", *extra]


@pytest.mark.parametrize("value", ["0", "-3"])
def test_max_steps_below_one_is_refused_before_any_output(tiny_manifest, tmp_path, capsys, value):
    run = tmp_path / "run"
    assert cli(_train(tiny_manifest, run, "--max-steps", value)) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "--max-steps must be at least 1" in err and value in err
    assert "checkpoint" not in captured.out and not run.exists()


@pytest.mark.parametrize("option", ["--log-every", "--ckpt-every", "--batch-size"])
def test_other_counts_below_one_are_refused(tiny_manifest, tmp_path, capsys, option):
    run = tmp_path / "run"
    assert cli(_train(tiny_manifest, run, "--max-steps", "1", option, "0")) == 1
    assert f"{option} must be at least 1" in capsys.readouterr().err and not run.exists()


def test_an_existing_run_is_not_overwritten_without_resume(tiny_manifest, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(_train(tiny_manifest, run, "--max-steps", "1")) == 0
    before = (run / "last.pt").read_bytes()
    log_before = (run / "log.jsonl").read_text()
    capsys.readouterr()
    assert cli(_train(tiny_manifest, run, "--max-steps", "2")) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already holds a run" in err
    assert "--resume" in err and "another --out" in err
    assert (run / "last.pt").read_bytes() == before and (run / "log.jsonl").read_text() == log_before
    # --resume continues it.
    assert cli(_train(tiny_manifest, run, "--max-steps", "2", "--resume")) == 0
    assert "trained to step 2" in capsys.readouterr().out


def test_a_bad_manifest_leaves_no_empty_run_folder(tmp_path, capsys):
    run = tmp_path / "nested" / "run"
    assert cli(_train(tmp_path / "missing.parquet", run, "--max-steps", "1")) == 1
    assert "missing.parquet" in capsys.readouterr().err
    assert not run.exists() and not (tmp_path / "nested").exists()
