"""The fused modulated conv equals the reference (non-fused) form; channels-last gives the same outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from talkbench.models.layers import ModulatedConv2d, modulated_conv2d_fused, set_fused, to_channels_last
from talkbench.models.motion import MotionGenerator, get_config


def astronaut_batch(b: int, size: int) -> torch.Tensor:
    img = torch.from_numpy(data.astronaut()[::8, ::8].copy()).permute(2, 0, 1).float() / 127.5 - 1  # (3, 64, 64)
    x = torch.stack([img.roll(3 * i, 2) for i in range(b)])
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def grouped_reference(x, weight, s, demodulate):
    """StyleGAN2's equations written out per sample: w'_ijk = s_i w_ijk, w'' = w' / sqrt(sum w'^2 + eps)."""
    outs = []
    for xi, si in zip(x, s):
        w = weight * si[None, :, None, None]
        if demodulate:
            w = w / torch.sqrt(w.pow(2).sum((1, 2, 3), keepdim=True) + 1e-8)
        outs.append(torch.nn.functional.conv2d(xi[None], w, padding=weight.shape[-1] // 2))
    return torch.cat(outs)


@pytest.mark.parametrize("upsample,demodulate,kernel", [(False, True, 3), (True, True, 3), (False, False, 1)])
def test_fused_equals_reference_form(upsample, demodulate, kernel):
    torch.manual_seed(0)
    conv = ModulatedConv2d(16, 8, kernel, 32, demodulate=demodulate, upsample=upsample)
    x = torch.randn(3, 16, 8, 8)
    style = torch.randn(3, 32)
    with torch.no_grad():
        ref = conv(x, style)
        conv.fused = True
        fused = conv(x, style)
    assert fused.shape == ref.shape == (3, 8, 16 if upsample else 8, 16 if upsample else 8)
    assert torch.allclose(fused, ref, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(fused, torch.zeros_like(fused))


def test_fused_function_equals_the_paper_equations():
    torch.manual_seed(1)
    x, weight, s = torch.randn(2, 6, 10, 10), torch.randn(5, 6, 3, 3) / 5, torch.randn(2, 6)
    for demod in (True, False):
        assert torch.allclose(modulated_conv2d_fused(x, weight, s, demod, False), grouped_reference(x, weight, s, demod),
                              atol=1e-5)


def test_generator_fused_and_channels_last_equal_reference_on_real_frames():
    torch.manual_seed(0)
    gen = MotionGenerator(get_config("tiny")).eval()
    src, drv = astronaut_batch(2, 64), astronaut_batch(2, 64).flip(3)
    with torch.no_grad():
        ref = gen(src, drv)
        set_fused(gen, True)
        fused = gen(src, drv)
        set_fused(gen, False)
        to_channels_last(gen)
        cl = gen(src.contiguous(memory_format=torch.channels_last), drv.contiguous(memory_format=torch.channels_last))
    assert ref.shape == (2, 3, 64, 64) and float(ref.std()) > 1e-3
    assert torch.allclose(fused, ref, atol=1e-5)
    assert torch.allclose(cl, ref, atol=1e-5)
    assert gen.encoder.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
