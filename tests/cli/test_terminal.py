"""The terminal a researcher meets: no native log noise, conventions (--version, -h, python -m), one way to refuse a
bad --workers/--device/choice, listings that survive 80 columns and pipes, --json, short error lines, weights fetch
--for, run metadata and `bench runs`. CLI output is captured piped (subprocess) at COLUMNS=80."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from talkbench.cli import main as talkbench
from talkbench.cli._quiet import is_noise

MEGAMIND = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"
SRC = str(Path(__file__).resolve().parents[2] / "src")
NOISE_LINES = [
    "W0000 00:00:1795853938.636175   29876 inference_feedback_manager.cc:114] Feedback manager requires a model with "
    "a single signature inference. Disabling support for feedback tensors.",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "W0000 00:00:1795853938.709067   29875 landmark_projection_calculator.cc:186] Using NORM_RECT without "
    "IMAGE_DIMENSIONS is only supported for the square ROI.",
]


def _load_conftest(folder: str):
    """Another test folder's builders (no conftest.py here: the bench tests import theirs as `conftest`)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / folder / "conftest.py"
    spec = importlib.util.spec_from_file_location(f"_{folder}_conftest_for_cli", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def clip_manifest(tmp_path_factory) -> Path:
    """The bench tests' small manifest: real Megamind/astronaut frames with espeak-ng audio."""
    return _load_conftest("bench").build_manifest(tmp_path_factory.mktemp("cli_clips"), n=12)


def _env(**more) -> dict:
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("TALKBENCH_NATIVE_LOGS", None)
    return {**env, **more}


def talk(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    """`python -m talkbench ARGS`, piped, 80 columns."""
    return subprocess.run([sys.executable, "-m", "talkbench", *map(str, args)], capture_output=True, text=True,
                          env=env or _env(), timeout=timeout)


def test_noise_patterns_match_the_native_lines_and_nothing_else():
    assert all(is_noise(line.encode()) for line in NOISE_LINES)
    # two workers' TFLite notices interleaved (it writes "INFO: ", the message and the newline in separate calls)
    assert is_noise(b"INFO: INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    assert is_noise(b"Created TensorFlow Lite XNNPACK delegate for CPU.")
    for keep in ("error: /x.csv: no such file", "E0000 00:00:1.0 12 calculator_graph.cc:9] real failure",
                 "[clips] 3/4 done, 0 failed, 0.20/s, ETA 5s", "WARNING: something of ours"):
        assert not is_noise(keep.encode()), keep


def test_the_filter_covers_child_processes_and_lets_real_lines_through(tmp_path):
    # C-level writes to fd 2 from this process and from a spawned child, as MediaPipe's do; Python lines pass.
    (tmp_path / "child.py").write_text(f"import os\nos.write(2, {(NOISE_LINES[2] + chr(10) + 'child kept' + chr(10))!r}"
                                       f".encode())\n")
    (tmp_path / "parent.py").write_text(
        "import os, sys, subprocess\n"
        "from talkbench.cli._quiet import silence_native_logs\n"
        "silence_native_logs()\n"
        f"os.write(2, {(NOISE_LINES[1] + chr(10) + NOISE_LINES[0] + chr(10) + 'native kept' + chr(10))!r}.encode())\n"
        f"subprocess.run([sys.executable, {str(tmp_path / 'child.py')!r}])\n"
        "print('python kept', file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, str(tmp_path / "parent.py")], capture_output=True, text=True, env=_env(),
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stderr.splitlines()) == ["child kept", "native kept", "python kept"], proc.stderr


@pytest.mark.slow
def test_curate_and_bench_print_no_native_log_lines(tmp_path, clip_manifest):
    """A real curate (MediaPipe faces on Megamind.avi) and a bench run with 2 spawned workers (MediaPipe mesh for
    AKD): stderr holds progress records and errors, never MediaPipe/TFLite lines (both print them with
    TALKBENCH_NATIVE_LOGS=1, which turns the filter off)."""
    (tmp_path / "s.csv").write_text(f"url,start,end,identity\n{MEGAMIND},0,3,mm\n")
    every = _env(TALKBENCH_PROGRESS_EVERY="0")  # a record on every update: short stages print them too
    curate = talk("curate", "build-manifest", tmp_path / "s.csv", "--out", tmp_path / "data", env=every)
    bench = talk("bench", "run", "--method", "static", "--task", "self-reenact", "--manifest", clip_manifest,
                 "--out", tmp_path / "run", "--limit", "2", "--workers", "2", "--metrics", "akd", "--bootstrap", "10",
                 env=every)
    assert bench.returncode == 0, bench.stderr
    assert "[clips] 2/2 done, 0 failed" in bench.stderr  # the off-terminal progress record
    assert "[faces] 1/1 done" in curate.stderr  # MediaPipe ran (its lines appear without the filter: see above)
    for proc in (curate, bench):
        for line in proc.stderr.splitlines() + proc.stdout.splitlines():
            assert not is_noise(line.encode()) and "TensorFlow Lite" not in line and "absl" not in line, line


def test_version_help_and_module_entry_points():
    from talkbench import __version__

    for argv in (["-m", "talkbench", "--version"], ["-m", "talkbench.cli.main", "--version"],
                 ["-m", "talkbench.cli.bench", "--version"]):
        proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=_env(), timeout=60)
        assert proc.returncode == 0 and proc.stdout.strip() == f"talkbench {__version__}", (argv, proc.stderr)
    proc = talk("bench", "run", "-h")
    assert proc.returncode == 0 and "--metrics" in proc.stdout and "--name" in proc.stdout


@pytest.mark.parametrize("argv, option", [
    (["bench", "run", "--method", "static", "--task", "nope", "--manifest", "m", "--out", "o"], "--task"),
    (["bench", "run", "--method", "nope", "--task", "self-reenact", "--manifest", "m", "--out", "o"], "--method"),
    (["bench", "run", "--method", "static", "--task", "self-reenact", "--manifest", "m", "--out", "o",
      "--executor", "slurm"], "--executor"),
    (["bench", "run", "--method", "static", "--task", "self-reenact", "--manifest", "m", "--out", "o",
      "--workers", "0"], "--workers"),
    (["curate", "build-manifest", "s.csv", "--out", "o", "--workers", "0"], "--workers"),
    (["demo", "run", "o", "--workers", "0"], "--workers"),
    (["bench", "run", "--method", "static", "--task", "self-reenact", "--manifest", "m", "--out", "o",
      "--metrics", "psnr,fvdd"], "--metrics"),
])
def test_bad_choices_and_workers_exit_2_with_one_line(argv, option, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert talkbench.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: Invalid value for") and option in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv", [
    ["bench", "run", "--method", "static", "--task", "self-reenact", "--manifest", "m", "--out", "o"],
    ["metrics", "compute", "--pred", "a.mp4", "--gt", "b.mp4", "--metrics", "psnr", "--out", "o.parquet"],
    ["train", "motion", "--manifest", "m", "--out", "o"],
    ["generate", "reenact", "--source", "a.png", "--driver", "b.mp4", "--checkpoint", "c.pt", "--out", "o.mp4"],
])
def test_cuda_without_a_gpu_is_refused_the_same_way_everywhere(argv, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert talkbench.main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Invalid value for '--device': cuda: no CUDA GPU is visible" in err and "use --device cpu" in err


def test_weights_list_is_greppable_at_80_columns_piped_and_has_json(capsys):
    proc = talk("weights", "list")
    assert proc.returncode == 0, proc.stderr
    names = [line for line in proc.stdout.splitlines() if "fid-inception" in line]
    assert len(names) == 2 and not any("…" in line for line in proc.stdout.splitlines())  # fid and clean-fid
    assert max(len(line) for line in proc.stdout.splitlines() if line[:1] in "┏┃┡│└") <= 80
    assert talkbench.main(["weights", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"fid-inception", "syncnet", "lpips-alex"} <= {r["name"] for r in rows}
    assert all(set(r) >= {"name", "file", "installed", "official_hash", "size", "licence"} for r in rows)


@pytest.mark.parametrize("argv, key", [(["bench", "methods"], "method"), (["bench", "tasks"], "task"),
                                       (["weights", "verify"], "name")])
def test_every_listing_takes_json(argv, key, capsys):
    assert talkbench.main([*argv, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert isinstance(rows, list) and all(key in r for r in rows)


def test_bench_methods_never_cut_a_method_name_at_80_columns():
    out = talk("bench", "methods").stdout
    assert "folder:PATH" in out and "…" not in out
    assert max(len(line) for line in out.splitlines() if line[:1] in "┏┃┡│└") <= 80


def test_weights_import_of_a_random_file_is_one_short_line(tmp_path):
    bad = tmp_path / "rand.bin"
    bad.write_bytes(os.urandom(4096))
    proc = talk("weights", "import", bad, "--as", "syncnet", env=_env(TALKBENCH_HOME=str(tmp_path / "home")))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    line = proc.stderr.strip()
    assert len(line) < 200 and str(bad) in line and "syncnet" in line and "weights_only=True" in line, line
    assert "weights_only=False" not in line and "arbitrary code" not in line


def test_weights_fetch_for_a_protocol_tries_everything_and_prints_one_table(monkeypatch, capsys, tmp_path):
    from talkbench import weights
    from talkbench.errors import WeightsError

    def offline(url, dest, **kw):
        raise WeightsError(f"{url}: network unreachable")

    monkeypatch.setattr("talkbench.weights.store.download", offline)
    assert talkbench.main(["weights", "fetch", "--for", "talkbench-v1-256"]) == 1
    captured = capsys.readouterr()
    out = captured.out
    assert "lpips-alex" in out and "fetched" in out or weights.is_installed("lpips-alex")  # offline local source
    for name in ("fid-inception", "syncnet", "i3d", "buffalo_l"):
        assert f"talkbench weights import " in out and f"--as {name}" in out
    assert "weights entries missing" in captured.err and captured.err.count("\n") == 1
    assert talkbench.main(["weights", "fetch", "--for", "talkbench-v9"]) == 2
    assert "unknown protocol 'talkbench-v9'" in capsys.readouterr().err
    assert talkbench.main(["weights", "fetch"]) == 2


def test_run_metadata_name_metrics_and_bench_runs(tmp_path, clip_manifest):
    out = tmp_path / "runs" / "static-a"
    proc = talk("bench", "run", "--method", "static", "--task", "self-reenact", "--manifest", clip_manifest, "--out",
                out, "--limit", "1", "--metrics", "psnr,ssim", "--name", "static-a", "--bootstrap", "10")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["command"][:3] == ["talkbench", "bench", "run"] and "--name" in meta["command"]
    assert meta["status"] == "partial" and meta["device"] == "cpu" and meta["host"] and meta["started"]
    assert meta["protocol_digest"] and set(meta["stages_s"]) == {"clips"} and len(meta["clips_s"]) == 1
    assert set(next(iter(meta["clips_s"].values()))) == {"decode", "generate", "encode", "write", "metrics"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"] is True and set(summary["metrics"]) == {"psnr", "ssim"}
    import pyarrow.parquet as pq

    assert set(pq.read_table(out / "results.parquet").column("method").to_pylist()) == {"static-a"}
    listing = talk("bench", "runs", tmp_path / "runs")
    assert listing.returncode == 0 and "static-a" in listing.stdout and "partial" in listing.stdout
    rows = json.loads(talk("bench", "runs", tmp_path / "runs", "--json").stdout)
    assert rows[0]["name"] == "static-a" and rows[0]["clips"] == "1/1" and rows[0]["metrics"] == "subset: psnr,ssim"


@pytest.mark.slow
def test_train_prints_step_loss_psnr_rate_off_a_terminal_and_writes_meta(tmp_path):
    manifest = _load_conftest("models").build_manifest(tmp_path / "data")
    run = tmp_path / "run"
    proc = talk("train", "motion", "--manifest", manifest, "--out", run, "--preset", "tiny", "--max-steps", "2",
                "--batch-size", "2", "--num-workers", "0", "--device", "cpu", "--perceptual", "none-l1-pyramid",
                "--log-every", "1", env=_env(OMP_NUM_THREADS="1"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    records = [line for line in proc.stderr.splitlines() if line.startswith("[train motion]")]
    assert re.search(r"\[train motion\] 1/2 done, 0 failed, [\d.]+/s, ETA \S+  step 1 loss [\d.e+-]+ PSNR [\d.]+ dB "
                     r"[\d.]+ steps/s", "\n".join(records)), records
    assert any(" 2/2 done" in line for line in records)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["kind"] == "train" and meta["status"] == "complete" and meta["step"] == 2
    assert meta["command"][:3] == ["talkbench", "train", "motion"] and meta["wall_s"] > 0 and meta["host"]


def test_bench_publish_console_table_never_cuts_method_names(tmp_path):
    from talkbench.manifests import get_protocol, write_table

    proto = "talkbench-v1-256"
    files = []
    for method, base in (("folder:outputs/sadtalker-reproduced-2024", 24.0), ("ours-step040000-ema", 27.0)):
        rows = [{"metric": m, "clip_id": f"c{i}", "value": base + i + k, "n": 19}
                for i in range(3) for k, m in enumerate(("psnr", "ssim", "lpips", "akd"))]
        common = {"protocol_id": proto, "protocol_digest": get_protocol(proto).digest, "protocol_standard": True,
                  "method": method, "task": "self-reenact", "split": "test", "talkbench_version": "0.1.0"}
        folder = tmp_path / method.replace("/", "_").replace(":", "_")
        folder.mkdir()
        write_table([{**common, **r} for r in rows], folder / "results.parquet", "results")
        files.append(folder)
    proc = talk("bench", "publish", *files, "--out", tmp_path / "lb", "--format", "md")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for name in ("folder:outputs/sadtalker-reproduced-2024", "ours-step040000-ema", "AniTalker (reported"):
        assert any(name in line for line in lines), (name, proc.stdout)
    assert "…" not in proc.stdout


def test_off_a_terminal_a_record_comes_at_least_every_period_even_during_one_long_item():
    import io
    import time

    from talkbench.runtime.progress import Bar

    stream = io.StringIO()
    with Bar(4, "clips", every=0.2, stream=stream, tty=False) as bar:
        time.sleep(0.75)  # one slow clip: no advance, the heartbeat still reports
        bar.advance(failed=1, note="psnr 27.31")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[clips] 0/4 done, 0 failed, 0.00/s, ETA ?"
    assert sum(line.startswith("[clips] 0/4 done") for line in lines) >= 3
    assert re.fullmatch(r"\[clips\] 1/4 done, 1 failed, [\d.]+/s, took \d+s  psnr 27.31", lines[-1]), lines
