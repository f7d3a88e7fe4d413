"""Diffusion schedules, samplers and the ε-prediction wrapper, checked against closed forms."""

import numpy as np
import pytest
import torch
from torch import nn

from talkbench.models.diffusion import EpsDenoiser, samplers, schedules


def test_linear_schedule_matches_the_ddpm_values():
    s = schedules.linear_schedule(1000)
    ref_betas = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(s.betas.numpy(), ref_betas, rtol=0, atol=1e-15)
    np.testing.assert_allclose(s.alphas_cumprod.numpy(), np.cumprod(1 - ref_betas), rtol=1e-12)
    # ᾱ_T of the DDPM linear schedule (Ho et al. 2020): about 4.04e-5, i.e. x_T is almost pure noise.
    assert s.alphas_cumprod[-1].item() == pytest.approx(4.0358e-5, rel=1e-3)
    assert s.alphas_cumprod[0].item() == pytest.approx(1 - 1e-4)


def test_strided_timesteps_are_diffae_ddim_n():
    assert schedules.strided_timesteps(1000, 50) == list(range(980, -1, -20))
    assert schedules.strided_timesteps(1000, 20)[:3] == [950, 900, 850]
    assert schedules.strided_timesteps(1000, 1) == [0]
    with pytest.raises(ValueError, match="sample steps"):
        schedules.strided_timesteps(1000, 0)


def exact_eps(schedule, x0):
    """ε that a perfect network would predict for data that is always x0."""

    def eps_fn(x_t, t, drop):
        ac = schedule.alphas_cumprod[t].to(x_t.dtype).view(-1, 1, 1)
        return (x_t - ac.sqrt() * x0) / (1 - ac).sqrt()

    return eps_fn


@pytest.mark.parametrize("name", ["ddim", "ddpm"])
@pytest.mark.parametrize("steps", [50, 20])
def test_sampler_with_the_exact_eps_recovers_x0(name, steps):
    s = schedules.linear_schedule(1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 30, 20, generator=g, dtype=torch.float64) * 1.8 - 0.9
    xT = torch.randn(3, 30, 20, generator=g, dtype=torch.float64)
    out = samplers.sample(name, exact_eps(s, x0), xT, s, schedules.strided_timesteps(1000, steps), generator=g)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-9)
    # the same sampler with a wrong ε ends elsewhere (the check can fail)
    wrong = samplers.sample(name, exact_eps(s, x0 * 0.5), xT, s, schedules.strided_timesteps(1000, steps))
    assert (wrong - x0).abs().max() > 0.1


def test_ddim_x0_is_clipped():
    s = schedules.linear_schedule(1000)
    x0 = torch.full((1, 4, 2), 3.0, dtype=torch.float64)
    xT = torch.randn(1, 4, 2, dtype=torch.float64)
    ts = schedules.strided_timesteps(1000, 10)
    assert samplers.ddim(exact_eps(s, x0), xT, s, ts).max().item() == pytest.approx(1.0)
    torch.testing.assert_close(samplers.ddim(exact_eps(s, x0), xT, s, ts, clip_x0=False), x0)


def test_guidance_one_is_the_unguided_sampler_and_two_is_not():
    s = schedules.linear_schedule(1000)
    calls = []

    def eps_fn(x_t, t, drop):
        calls.append(drop)
        return 0.3 * x_t + (0.0 if drop else 0.2)

    xT = torch.randn(2, 8, 4, generator=torch.Generator().manual_seed(1))
    ts = schedules.strided_timesteps(1000, 10)
    guided_one = samplers.ddim(eps_fn, xT, s, ts, guidance=1.0)
    assert calls == [False] * 10  # s = 1 never evaluates the null condition
    cond_only = samplers.ddim(lambda x, t, d: eps_fn(x, t, False), xT, s, ts)
    assert torch.equal(guided_one, cond_only)
    calls.clear()
    guided_two = samplers.ddim(eps_fn, xT, s, ts, guidance=2.0)
    assert calls.count(True) == 10
    assert (guided_two - guided_one).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["ddim", "ddpm"])
