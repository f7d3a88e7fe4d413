"""The audio→motion options that let stage 2 learn a small mouth under large head motion (issue 10): the teacher-forced,
standardised variance adapter, the mouth stretch of the diffusion normalisation, the mouth-weighted ε loss, the random
hint, and the lip gap in the targets. Unit-level and synthetic; the learning itself is test_speech_learning.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from talkbench.models.audio2motion import PRESETS, Audio2Motion
from talkbench.models.diffusion import EpsDenoiser

TALK = dataclasses.replace(PRESETS["tiny-talk"], window=12, overlap=3, decoder_blocks=1, kernel=3)


def model(seed=0, **kw):
    torch.manual_seed(seed)
    return Audio2Motion(dataclasses.replace(TALK, **kw))


def batch(b=3, t=TALK.window, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"motion": torch.randn(b, t, 20, generator=g), "hint": torch.randn(b, 20, generator=g),
            "identity": torch.randn(b, TALK.identity_dim, generator=g),
            "audio": torch.randn(b, 4 * t, 39, generator=g), "location": 0.5 + 0.02 * torch.randn(b, t, 1, generator=g),
            "scale": 0.3 + 0.01 * torch.randn(b, t, 1, generator=g), "pose": 0.04 * torch.randn(b, t, 3, generator=g)}


def test_tiny_talk_preset_and_its_buffers():
    cfg = PRESETS["tiny-talk"]
    assert cfg.teacher_forcing and cfg.standardize_targets and cfg.mouth_stretch
    assert cfg.motion_preset == "tiny-mouth"
    keys = set(Audio2Motion(cfg).state_dict())
    assert {"diffusion.stretch_dir", "diffusion.stretch_gain", "net.adapter.pose_mean", "net.adapter.pose_std"} <= keys
    # the other presets keep their state dicts (their checkpoints still load)
    plain = set(Audio2Motion(PRESETS["tiny-mouth"]).state_dict())
    assert not any("stretch" in k or k.endswith("_mean") and "adapter" in k for k in plain)


def test_teacher_forcing_feeds_the_targets_to_the_denoiser():
    """With teacher forcing the ε loss depends on the pose/location/scale targets (the encoders see them); without it,
    only the adapter's own MSEs do (AniTalker: the encoders see the predictions)."""
    a, b = batch(), batch()
    b["pose"] = b["pose"] + 0.05
    for forced in (True, False):
        m = model(teacher_forcing=forced).eval()
        la = m.losses(a, torch.Generator().manual_seed(1))
        lb = m.losses(b, torch.Generator().manual_seed(1))
        assert bool(la["eps"] != lb["eps"]) is forced
        assert bool(la["pose"] != lb["pose"])


def test_standardisation_uses_train_statistics_and_keeps_anitalker_units_outside():
    m = model().eval()
    ad = m.net.adapter
    tg = batch(b=8)
    ad.fit_standardization({k: tg[k] for k in ad.names})
    torch.testing.assert_close(ad.pose_mean, tg["pose"].reshape(-1, 3).mean(0))
    torch.testing.assert_close(ad.scale_std, tg["scale"].reshape(-1, 1).std(0))
    z = ad.standardize("pose", tg["pose"])
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 0.05
    torch.testing.assert_close(ad.unstandardize("pose", z), tg["pose"])
    # predictions come back in AniTalker's units: around the train mean, not around 0
    x = torch.zeros(1, 5, TALK.speech_dim)
    _, preds = ad(x)
    assert (preds["scale"] - ad.scale_mean).abs().max() < 10 * ad.scale_std.max()
    assert preds["scale"].mean() > 0.2
    # a constant control equal to the train mean is a standardised zero for the encoder
    given = {k: getattr(ad, f"{k}_mean").expand(1, 5, -1) for k in ad.names}
    out_mean, _ = ad(x, given, control=True)
    zero_enc = x + sum(ad.encoders[k](torch.zeros(1, 5, v.shape[-1])) for k, v in given.items())
    torch.testing.assert_close(out_mean, zero_enc)


