"""Frechet distance against scipy, FID/clean-FID/FVD metric classes with random official-format networks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.linalg
import torch
from skimage import data

from talkbench.errors import ConfigError
from talkbench import weights
from talkbench.metrics.frechet import FID, FVD, CleanFID, frechet_distance, gaussian_stats
from talkbench.metrics.nets.inception import FIDInceptionV3


def reference_fid(a, b):
    """The formula written directly with scipy.linalg.sqrtm."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(400, 32))
    b = rng.normal(0.3, 1.2, size=(300, 32)) @ rng.normal(size=(32, 32)) * 0.3
    ours = frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    assert ours == pytest.approx(reference_fid(a, b), abs=1e-6)
    assert frechet_distance(*gaussian_stats(a), *gaussian_stats(a)) == pytest.approx(0.0, abs=1e-6)


def test_streaming_states_equal_one_update_and_pickle():
    rng = np.random.default_rng(0)
    real, fake = torch.from_numpy(rng.normal(size=(200, 16))), torch.from_numpy(rng.normal(0.2, 1, size=(150, 16)))
    whole = FID(extractor=torch.nn.Identity())
    whole.dim = 16
    for m in ("real", "fake"):
        setattr(whole, f"{m}_sum", torch.zeros(16, dtype=torch.float64))
        setattr(whole, f"{m}_outer", torch.zeros(16, 16, dtype=torch.float64))
    chunked = pickle.loads(pickle.dumps(whole))
    whole.update_features(real, True)
    whole.update_features(fake, False)
    for i in range(0, 200, 64):
        chunked.update_features(real[i:i + 64], True)
    for i in range(0, 150, 64):
        chunked.update_features(fake[i:i + 64], False)
    expected = frechet_distance(*gaussian_stats(real.numpy()), *gaussian_stats(fake.numpy()))
    assert float(whole.compute()) == pytest.approx(expected, abs=1e-8)
    assert float(chunked.compute()) == pytest.approx(expected, abs=1e-8)
    clone = pickle.loads(pickle.dumps(chunked))
    assert float(clone.compute()) == pytest.approx(expected, abs=1e-8)
    chunked.reset()
    assert int(chunked.real_n) == 0 and float(chunked.real_outer.abs().sum()) == 0.0


def _frames(n=6, size=48):
    img = data.astronaut()[100:100 + size * 4:4, 180:180 + size * 4:4]
    return torch.from_numpy(np.stack([np.roll(img, i, axis=0) for i in range(n)]).copy())


@pytest.mark.slow  # a 2048-d Inception forward and Frechet distance
def test_fid_identity_with_random_inception_from_official_file(fake_files):
    net = FIDInceptionV3()
    net.load_state_dict(torch.load(fake_files["fid-inception"], map_location="cpu", weights_only=True), strict=False)
    fid = FID(extractor=net)
    x = _frames(3)  # three 299-px Inception passes a side: identity needs no more
    fid.update(x, real=True)
    fid.update(x, real=False)
    assert int(fid.fake_n) == 3 and FID.higher_is_better is False
    assert abs(float(fid.compute())) < 1e-3


@pytest.mark.slow
def test_clean_fid_and_fvd_identity_with_torchscript_fakes(fake_files):
    clean = CleanFID(extractor=weights.load_torchscript_file(fake_files["clean-fid-inception"]))
    x = _frames(3)
    clean.update(x, real=True)
    clean.update(x, real=False)
    assert abs(float(clean.compute())) < 1e-3
    fvd = FVD(extractor=weights.load_torchscript_file(fake_files["i3d"]))
    clips = torch.stack([_frames(16, 32), _frames(16, 32).flip(1), _frames(16, 32).roll(1, 2)])
    fvd.update(clips, real=True)
    fvd.update(clips, real=False)
    assert abs(float(fvd.compute())) < 1e-3
    fvd.update(clips[:1], real=False)
    with pytest.raises(ConfigError, match="equal real/fake"):
        fvd.compute()
    with pytest.raises(ConfigError, match="at least 16 frames"):
        fvd.update(clips[:, :8], real=True)