def test_clamped_frames_equal_their_given_values_exactly(name):
    """First and last frame of every sub-clip fixed, all sub-clips in one batch (the keyframe use)."""
    s = schedules.linear_schedule(1000)
    g = torch.Generator().manual_seed(2)
    b, t, d = 4, 12, 20
    known = torch.rand(b, t, d, generator=g) * 2 - 1
    mask = torch.zeros(b, t, 1, dtype=torch.bool)
    mask[:, 0] = mask[:, -1] = True

    def eps_fn(x_t, tt, drop):
        return torch.tanh(x_t)

    out = samplers.sample(name, eps_fn, torch.randn(b, t, d, generator=g), s, schedules.strided_timesteps(1000, 20),
                          known=known, known_mask=mask, generator=g)
    assert torch.equal(out[:, 0], known[:, 0]) and torch.equal(out[:, -1], known[:, -1])
    assert not torch.allclose(out[:, 1:-1], known[:, 1:-1], atol=1e-2)


class EchoNet(nn.Module):
    """A toy network: ε̂ = w · x_t, with the wrapper's contract (returns eps, extras)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.seen = {}

    def forward(self, x_t, c_noise, cond, drop):
        self.seen = {"c_noise": c_noise, "drop": drop}
        return self.w * x_t, {}


def test_denoiser_loss_is_the_eps_mse_and_owns_normalisation():
    net = EchoNet()
    den = EpsDenoiser(net, dim=3, t_scale=1e-3, cond_drop_prob=0.5)
    data = torch.tensor([[0.0, 10.0, -5.0], [2.0, 30.0, -5.0]]).repeat(50, 1)
    den.fit_normalization(data)
    norm = den.normalize(data)
    assert norm.abs().max().item() == pytest.approx(1.0)
    torch.testing.assert_close(den.denormalize(norm), data)
    g = torch.Generator().manual_seed(0)
    loss, _ = den.loss(data[None], {}, generator=g)
    # with ε̂ = 0 the loss is E[ε²] ≈ 1
    assert loss.item() == pytest.approx(1.0, abs=0.15)
    assert net.seen["c_noise"].max().item() < 1.0  # the network sees t · t_scale, not the raw index
    drops = [den.loss(data[None].expand(64, -1, -1), {}, generator=g) and net.seen["drop"].float().mean().item()
             for _ in range(3)]
    assert 0.3 < float(np.mean(drops)) < 0.7


def test_denoiser_buffers_follow_to_meta():
    den = EpsDenoiser(EchoNet(), dim=5).to("meta")
    assert den.data_mean.device.type == "meta" and den.data_scale.device.type == "meta"
    out = den.sample((1, 3, 5), {}, steps=2, generator=None, noise=torch.empty(1, 3, 5, device="meta"))
    assert out.device.type == "meta" and out.shape == (1, 3, 5)


class ExactV(nn.Module):
    """Returns the exact v = √ᾱ ε − √(1−ᾱ) x₀ for data that is always x0 (found from x_t and t)."""

    def __init__(self, schedule, x0):
        super().__init__()
        self.schedule, self.x0 = schedule, x0

    def forward(self, x_t, c_noise, cond, drop):
        t = c_noise.round().long()
        ac = self.schedule.alphas_cumprod[t].to(x_t.dtype).view(-1, 1, 1)
        eps = (x_t - ac.sqrt() * self.x0) / (1 - ac).sqrt()
        return ac.sqrt() * eps - (1 - ac).sqrt() * self.x0, {}


def test_v_output_is_turned_into_the_exact_eps():
    s = schedules.linear_schedule(1000)
    x0 = torch.rand(2, 6, 3, dtype=torch.float64) - 0.5
    den = EpsDenoiser(ExactV(s, x0), dim=3, output="v").double()
    noise = torch.randn(2, 6, 3, dtype=torch.float64)
    t = torch.tensor([10, 900])
    eps, _ = den.eps(schedules.q_sample(s, x0, t, noise), t, {})
    torch.testing.assert_close(eps, noise)
    with pytest.raises(ValueError, match="unknown network output 'x0'"):
        EpsDenoiser(EchoNet(), dim=3, output="x0")
