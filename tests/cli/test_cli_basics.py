"""Every command of `curate`, `bench` and `talkbench` has --help; errors are one line and exit 1; --debug shows
the traceback; `talkbench manifests schema` prints the schemas."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from talkbench.cli import bench, curate
from talkbench.cli import main as talkbench
from talkbench.manifests.schemas import TABLES

SCRIPTS = {"curate": curate, "bench": bench, "talkbench": talkbench}


def _is_group(command) -> bool:
    # typer >= 0.20 vendors click (typer._click), so duck-type instead of isinstance(click.Group).
    return hasattr(command, "commands")


def _walk(command, path: tuple[str, ...] = ()):
    yield path, command
    if _is_group(command):
        for name, sub in sorted(command.commands.items()):
            yield from _walk(sub, path + (name,))


def _all_commands():
    for script, module in SCRIPTS.items():
        for path, command in _walk(typer.main.get_command(module.app)):
            yield pytest.param(script, path, command, id=" ".join((script,) + path))


@pytest.mark.parametrize("script, path, command", list(_all_commands()))
def test_every_command_has_help(script, path, command, capsys):
    assert (command.help or command.short_help or "").strip(), f"{script} {' '.join(path)} has no help text"
    code = SCRIPTS[script].main([*path, "--help"])
    out = capsys.readouterr().out
    assert code == 0 and "Usage:" in out and "--help" in out
    for param in command.params:
        if param.param_type_name == "option" and not getattr(param, "hidden", False) and param.name != "help":
            assert (param.help or "").strip(), f"{script} {' '.join(path)} option {param.opts} has no help"


def test_the_three_scripts_exist_with_their_main_groups():
    groups = {name: sorted(typer.main.get_command(m.app).commands) for name, m in SCRIPTS.items()
              if _is_group(typer.main.get_command(m.app))}
    assert {"sources", "build-manifest"} <= set(groups["curate"])
    assert {"curate", "bench", "manifests"} <= set(groups["talkbench"])


def test_errors_are_one_line_with_exit_1(tmp_path, capsys):
    code = curate.main(["build-manifest", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: ") and "nope.csv: no such file" in err
    code = talkbench.main(["manifests", "schema", "nope"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "unknown table 'nope'" in err


def test_usage_errors_are_one_line_too(capsys):
    assert curate.main(["build-manifest"]) == 2  # click's usage-error code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Missing argument" in err
    assert "curate build-manifest --help" in err


def test_debug_shows_the_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "from talkbench.cli.curate import main; main()", "build-manifest",
                           str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o"), "--debug"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "SourceListError" in proc.stderr
    quiet = subprocess.run([sys.executable, "-c", "from talkbench.cli.curate import main; main()", "build-manifest",
                            str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr and quiet.stderr.count("\n") == 1


def test_manifests_schema_prints(capsys):
    assert talkbench.main(["manifests", "schema"]) == 0
    out = capsys.readouterr().out
    for name in TABLES:
        assert name in out
    assert talkbench.main(["manifests", "schema", "videos"]) == 0
    out = capsys.readouterr().out
    for column in ("source_id", "error_class", "is_vfr", "segments", "norm_audio_rate"):
        assert column in out
