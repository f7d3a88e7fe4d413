"""Upper-body avatar generation: bad input is refused (or handled and recorded) before anything is written, the
streaming path is deterministic for a seed, and the CLI runs as a user types it. Untrained tiny checkpoints: these
tests are about the input checks and the plumbing; learning is shown in test_face_dit / test_body_hands /
test_kp_renderer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from talkbench.errors import ConfigError, MediaError
from talkbench.models import body_hands, checkpoints, face_dit, kp_renderer
from upper_material import BODY_TEMPLATE, espeak

E = 8


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """Tiny random-init checkpoints of the three parts (the face one with an expression basis), speech, portraits."""
    from PIL import Image
    from skimage import data

    from talkbench import media

    root = tmp_path_factory.mktemp("avatar")
    torch.manual_seed(0)
    parts = {"face": face_dit.FaceDiT(dataclasses.replace(face_dit.get_config("tiny"), expr_dim=E)),
             "body": body_hands.BodyHands(dataclasses.replace(body_hands.get_config("tiny"), expr_dim=E)),
             "render": kp_renderer.KeypointRenderer(dataclasses.replace(
                 kp_renderer.get_config("tiny"), expr_dim=E, size=(192, 128), channels=8))}
    paths = {}
    comps = np.linalg.qr(np.random.default_rng(0).standard_normal((936, E)))[0].T
    for name, model in parts.items():
        payload = {"model": model.state_dict(), "ema": model.state_dict(), "step": 0, "manifest_sha": "0" * 64,
                   "cfg": {"family": f"avatar-{name}", "model": model.cfg.to_dict(), "train": {}}}
        if name == "face":
            payload.update(basis_mean=torch.zeros(936), basis_components=torch.from_numpy(comps).float())
        paths[name] = checkpoints.save(root / f"{name}.pt", payload)
    speech = espeak("Hello there, nice to meet you.", root)
    wav = root / "speech.wav"
    media.write_wav(wav, speech)
    astro = data.astronaut()
    Image.fromarray(astro).save(root / "astronaut.png")
    wide = np.pad(astro, ((0, 0), (200, 56), (0, 0)), constant_values=128)  # 768×512 landscape, face right of centre
    Image.fromarray(wide).save(root / "landscape.png")
    media.write_video(root / "noface.mp4", np.full((10, 96, 64, 3), 128, np.uint8), fps=25.0)
    return {"root": root, "ckpt": paths, "wav": wav}


def _run(kit, out, **kw):
    from talkbench.models.avatar import generate_avatar

    c = kit["ckpt"]
    return generate_avatar(kw.pop("source", kit["root"] / "astronaut.png"), kit["wav"], out,
                           face_checkpoint=c["face"], body_checkpoint=c["body"], render_checkpoint=c["render"],
                           steps=2, **kw)


@pytest.mark.parametrize("amp", [0.4, 2.5])
def test_amplitude_outside_range_is_one_line_error(kit, tmp_path, amp):
    with pytest.raises(ConfigError, match=r"amplitude must be in \[0.5, 2.0\]") as e:
        _run(kit, tmp_path / "x.mp4", amplitude=amp)
    assert "\n" not in str(e.value) and not (tmp_path / "x.mp4").exists()


def test_style_reference_without_a_face_is_one_line_error(kit, tmp_path):
    with pytest.raises(MediaError, match="style reference .* no usable face") as e:
        _run(kit, tmp_path / "x.mp4", style_ref=kit["root"] / "noface.mp4")
    assert "\n" not in str(e.value) and not (tmp_path / "x.mp4").exists()


def test_landscape_without_hands_is_cropped_and_hands_off(kit, tmp_path):
    from talkbench import media

    out = tmp_path / "wide.mp4"
    rec = _run(kit, out, source=kit["root"] / "landscape.png")
    assert rec["crop"] is not None and rec["crop"][2:] == [341, 512]
    assert 300 < rec["crop"][0] + 170 < 700  # centred near the face (astronaut's face at x ≈ 200 + 250)
    assert rec["hands"] == "off" and any("no visible hands" in n for n in rec["notes"])
    frames = media.read_frames(out)
    assert frames.shape[1:3] == (192, 128) and abs(len(frames) - rec["frames"]) <= 1


def test_same_seed_same_stream(kit):
    from talkbench.media import read_audio
    from talkbench.models.avatar import AvatarModels, Source, stream

    c = kit["ckpt"]
    models = AvatarModels.load(c["face"], c["body"], c["render"])
    src = Source(models, np.zeros((96, 64, 3), np.uint8) + 100, np.zeros((1, E + 6), np.float32),
                 BODY_TEMPLATE.copy(), np.zeros((2, 21, 2), np.float32))
    audio = read_audio(kit["wav"], 16000)
    runs = [[f for f, _ in stream(models, src, audio, seed=s, steps=2)] for s in (1, 1, 2)]
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1]))
    assert any(not np.array_equal(a, b) for a, b in zip(runs[0], runs[2]))


def test_cli_generate_avatar_refuses_bad_hands(kit, tmp_path):
    import typer
    from typer.testing import CliRunner

    from talkbench.cli import avatar

    train, gen = typer.Typer(), typer.Typer()
    avatar.register(train, gen)
    app = typer.Typer()
    app.add_typer(gen, name="generate")
    app.add_typer(train, name="train")
    c = kit["ckpt"]
    res = CliRunner().invoke(app, ["generate", "avatar", "--source", str(kit["root"] / "astronaut.png"), "--audio",
                                   str(kit["wav"]), "--out", str(tmp_path / "o.mp4"), "--face-checkpoint",
                                   str(c["face"]), "--body-checkpoint", str(c["body"]), "--render-checkpoint",
                                   str(c["render"]), "--hands", "maybe"])
    assert res.exit_code != 0 and "unknown hands setting 'maybe'" in str(res.exception or res.output)
    assert not (tmp_path / "o.mp4").exists()


def test_train_refuses_bad_options_before_writing(tmp_path):
    from talkbench.errors import ManifestError
    from talkbench.models.train_avatar import TrainConfig, main

    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="unknown avatar part 'legs'; choose from"):
        main(TrainConfig(part="legs", data=str(tmp_path), out=str(out)))
    with pytest.raises(ValueError, match="unknown face_dit preset 'huge'"):
        main(TrainConfig(part="face", data=str(tmp_path), out=str(out), preset="huge"))
    with pytest.raises(ManifestError, match="no train clips"):
        main(TrainConfig(part="face", data=str(tmp_path), out=str(out)))
    assert not out.exists()


def test_train_face_resumes_where_it_stopped(kit, tmp_path):
    from talkbench.media import read_audio
    from talkbench.models import checkpoints as ck
    from talkbench.models.train_avatar import TrainConfig, main
    from upper_material import clip

    audio = read_audio(kit["wav"], 16000)
    c = clip(np.concatenate([audio, audio]), 16, 1.0, seed=0)
    data = tmp_path / "data"
    (data / "clips").mkdir(parents=True)
    n = c["n"]
    np.savez(data / "clips" / "a.npz", frames=np.zeros((n, 8, 8, 3), np.uint8), audio=c["audio"],
             expression=c["motion"][:, :16], pose6=c["motion"][:, 16:], body=c["body"], hands=c["hands"])
    cfg = dict(part="face", data=str(data), out=str(tmp_path / "run"), preset="tiny", batch_size=2, log_every=1)
    first = main(TrainConfig(**cfg, max_steps=2))
    again = main(TrainConfig(**cfg, max_steps=3, resume=True))
    assert first["step"] == 2 and again["step"] == 3 and [r["step"] for r in again["history"]] == [3]
    assert ck.load(tmp_path / "run" / "last.pt")["step"] == 3
    assert (tmp_path / "run" / "tb").is_dir()
