"""Probe and normalise on real media: astronaut video with espeak-ng speech, and its awkward variants."""

from __future__ import annotations

import pytest

from acq_media import FLASH_FRAME, FPS, N_FRAMES, beep_time, flash_time, make_media
from talkbench.curation.normalise import NormaliseError, count_frames, normalise_span
from talkbench.curation.probe import ProbeError, display_size, probe_video
from talkbench.media import read_audio, sha256_file


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return make_media(str(tmp_path_factory.getbasetemp() / "acq_media"))


def test_probe_fields_of_the_base_video(media):
    p = probe_video(media["base"])
    assert (p["video_codec"], p["pix_fmt"], p["bit_depth"]) == ("h264", "yuv420p", 8)
    assert (p["width"], p["height"], p["rotation"]) == (176, 144, 0)
    assert p["avg_fps"] == p["real_fps"] == 25.0 and p["is_vfr"] is False
    assert p["duration"] == pytest.approx(3.0, abs=0.01) and p["n_frames"] == N_FRAMES
    assert (p["has_audio"], p["audio_codec"], p["audio_rate"], p["audio_channels"]) == (True, "aac", 16000, 1)


@pytest.mark.parametrize("name, field, value", [
    ("vfr", "is_vfr", True),
    ("tenbit", "bit_depth", 10),
    ("tenbit", "pix_fmt", "yuv420p10le"),
    ("odd", "width", 175),
    ("odd", "height", 143),
    ("rotated", "rotation", 90),
    ("noaudio", "has_audio", False),
])
def test_probe_flags_awkward_inputs(media, name, field, value):
    assert probe_video(media[name])[field] == value


def test_vfr_frame_rates_disagree(media):
    p = probe_video(media["vfr"])
    assert p["n_frames"] == 60  # every fifth frame dropped
    assert p["avg_fps"] == pytest.approx(60 / p["duration"], rel=0.01)
    assert p["avg_fps"] < 24.0


def test_rotation_swaps_the_displayed_size(media):
    assert display_size(probe_video(media["rotated"])) == (144, 176)


@pytest.mark.parametrize("name, reason", [
    ("truncated", "corrupt"),
    ("notvideo", "corrupt"),
    ("empty", "empty_file"),
    ("speech_wav", "no_video_stream"),
])
def test_unusable_files_are_rejected_with_a_reason(media, name, reason):
    with pytest.raises(ProbeError) as info:
        probe_video(media[name])
    assert info.value.reason == reason


def _normalise(media, tmp_path, name, start=None, end=None):
    p = probe_video(media[name])
    out = tmp_path / f"{name}.mp4"
    seg = normalise_span(media[name], out, start=start, end=end, source_duration=p["duration"],
                         has_audio=p["has_audio"])
    return out, seg, probe_video(out)


@pytest.mark.parametrize("name", ["base", "vfr", "tenbit", "odd", "rotated", "noaudio"])
def test_normalise_whole_video(media, tmp_path, name):
    out, seg, q = _normalise(media, tmp_path, name)
    src = probe_video(media[name])
    w, h = display_size(src)
    assert (q["width"], q["height"]) == (w - w % 2, h - h % 2)  # rotation applied, even size
    assert (q["pix_fmt"], q["bit_depth"], q["rotation"], q["avg_fps"], q["is_vfr"]) == ("yuv420p", 8, 0, 25.0, False)
    assert seg["n_frames"] == count_frames(out) == round(src["duration"] * FPS) == N_FRAMES
    assert seg["sha256"] == sha256_file(out)
    assert flash_time(out) == pytest.approx(FLASH_FRAME / FPS)  # the right frame lands in the right slot
    if name == "noaudio":
        assert q["has_audio"] is False and read_audio(out) is None
    else:
        assert (q["audio_codec"], q["audio_rate"], q["audio_channels"]) == ("aac", 16000, 1)
        assert len(read_audio(out)) == pytest.approx(N_FRAMES / FPS * 16000, abs=1024)  # one AAC frame of slack
        assert abs(beep_time(out) - flash_time(out)) <= 1 / FPS  # audio and video stay in sync


@pytest.mark.parametrize("name", ["base", "vfr", "rotated"])
def test_span_cut_is_frame_accurate_and_in_sync(media, tmp_path, name):
    start, end = 0.52, 2.2
    out, seg, q = _normalise(media, tmp_path, name, start, end)
    assert seg["n_frames"] == count_frames(out) == round((end - start) * FPS) == 42
    assert q["duration"] == pytest.approx(42 / FPS, abs=0.03)
    assert flash_time(out) == pytest.approx(FLASH_FRAME / FPS - start, abs=0.5 / FPS)
    assert abs(beep_time(out) - flash_time(out)) <= 1 / FPS


def test_normalise_is_deterministic(media, tmp_path):
    a = _normalise(media, tmp_path / "a", "vfr", 0.3, 1.9)[1]
    b = _normalise(media, tmp_path / "b", "vfr", 0.3, 1.9)[1]
    assert a["sha256"] == b["sha256"]


def test_truncated_faststart_file_fails_the_frame_count_check(media, tmp_path):
    with pytest.raises(NormaliseError) as info:
        _normalise(media, tmp_path, "truncated_faststart")
    assert info.value.reason == "frame_count_mismatch"
    assert "expected 75 frames" in str(info.value)
    assert not list(tmp_path.iterdir())  # no output and no temporary file left behind


def test_span_outside_the_video_is_refused(media, tmp_path):
    with pytest.raises(NormaliseError) as info:
        _normalise(media, tmp_path, "base", 5.0, 6.0)
    assert info.value.reason == "span_outside_video"
    with pytest.raises(NormaliseError) as info:
        _normalise(media, tmp_path, "base", 2.0, 4.0)  # runs past the end: too few frames
    assert info.value.reason == "frame_count_mismatch"
