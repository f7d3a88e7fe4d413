"""PSNR/SSIM against skimage on real images (to 1e-6), identity values, streaming, pickling and reset."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from talkbench.metrics.pixel import PSNR, SSIM, psnr_frames, ssim_frames


def real_pairs():
    rng = np.random.default_rng(0)
    images = [data.astronaut()[:128, 100:228], data.chelsea()[:128, :128], data.coffee()[100:228, 200:328]]
    pairs = []
    for img in images:
        noisy = np.clip(img.astype(int) + rng.integers(-25, 26, img.shape), 0, 255).astype(np.uint8)
        shifted = np.roll(img, 2, axis=1)
        pairs += [(img, noisy), (img, shifted)]
    return pairs


def protocol_ssim(a, b):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
                                 channel_axis=-1)


@pytest.mark.parametrize("i", range(6))
def test_ssim_and_psnr_match_skimage(i):
    a, b = real_pairs()[i]
    ours_ssim = float(ssim_frames(torch.from_numpy(a), torch.from_numpy(b))[0])
    assert abs(ours_ssim - protocol_ssim(a, b)) < 1e-6
    # the GPU paths (float64 GEMMs, float64 convs), the float64 CPU reference, the float32 CPU default
    for backend in ("matmul", "conv", "ndimage", "tiles"):
        value = float(ssim_frames(torch.from_numpy(a), torch.from_numpy(b), backend=backend)[0])
        assert abs(value - protocol_ssim(a, b)) < 1e-6, backend
    ours_psnr = float(psnr_frames(torch.from_numpy(a), torch.from_numpy(b))[0])
    assert abs(ours_psnr - peak_signal_noise_ratio(a, b, data_range=255)) < 1e-6


def test_skimage_default_ssim_differs():
    a, b = real_pairs()[0]
    default = structural_similarity(a, b, data_range=255, channel_axis=-1)  # 7x7 uniform window, sample covariance
    ours = float(ssim_frames(torch.from_numpy(a), torch.from_numpy(b))[0])
    assert abs(default - ours) > 1e-3


def test_identity_values():
    a = torch.from_numpy(data.astronaut()[:64, :64])
    assert torch.isinf(psnr_frames(a, a)).all()
    assert float(psnr_frames(a, a, cap=100.0)[0]) == 100.0
    assert float(ssim_frames(a, a)[0]) == pytest.approx(1.0, abs=1e-12)


def test_streaming_pickle_and_reset():
    pairs = real_pairs()
    pred = torch.from_numpy(np.stack([p[0] for p in pairs]))
    target = torch.from_numpy(np.stack([p[1] for p in pairs]))
    for cls in (PSNR, SSIM):
        whole, chunked = cls(), cls()
        whole.update(pred, target)
        for i in range(0, len(pred), 4):
            chunked.update(pred[i:i + 4], target[i:i + 4])
        assert float(whole.compute()) == pytest.approx(float(chunked.compute()), abs=1e-12)
        expected = np.mean([protocol_ssim(a, b) if cls is SSIM else peak_signal_noise_ratio(a, b, data_range=255)
                            for a, b in pairs])
        assert float(whole.compute()) == pytest.approx(expected, abs=1e-6)
        clone = pickle.loads(pickle.dumps(chunked))
        assert float(clone.compute()) == pytest.approx(float(whole.compute()), abs=1e-12)
        assert cls.higher_is_better is True
        whole.reset()
        assert int(whole.count) == 0


def hard_pairs():
    """Where float32 filtering goes wrong without local centring: a flat bright frame with +-1 noise, a frame
    split into near-black and near-white halves, an inverted photo, odd sizes whose last tile overlaps."""
    rng = np.random.default_rng(3)
    flat = np.full((140, 150, 3), 250, np.uint8)
    split = flat.copy()
    split[:, :75] = 3
    img = data.astronaut()[:200, :270]
    jitter = lambda x: np.clip(x.astype(int) + rng.integers(-1, 2, x.shape), 0, 255).astype(np.uint8)  # noqa: E731
    return [(jitter(flat), flat), (jitter(split), split), (255 - img, img), (img[:11, :11], jitter(img[:11, :11])),
            (np.roll(img, 3, 0)[:131, :259], img[:131, :259])]


@pytest.mark.parametrize("i", range(5))
def test_float32_tiles_match_skimage_on_hard_frames(i):
    a, b = hard_pairs()[i]
    ours = float(ssim_frames(torch.from_numpy(a), torch.from_numpy(b), backend="tiles")[0])
    assert abs(ours - protocol_ssim(a, b)) < 1e-6


def test_threads_give_the_same_values_and_bad_input_is_one_error():
    pairs = real_pairs()
    pred = torch.from_numpy(np.stack([p[0] for p in pairs]))
    target = torch.from_numpy(np.stack([p[1] for p in pairs]))
    one = ssim_frames(pred, target)
    assert torch.equal(ssim_frames(pred, target, threads=3), one)  # per-thread workspaces, same arithmetic
    with pytest.raises(ValueError, match="one shape"):
        ssim_frames(pred, target[:, :64])
    with pytest.raises(ValueError, match="unknown SSIM backend 'fft'"):
        ssim_frames(pred, target, backend="fft")
