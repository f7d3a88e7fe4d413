"""Streaming reenactment with the cached source equals the plain generator, frame by frame, on real frames."""

from __future__ import annotations

import pytest
import torch
from skimage import data

from talkbench.errors import ConfigError
from talkbench.models.motion import MotionGenerator, get_config
from talkbench.models.streaming import StreamingReenactor, capture_cuda_graph


def astronaut_frames(n: int, size: int = 64) -> torch.Tensor:
    """A moving crop of the astronaut: a head that shifts and zooms slightly, (n, 3, size, size) in [-1, 1]."""
    img = torch.from_numpy(data.astronaut().copy()).permute(2, 0, 1).float() / 127.5 - 1  # (3, 512, 512)
    out = []
    for t in range(n):
        y0, x0, s = 20 + 4 * t, 100 + 6 * t, 300 - 8 * t
        crop = img[:, y0:y0 + s, x0:x0 + s][None]
        out.append(torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False))
    return torch.cat(out)


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    g = MotionGenerator(get_config("tiny")).eval()
    with torch.no_grad():  # non-zero flow convs, so warping matters
        for tf in g.synthesis.to_flows:
            tf.conv.weight.normal_(0, 0.5)
    return g


def test_absolute_streaming_equals_plain_forward(gen):
    frames = astronaut_frames(5)
    stream = StreamingReenactor(gen, relative=False)
    stream.set_source(frames[:1])
    with torch.no_grad():
        for t in range(1, 5):
            expected = gen(frames[:1], frames[t:t + 1])
            got = stream(frames[t:t + 1])
            assert torch.allclose(got, expected, atol=1e-5), t
    assert float((gen(frames[:1], frames[1:2]) - gen(frames[:1], frames[4:5])).abs().max()) > 1e-3  # motion matters


def test_relative_streaming_equals_the_reenact_formula(gen):
    frames = astronaut_frames(5)
    stream = StreamingReenactor(gen, relative=True)
    stream.set_source(frames[:1])
    with torch.no_grad():
        src = gen.encoder(frames[:1])
        first = gen.encoder(frames[1:2]).alpha
        for t in range(1, 5):
            alpha = MotionGenerator.relative_alpha(src.alpha, gen.encoder(frames[t:t + 1]).alpha, first)
            expected = gen.render(src.w, alpha, src.feats)
            assert torch.allclose(stream(frames[t:t + 1]), expected, atol=1e-5), t
        # a new source starts a new stream: its first driver frame is the new reference
        stream.set_source(frames[2:3])
        src = gen.encoder(frames[2:3])
        expected = gen.render(src.w, src.alpha, src.feats)  # first frame: relative motion is zero
        assert torch.allclose(stream(frames[4:5]), expected, atol=1e-5)


def test_buffers_follow_the_device_and_errors_are_one_line(gen):
    stream = StreamingReenactor(gen)
    with pytest.raises(ConfigError, match="set_source"):
        stream(astronaut_frames(1))
    stream.set_source(astronaut_frames(1))
    stream.to("meta")
    assert stream.w.device.type == "meta" and stream.basis.device.type == "meta"
    assert all(f.device.type == "meta" for f in stream.feats()) and stream.feat0.numel() > 0
    with pytest.raises(ConfigError, match="one source image"):
        StreamingReenactor(gen).set_source(astronaut_frames(2))
    with pytest.raises(ConfigError, match="CUDA graphs need a CUDA tensor"):
        capture_cuda_graph(lambda x: x, torch.zeros(1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graph_replay_equals_eager(gen):
    frames = astronaut_frames(4).cuda()
    stream = StreamingReenactor(gen.cuda(), relative=True)
    stream.set_source(frames[:1])
    eager = [stream(frames[t:t + 1]).clone() for t in range(1, 4)]
    stream.set_source(frames[:1])
    stream(frames[1:2])  # sets the first-frame reference
    stream.use_cuda_graph(frames[1:2])
    for t in range(1, 4):
        assert torch.allclose(stream(frames[t:t + 1]), eager[t - 1], atol=1e-4)
    gen.cpu()