def test_stretch_is_exact_and_spans_the_unit_range():
    net = torch.nn.Identity()
    den = EpsDenoiser(net, 4, stretch=True)
    g = torch.Generator().manual_seed(0)
    u = torch.tensor([0.5, 0.5, 0.5, 0.5])
    head = torch.randn(500, 4, generator=g) @ (torch.eye(4) - torch.outer(u, u))  # large, orthogonal to u
    x = head + 0.02 * torch.randn(500, 1, generator=g) * u  # a small component along u
    den.fit_normalization(x)
    plain = den.normalize(x)  # zero stretch direction: the per-dimension normalisation only
    gain = den.fit_stretch(u, plain @ u)
    assert gain > 10
    xs = den.normalize(x)
    dev = (xs @ u - (xs @ u).mean()).abs()
    assert abs(float(torch.quantile(dev, 0.999)) - 1) < 1e-4  # the stretched direction spans [-1, 1] like a dimension
    rest = torch.eye(4) - torch.outer(u, u)
    torch.testing.assert_close(xs @ rest, plain @ rest)  # everything orthogonal to u is untouched
    torch.testing.assert_close(xs @ u, gain * (plain @ u))
    torch.testing.assert_close(den.denormalize(xs), x, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="stretch=False"):
        EpsDenoiser(net, 4).fit_stretch(u, plain @ u)


