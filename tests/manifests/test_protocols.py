"""Protocols: their metric names and weights entries agree with the registries above them, and frame reading is part
of what a protocol's digest pins."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

from talkbench.errors import MediaError
from talkbench.manifests import PROTOCOLS, get_protocol
from talkbench.manifests.frames import read_video


def test_every_protocol_names_registered_metrics_and_weights():
    from talkbench import weights
    from talkbench.metrics.spec import METRICS, computable

    for protocol in PROTOCOLS.values():
        # a protocol pins its default metric set; a metric registered later runs under it by name, and adding it to
        # the set is a deliberate protocol change (a new digest)
        assert set(protocol.metrics) <= set(computable()), protocol.protocol_id
        needed = {e for m in protocol.metrics for e in METRICS[m].entries(protocol)}
        pinned = {net.weights for _, net in protocol.feature_nets}
        assert needed - {"dwpose"} <= pinned <= set(weights.entry_names()), protocol.protocol_id


def test_digest_pins_frame_reading():
    base = get_protocol("talkbench-v1-256")
    assert (base.resize, base.colour) == ("pil-bicubic", "rgb24")
    digests = {base.digest, replace(base, resize="pil-lanczos").digest, replace(base, colour="bgr24").digest,
               replace(base, size=512).digest}
    assert len(digests) == 4 and all(len(d) == 16 for d in digests)
    assert replace(base).digest == base.digest  # the same definition, the same digest


def test_read_video_resizes_png_folders_with_the_protocols_kernel(tmp_path):
    protocol = get_protocol("talkbench-v1-256")
    img = astronaut()  # 512 px
    for i in range(2):
        Image.fromarray(img).save(tmp_path / f"{i:03d}.png")
    video = read_video(tmp_path, protocol)
    want = np.asarray(Image.fromarray(img).resize((256, 256), Image.BICUBIC))
    assert video.frames.shape == (2, 256, 256, 3) and np.array_equal(video.frames[0], want)
    assert video.info["resized"] and video.info["source_size"] == [512, 512]
    lanczos = read_video(tmp_path, replace(protocol, resize="pil-lanczos")).frames[0]
    assert not np.array_equal(lanczos, want)  # the kernel is the protocol's, not the reader's
    with pytest.raises(MediaError, match=r"unknown resize kernel 'cv2-cubic'; choose from \['pil-bicubic'"):
        read_video(tmp_path, replace(protocol, resize="cv2-cubic"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MediaError, match="no PNG frames"):
        read_video(tmp_path / "empty", protocol)
