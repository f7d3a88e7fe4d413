"""Speech-driven chain end to end on real media (espeak-ng speech, the astronaut portrait): extract targets, train a
tiny audio2motion for a few steps, resume, generate an mp4 with the speech muxed; and every bad input refused with
one line before anything is written. Stage 1 is a random-init tiny checkpoint: these tests check plumbing and
refusals; learning is shown in test_audio2motion.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from talkbench.errors import ConfigError, MediaError
from talkbench.models import checkpoints

TRAIN_TEXTS = (
    "Talking heads need good lip sync. The quick brown fox jumps over the lazy dog, and then it runs away.",
    "A speech driven model must open the mouth when the voice is loud and close it in the pauses between words.",
    "Seven silver swans swam silently seaward. Pack my box with five dozen liquor jugs, please.",
    "We measure how the motion follows the envelope of the speech, frame by frame, at twenty five frames a second.",
)


def espeak(text: str, voice: str, folder) -> np.ndarray:
    import shutil

    from talkbench.media import read_audio

    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are needed for real speech (apt-get install espeak-ng sox)")
    wav = folder / f"{abs(hash((text, voice)))}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True, capture_output=True)
    return read_audio(wav, 16000)


def animated_astronaut(n: int, size: int) -> np.ndarray:
    """skimage's astronaut portrait with a slow pan (a real photo moving like a talking head)."""
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.astronaut())
    return np.stack([np.asarray(img.resize((size, size), Image.BILINEAR,
                                           box=(90 + 12 * np.sin(t / 5), 20, 390 + 12 * np.sin(t / 5), 320)))
                     for t in range(n)])


def motion_checkpoint(path: Path, seed: int = 0, **changes) -> Path:
    """A random-init stage-1 checkpoint of the tiny preset (or of a changed copy of it)."""
    import dataclasses

    from talkbench.models.motion import MotionGenerator, get_config

    cfg = dataclasses.replace(get_config("tiny"), **changes)
    torch.manual_seed(seed)
    state = MotionGenerator(cfg).state_dict()
    checkpoints.save(path, {"model": state, "ema": state, "cfg": {"model": cfg.to_dict(), "family": "motion"},
                            "step": 0, "manifest_sha": "0"})
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A random-init tiny stage-1 checkpoint and a random-init tiny audio2motion checkpoint made on it."""
    from talkbench.media import sha256_file
    from talkbench.models.audio2motion import Audio2Motion, get_config

    root = tmp_path_factory.mktemp("speech-pair")
    stage1 = motion_checkpoint(root / "stage1.pt")
    torch.manual_seed(0)
    state = Audio2Motion(get_config("tiny")).state_dict()
    checkpoints.save(root / "a2m.pt", {"model": state, "ema": state, "cfg": {"model": get_config("tiny").to_dict(),
                     "family": "audio2motion"}, "step": 0, "manifest_sha": "0",
                     "motion_checkpoint_sha": sha256_file(stage1)})
    return {"stage1": stage1, "ckpt": root / "a2m.pt", "speech": root}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """A train + a test clip with speech, the train clip's latents and targets, and a 4-step tiny run (resumed at 2)."""
    from talkbench import media
    from talkbench.manifests import write_table
    from talkbench.models.inference import extract_motion
    from talkbench.models.targets import extract_targets
    from talkbench.models.train_audio2motion import TrainConfig, main

    root = tmp_path_factory.mktemp("speech-chain")
    rows = []
    for k, (text, split) in enumerate(zip(TRAIN_TEXTS[:2], ("train", "test"))):
        audio = espeak(text, "en", root)
        n = len(audio) // 640
        rel = f"clips/c{k}.mp4"
        media.write_video(root / rel, animated_astronaut(n, 64), fps=25.0, audio=audio)
        rows.append({"clip_id": f"c{k}", "source_id": f"s{k}", "identity_id": "astronaut", "path": rel,
                     "n_frames": n, "fps": 25.0, "size": 64, "split": split, "has_audio": True})
    manifest = root / "clips.parquet"
    write_table(rows, manifest, "clips")
    stage1 = motion_checkpoint(root / "stage1.pt")
    extract_motion(manifest, stage1, root / "motion_latents.parquet", split="train")
    targets = extract_targets(manifest, root / "motion_targets.parquet", split="train", size=64)
    (root / "clips" / "c1.mp4").unlink()  # the test-split clip: training must never open it
    cfg = TrainConfig(manifest=str(manifest), motion_checkpoint=str(stage1), out=str(root / "run"), preset="tiny",
                      max_steps=2, batch_size=2, log_every=1, ckpt_every=2, progress=False)
    first = main(cfg)
    cfg.max_steps, cfg.resume = 4, True
    resumed = main(cfg)
    return {"root": root, "manifest": manifest, "stage1": stage1, "ckpt": root / "run" / "last.pt",
            "targets": targets, "first": first, "resumed": resumed, "speech": root}


