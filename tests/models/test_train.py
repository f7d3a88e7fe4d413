"""Training on real clips: the model learns (overfit one clip), CLUB falls, resume is exact, the CLI chain works."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch

from talkbench import media
from talkbench.errors import ConfigError
from talkbench.models import checkpoints
from talkbench.models.inference import ReenactModel, read_motion_latents
from talkbench.models.train_motion import TrainConfig, main

# The renderer starts as an exact copy of the source (identity warp, zero residual: tests/models/test_beats_static.py),
# so a one-clip "overfit" no longer starts from noise and its PSNR rise is not the learning signal any more; learning
# is shown against the static baseline on held-out identities in test_beats_static.py. Measured here (tiny, one
# 40-frame Megamind clip, batch 4, GAN off): training-batch PSNR 19-24 dB over the first 150 steps, then a collapse at
# lr 2e-3 (6 dB by step 300; 11 dB at lr 1e-3, 13 dB at 5e-4) while copying the source scores 18.5 dB. So this run
# checks the training outputs and the inference path only, in 20 steps (it was 100 before the CI-time cut).
OVERFIT_STEPS = 20


def cfg(manifest, out, **kw) -> TrainConfig:
    base = dict(manifest=str(manifest), out=str(out), preset="tiny", batch_size=4, device="cpu",
                perceptual="none-l1-pyramid", num_workers=0, log_every=10, image_every=100, ckpt_every=1000)
    base.update(kw)
    return TrainConfig(**base)


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(1, 2, 3))
    return float(np.mean(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))))


@pytest.mark.slow
def test_one_clip_run_writes_its_outputs(tiny_manifest, one_clip_manifest, tmp_path):
    from talkbench.models.train_motion import LossWeights

    result = main(cfg(one_clip_manifest, tmp_path / "run", max_steps=OVERFIT_STEPS, weights=LossWeights(gan=0.0)))
    hist = result["history"]
    assert result["step"] == OVERFIT_STEPS and len(hist) == OVERFIT_STEPS // 10
    frames = media.read_frames(tiny_manifest.parent / "clips/mm-a.mp4")
    model = ReenactModel.from_checkpoint(result["checkpoint"])
    out = np.stack(list(model.reenact(frames[0], frames, batch_size=16)))
    assert out.shape == frames.shape and out.dtype == np.uint8
    # Measured at 100 steps: 13.3 dB through ReenactModel (EMA weights) against 18.5 dB for the copy; one clip is not
    # where this renderer is judged (see the module comment), so no threshold is written here.
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "run" / "tb").iterdir())
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == OVERFIT_STEPS


@pytest.mark.slow
def test_club_estimate_falls(tiny_manifest, tmp_path):
    """Two identities: the encoder minimises the CLUB bound that the estimator keeps refitting.

    Measured (seed 0, 60 steps, an estimate every 5): from -0.007/-0.017/-0.010 to -0.075/-0.122/-0.103, falling
    almost monotonically. This is the in-training estimate, the quantity the method minimises; an estimator refitted
    from scratch on the codes of all frames after training reported 3.0 nats against 1.6 at init (120 steps), so CPU
    steps do not show real decoupling yet. 120 steps took twice as long and drive the estimate to -107, where the
    estimator no longer fits: 60 is the informative length.
    """
    result = main(cfg(tiny_manifest, tmp_path / "run", max_steps=60, log_every=5))
    club = [h["club"] for h in result["history"]]
    assert len(club) == 12
    assert np.mean(club[-3:]) < np.mean(club[:3]) - 0.03


def test_resume_is_exact_and_refuses_other_architecture(tiny_manifest, tmp_path):
    full = main(cfg(tiny_manifest, tmp_path / "full", max_steps=4, batch_size=2, log_every=1))
    main(cfg(tiny_manifest, tmp_path / "half", max_steps=2, batch_size=2, log_every=1))
    resumed = main(cfg(tiny_manifest, tmp_path / "half", max_steps=4, batch_size=2, log_every=1, resume=True))
    assert resumed["step"] == 4 and [h["step"] for h in resumed["history"]] == [3, 4]
    a, b = checkpoints.load(full["checkpoint"]), checkpoints.load(resumed["checkpoint"])
    assert a["step"] == b["step"] == 4
    for key in ("model", "ema", "disc", "club"):
        for name, tensor in a[key].items():
            torch.testing.assert_close(tensor, b[key][name], rtol=1e-4, atol=1e-5, msg=f"{key}.{name}")
    assert resumed["history"][-1]["l1"] == pytest.approx(full["history"][-1]["l1"], rel=1e-4)
    assert b["cfg"]["perceptual"] == "none-l1-pyramid" and b["manifest_sha"] == a["manifest_sha"]

    # a checkpoint of another architecture is refused by name
    b["cfg"]["model"]["style_dim"] = 128
    checkpoints.save(tmp_path / "half" / "last.pt", {k: v for k, v in b.items() if k != "format"})
    with pytest.raises(ConfigError, match="style_dim: run wants 64, checkpoint has 128"):
        main(cfg(tiny_manifest, tmp_path / "half", max_steps=6, batch_size=2, resume=True))


def speech_driver(path, frames: np.ndarray) -> None:
    """A driver clip with real (synthetic) speech from espeak-ng muxed in."""
    wav = path.with_suffix(".wav")
    subprocess.run(["espeak-ng", "-w", str(wav), "motion model test"], check=True, capture_output=True)
    media.write_video(path, frames, fps=25.0, audio=wav)


@pytest.mark.slow
def test_cli_train_generate_extract(tiny_manifest, tmp_path):
    from PIL import Image
    from skimage import data

    from talkbench.cli.main import main as cli

    run = tmp_path / "run"
    assert cli(["train", "motion", "--manifest", str(tiny_manifest), "--out", str(run), "--preset", "tiny",
                "--max-steps", "2", "--batch-size", "2", "--num-workers", "0", "--device", "cpu",
                "--perceptual", "none-l1-pyramid"]) == 0
    ckpt = run / "last.pt"
    assert checkpoints.load(ckpt)["cfg"]["perceptual"] == "none-l1-pyramid"

    source = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((96, 96)).save(source)
    driver = tmp_path / "driver.mp4"
    speech_driver(driver, media.read_frames(tiny_manifest.parent / "clips/mm-b.mp4")[:30])
    out = tmp_path / "out.mp4"
    assert cli(["generate", "reenact", "--source", str(source), "--driver", str(driver), "--checkpoint", str(ckpt),
                "--out", str(out), "--batch-size", "8"]) == 0
    frames = media.read_frames(out)
    assert frames.shape == (30, 96, 96, 3)
    audio = media.read_audio(out)
    assert audio is not None and np.abs(audio).max() > 0.05  # the driver's speech is muxed in

    latents = tmp_path / "latents.parquet"
    assert cli(["extract-motion", "--manifest", str(tiny_manifest), "--checkpoint", str(ckpt),
                "--out", str(latents)]) == 0
    table = read_motion_latents(latents).to_pylist()
    assert [r["clip_id"] for r in table] == ["astro-a", "mm-a", "mm-b"]
    assert np.array(table[0]["motion"]).shape == (40, 20) and len(table[0]["identity"]) == 64

    assert cli(["models", "summary", "motion", "--preset", "tiny"]) == 0

    # the bench engineer's `bench run --method ours` goes through the same ReenactModel path
    from talkbench.cli.bench import main as bench_cli
    from talkbench.manifests import read_rows, write_table

    rows = read_rows(tiny_manifest, "clips")
    test_row = dict(rows[0], clip_id="astro-test", identity_id="held-out", split="test")
    with_test = tiny_manifest.parent / "with-test.parquet"
    write_table(rows + [test_row], with_test, "clips")
    bench_out = tmp_path / "bench"
    assert bench_cli(["run", "--method", "ours", "--checkpoint", str(ckpt), "--task", "self-reenact",
                      "--manifest", str(with_test), "--out", str(bench_out), "--quiet", "--bootstrap", "50"]) == 0
    results = read_rows(bench_out / "results.parquet", "results")
    psnr = [r for r in results if r["metric"] == "psnr"]
    assert [(r["method"], r["clip_id"]) for r in psnr] == [("ours", "astro-test")]
    assert 5 < psnr[0]["value"] < 60


def test_cli_errors_are_one_line(tiny_manifest, tmp_path, capsys):
    from talkbench.cli.main import main as cli

    assert cli(["generate", "reenact", "--source", "x.png", "--driver", "y.mp4", "--checkpoint",
                str(tmp_path / "none.pt"), "--out", str(tmp_path / "o.mp4")]) == 1
    assert "no such checkpoint file" in capsys.readouterr().err
    assert cli(["train", "motion", "--manifest", str(tiny_manifest), "--out", str(tmp_path / "r"), "--preset",
                "tiny", "--max-steps", "1", "--num-workers", "0", "--device", "cpu"]) == 1
    assert "none-l1-pyramid" in capsys.readouterr().err  # no VGG19 installed: the alternative is named


def test_reenact_streams_chunks_and_single_frames(tiny_manifest, tmp_path):
    from talkbench.models.motion import PRESETS, MotionGenerator

    torch.manual_seed(0)
    model = ReenactModel(MotionGenerator(PRESETS["tiny"]))
    frames = media.read_frames(tiny_manifest.parent / "clips/mm-a.mp4")[:11]
    whole = np.stack(list(model.reenact(frames[0], [frames], batch_size=4)))
    mixed = np.stack(list(model.reenact(frames[0], [frames[:3], frames[3], frames[4:]], batch_size=5)))
    single = np.stack(list(model.reenact(frames[0], iter(frames), batch_size=1)))
    assert whole.shape == (11, 64, 64, 3)
    assert np.abs(whole.astype(int) - mixed.astype(int)).max() <= 1  # chunking never changes a frame
    assert np.abs(whole.astype(int) - single.astype(int)).max() <= 1


@pytest.mark.slow
def test_torchrun_two_ranks_on_cpu(tiny_manifest, tmp_path):
    """The same script under torchrun (DDP over gloo): both ranks step, rank 0 writes one checkpoint."""
    import os
    import shutil
    import sys

    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29531", "-m",
                           "talkbench.models.train_motion", "--manifest", str(tiny_manifest), "--out", str(out),
                           "--preset", "tiny", "--max-steps", "2", "--batch-size", "2", "--device", "cpu",
                           "--perceptual", "none-l1-pyramid", "--num-workers", "0"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = checkpoints.load(out / "last.pt")
    assert ckpt["step"] == 2 and ckpt["cfg"]["train"]["batch_size"] == 2
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [2]