def test_direction_weight_adds_the_error_along_the_direction():
    class Zero(torch.nn.Module):  # predicts ε̂ = 0: the error is −ε
        def forward(self, x_t, c, cond, drop):
            return torch.zeros_like(x_t), {}

    den = EpsDenoiser(Zero(), 5, output="eps")
    x0 = torch.randn(4, 6, 5)
    u = torch.nn.functional.normalize(torch.randn(5), dim=0)
    plain, _ = den.loss(x0, {}, torch.Generator().manual_seed(3))
    weighted, _ = den.loss(x0, {}, torch.Generator().manual_seed(3), u, 2.0)
    g = torch.Generator().manual_seed(3)
    torch.randint(0, 1000, (4,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    torch.testing.assert_close(plain, noise.pow(2).mean())
    torch.testing.assert_close(weighted, noise.pow(2).mean() + 2.0 * (noise @ u).pow(2).mean())


def test_new_buffers_follow_to_meta():
    m = model().to("meta")
    assert m.diffusion.stretch_dir.device.type == "meta" and m.net.adapter.location_std.device.type == "meta"
    r = model(relative=True).to("meta")
    assert r.hint_mean.device.type == "meta" and r.hint_scale.device.type == "meta"


def test_relative_models_the_motion_minus_the_hint():
    """``relative`` (the tiny-turn preset): the diffusion is fitted on within-clip differences and the hint on the
    codes; generated motion is the hint plus a sample, so x0 clipping keeps it within the train clips' range of
    motion around ANY hint, where the absolute model returns to the codes' overall range."""
    assert PRESETS["tiny-turn"].relative and PRESETS["tiny-turn"].motion_preset == "tiny-turn"
    assert not PRESETS["tiny-talk"].relative  # the committed tiny-talk checkpoints keep their meaning
    g = torch.Generator().manual_seed(0)
    # three clips: identity offsets of ±5, motion within a clip of about ±0.3
    clips = [off + 0.1 * torch.randn(40, 20, generator=g) for off in (-5.0, 0.0, 5.0)]
    rel, ab = model(relative=True), model()
    diffs = rel.fit_normalization(clips)
    ab.fit_normalization(clips)
    assert float(rel.hint_scale.min()) > 4 and float(rel.diffusion.data_scale.max()) < 1  # codes vs differences
    assert float(ab.diffusion.data_scale.min()) > 4
    assert diffs.shape == (3 * 40 * 8, 20)
    hint = torch.full((1, 20), 30.0)  # far outside every clip
    audio = torch.randn(1, 4 * TALK.window, 39, generator=g)
    ident = torch.zeros(1, TALK.identity_dim)
    out_rel = rel.generate(audio, hint, ident, steps=4)["motion"]
    out_ab = ab.generate(audio, hint, ident, steps=4)["motion"]
    lo, hi = rel.diffusion.data_mean - rel.diffusion.data_scale, rel.diffusion.data_mean + rel.diffusion.data_scale
    assert bool(((out_rel - hint >= lo - 1e-4) & (out_rel - hint <= hi + 1e-4)).all())  # around the hint
    assert float((out_ab - hint).abs().min()) > 10  # the absolute model cannot leave the codes' range
    x = torch.randn(2, 5, 20, generator=g)
    h = torch.randn(2, 20, generator=g)
    torch.testing.assert_close(rel.from_diffusion(rel.to_diffusion(x, h), h), x)
    torch.testing.assert_close(rel.to_diffusion(x, h), x - h[:, None])
    torch.testing.assert_close(ab.to_diffusion(x, h), x)


def test_mouth_direction_finds_a_planted_direction_and_hint_random_moves_the_hint():
    from talkbench.models.train_audio2motion import SpeechMotionWindows

    g = torch.Generator().manual_seed(0)
    v = torch.nn.functional.normalize(torch.randn(20, generator=g), dim=0)
    data = SpeechMotionWindows.__new__(SpeechMotionWindows)
    data.window, data.seed, data.hint_random = 10, 0, 0.0
    data.clips = []
    for k in range(3):
        gap = torch.rand(60, generator=g)
        data.clips.append({"clip_id": f"c{k}", "n": 60, "motion": gap[:, None] * v + 0.01 * torch.randn(60, 20,
                                                                                                        generator=g)
                           + torch.randn(20, generator=g),  # a per-clip offset the probe must ignore
                           "lip_gap": gap, "identity": torch.zeros(4), "audio": torch.zeros(240, 39),
                           "pose": torch.zeros(60, 3), "location": torch.zeros(60, 1), "scale": torch.zeros(60, 1)})
    u, r = data.mouth_direction(lambda x: x)
    assert abs(float(u @ v)) > 0.9 and r > 0.99
    same = [data[i] for i in range(20)]
    data.hint_random = 1.0
    moved = [data[i] for i in range(20)]
    for a, b in zip(same, moved):
        torch.testing.assert_close(a["motion"], b["motion"])  # the same windows

    def is_previous_frame(item) -> bool:
        for c in data.clips:
            for i in range(1, 60):
                if torch.equal(c["motion"][i], item["motion"][0]):
                    return torch.equal(c["motion"][i - 1], item["hint"])
        raise AssertionError("window not found")

    assert all(is_previous_frame(a) for a in same)  # AniTalker: the frame just before the window
    assert sum(not torch.equal(a["hint"], b["hint"]) for a, b in zip(same, moved)) >= 15
    data.clips[0]["lip_gap"] = None
    from talkbench.errors import ManifestError

    with pytest.raises(ManifestError, match="no lip_gap.*re-run talkbench extract-targets"):
        data.mouth_direction(lambda x: x)


def test_targets_carry_the_lip_gap():
    from talkbench.faces.detect import mesh_landmarks
    from talkbench.models.targets import targets_from_landmarks

    skimage = pytest.importorskip("skimage")
    face = skimage.data.astronaut()[:256, 96:352]
    mesh = mesh_landmarks(np.stack([face, face[:, ::-1]]))
    tg = targets_from_landmarks(mesh, 256, 256)
    assert tg["lip_gap"].shape == (2, 1) and np.all(tg["lip_gap"] > 0.05)
    np.testing.assert_allclose(tg["lip_gap"][0], tg["lip_gap"][1], rtol=0.1)  # mirror: the same mouth


@pytest.mark.parametrize("change, pattern", [({"mouth_weight": -1.0}, "mouth_weight must be >= 0"),
                                             ({"hint_random": 1.5}, r"hint_random must be in \[0, 1\]")])
def test_bad_training_options_are_refused_before_any_folder(tmp_path, change, pattern):
    from talkbench.errors import ConfigError
    from talkbench.models.train_audio2motion import TrainConfig, main

    cfg = TrainConfig(manifest=str(tmp_path / "clips.parquet"), motion_checkpoint=str(tmp_path / "s1.pt"),
                      out=str(tmp_path / "run"), preset="tiny-talk", **change)
    with pytest.raises(ConfigError, match=pattern):
        main(cfg)
    assert not (tmp_path / "run").exists()