def _streaming(cls, dim: int):
    metric = cls(extractor=torch.nn.Identity())
    metric.dim = dim
    for m in ("real", "fake"):
        setattr(metric, f"{m}_sum", torch.zeros(dim, dtype=torch.float64))
        setattr(metric, f"{m}_outer", torch.zeros(dim, dim, dtype=torch.float64))
    return metric


def test_fvd_uses_population_covariance_and_fid_the_sample_one():
    """On the same features FVD equals the formula with the population covariance (StyleGAN-V), FID with the sample
    covariance (pytorch-fid); with 24 samples the two differ, so swapping them fails here."""
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(24, 8)), rng.normal(0.2, 1.3, size=(24, 8)) @ rng.normal(size=(8, 8)) * 0.5

    def reference(ddof):
        s1, s2 = np.cov(real, rowvar=False, ddof=ddof), np.cov(fake, rowvar=False, ddof=ddof)
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
        return float(((real.mean(0) - fake.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))

    values = {}
    for cls in (FID, FVD):
        metric = _streaming(cls, 8)
        metric.update_features(torch.from_numpy(real), True)
        metric.update_features(torch.from_numpy(fake), False)
        values[cls] = float(metric.compute())
    assert values[FVD] == pytest.approx(reference(0), abs=1e-8)
    assert values[FID] == pytest.approx(reference(1), abs=1e-8)
    assert abs(reference(0) - reference(1)) > 1e-2


def test_singular_product_retries_with_eps_and_imaginary_part_is_refused():
    from talkbench.metrics.frechet import ImaginaryComponentError

    # s1 @ s2 = [[0, 1], [0, 0]] has no square root: sqrtm gives inf, the eps*I retry gives a finite value.
    s1, s2 = np.array([[0.0, 1.0], [0.0, 0.0]]), np.eye(2)
    value = frechet_distance(np.zeros(2), s1, np.zeros(2), s2)
    assert np.isfinite(value)
    # A product with a negative eigenvalue has an imaginary square root: refused, as pytorch-fid does.
    with pytest.raises(ImaginaryComponentError):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))


def inception_like(rng, n, d, shift=0.0):
    """Non-negative features with a power-law spectrum (condition numbers ~1e6-1e12), like pool3 activations."""
    scales = 1.0 / (1 + np.arange(d)) ** 1.5
    z = rng.normal(size=(n, d)) * scales
    return np.maximum(z @ rng.normal(size=(d, d)) / np.sqrt(d) + 0.05 + shift, 0)


@pytest.mark.parametrize("d,n_real,n_fake", [(384, 3000, 2500),  # full rank, ill-conditioned
                                             (384, 200, 3000),  # real side rank-deficient (fewer samples than d)
                                             (384, 150, 120)])  # both rank-deficient
def test_eigh_path_equals_scipy_sqrtm_on_ill_conditioned_covariances(d, n_real, n_fake):
    rng = np.random.default_rng(d + n_real)
    a, b = inception_like(rng, n_real, d), inception_like(rng, n_fake, d, shift=0.02) * 1.05
    s_a, s_b = gaussian_stats(a), gaussian_stats(b)
    assert np.linalg.cond(s_a[1]) > 1e6
    from talkbench.metrics.frechet import frechet_distance_details

    fast, method = frechet_distance_details(*s_a, *s_b)
    assert method == "eigh"
    assert fast == pytest.approx(reference_fid(a, b), rel=1e-6)
    assert fast == pytest.approx(frechet_distance(*s_a, *s_b, method="sqrtm"), rel=1e-6)
    assert frechet_distance(*s_b, *s_a) == pytest.approx(fast, rel=1e-6)  # symmetric in its arguments


def test_non_covariances_take_the_pytorch_fid_path():
    from talkbench.metrics.frechet import frechet_distance_details

    # Not symmetric: sqrtm with the eps retry decides, as before.
    _, method = frechet_distance_details(np.zeros(2), np.array([[0.0, 1.0], [0.0, 0.0]]), np.zeros(2), np.eye(2))
    assert method.startswith("sqrtm")
    with pytest.raises(ValueError, match="positive semi-definite"):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2), method="eigh")
    with pytest.raises(ValueError, match="unknown Frechet method 'svd'"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="svd")