@pytest.mark.slow
def test_targets_and_training_chain(chain):
    t = chain["targets"].to_pylist()
    assert [r["clip_id"] for r in t] == ["c0"]
    loc = np.array(t[0]["location"])
    assert 0.3 < loc.mean() < 0.7 and t[0]["missing_frames"] < 0.2 * t[0]["n_frames"]  # the astronaut's face is found
    assert chain["first"]["clips"] == 1  # the test-split clip is never read (its file is gone)
    ckpt = checkpoints.load(chain["ckpt"])
    assert ckpt["step"] == 4 and ckpt["cfg"]["family"] == "audio2motion"
    from talkbench.media import sha256_file

    assert ckpt["motion_checkpoint_sha"] == sha256_file(chain["stage1"])
    assert [r["step"] for r in chain["resumed"]["history"]] == [3, 4]
    assert (chain["root"] / "run" / "tb").is_dir()


def test_generate_speech_writes_mp4_with_speech(pair, tmp_path):
    chain = pair
    from skimage import data
    from PIL import Image

    from talkbench import media
    from talkbench.cli.main import main as cli

    portrait = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()[0:300, 80:380]).save(portrait)
    speech = chain["speech"] / "held.wav"
    audio = espeak(TRAIN_TEXTS[3], "en-us", tmp_path)
    # 44.1 kHz stereo input is resampled and recorded
    subprocess.run(["sox", "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw", "-",
                    "-r", "44100", "-c", "2", str(speech)], input=(audio * 32767).astype("<i2").tobytes(), check=True)
    out = tmp_path / "talk.mp4"
    code = cli(["generate", "speech", "--source", str(portrait), "--audio", str(speech), "--checkpoint",
                str(chain["ckpt"]), "--motion-checkpoint", str(chain["stage1"]), "--out", str(out), "--steps", "3",
                "--pose-yaw", "0.1", "--pose-pitch", "0", "--pose-roll", "0"])
    assert code == 0 and out.is_file()
    frames = media.read_frames(out)
    assert frames.shape[1:3] == (300, 300) and abs(len(frames) - len(audio) / 640) <= 1
    muxed = media.read_audio(out, 16000)
    assert muxed is not None and abs(len(muxed) - len(audio)) < 0.1 * len(audio)


def bad_inputs(chain, tmp_path):
    from skimage import data
    from PIL import Image

    from talkbench.media import write_wav

    good_png = tmp_path / "face.png"
    Image.fromarray(data.astronaut()[0:300, 80:380]).save(good_png)
    no_face = tmp_path / "wall.png"
    Image.fromarray(np.full((128, 128, 3), 90, np.uint8)).save(no_face)
    silent, short, text = tmp_path / "silent.wav", tmp_path / "short.wav", tmp_path / "notes.wav"
    write_wav(silent, np.zeros(16000 * 6, np.float32))
    write_wav(short, espeak("Hi there.", "en", tmp_path)[:16000])
    text.write_text("this is not audio\n")
    speech = tmp_path / "speech.wav"
    write_wav(speech, espeak(TRAIN_TEXTS[1], "en", tmp_path))
    other_stage1 = motion_checkpoint(tmp_path / "other.pt", seed=1)
    base_stage1 = tmp_path / "base.pt"
    return {"good_png": good_png, "no_face": no_face, "silent": silent, "short": short, "text": text,
            "speech": speech, "other_stage1": other_stage1, "base_stage1": base_stage1}


@pytest.mark.parametrize("case, pattern", [
    ("silent", "silent"), ("short", "shorter than one generation window"), ("text", "not an audio file"),
    ("no_face", "no face found"), ("other_stage1", "trained on stage-1 checkpoint"),
    ("base_stage1", "another preset"), ("a2m_is_stage1", "not an audio2motion checkpoint")])
def test_bad_input_is_refused_before_output(pair, tmp_path, case, pattern):
    chain = pair
    from talkbench.cli.main import main as cli

    files = bad_inputs(chain, tmp_path)
    args = {"source": files["good_png"], "audio": files["speech"], "checkpoint": chain["ckpt"],
            "motion_checkpoint": chain["stage1"]}
    if case in ("silent", "short", "text"):
        args["audio"] = files[case]
    elif case == "no_face":
        args["source"] = files["no_face"]
    elif case == "other_stage1":
        args["motion_checkpoint"] = files["other_stage1"]
    elif case == "base_stage1":
        args["motion_checkpoint"] = motion_checkpoint(files["base_stage1"], style_dim=32)
    elif case == "a2m_is_stage1":
        args["checkpoint"] = chain["stage1"]
    out = tmp_path / "out" / "talk.mp4"
    from talkbench.models.speech import generate_speech

    with pytest.raises((MediaError, ConfigError, checkpoints.CheckpointError), match=pattern) as info:
        generate_speech(args["source"], args["audio"], args["checkpoint"], args["motion_checkpoint"], out, steps=2)
    assert "\n" not in str(info.value)
    assert not out.exists() and not out.parent.exists()
    if case == "other_stage1":  # both hashes are named
        from talkbench.media import sha256_file

        assert sha256_file(files["other_stage1"]) in str(info.value)
        assert checkpoints.load(chain["ckpt"])["motion_checkpoint_sha"] in str(info.value)
    code = cli(["generate", "speech", "--source", str(args["source"]), "--audio", str(args["audio"]), "--checkpoint",
                str(args["checkpoint"]), "--motion-checkpoint", str(args["motion_checkpoint"]), "--out", str(out)])
    assert code == 1 and not out.exists()
