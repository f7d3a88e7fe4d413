"""Real espeak-ng speech for the director tests: three sentences spoken separately and joined, so the true span
of every sentence (and of the one-word sentence "Hello") is known."""

from __future__ import annotations

import numpy as np
import pytest

from director_speech import SENTENCES, espeak


@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    """(path of the joined wav, samples at 16 kHz, [(t0, t1) voiced span of each sentence])."""
    from talkbench.media import read_audio, write_wav
    from talkbench.director.segments import speech_segments

    folder = tmp_path_factory.mktemp("director-speech")
    parts, truth, offset = [], [], 0.0
    for i, sentence in enumerate(SENTENCES):
        samples = read_audio(espeak(folder / f"part{i}.wav", sentence))
        (a, b), = speech_segments(samples)  # one voiced run per sentence
        truth.append((offset + a, offset + b))
        parts.append(samples)
        offset += len(samples) / 16000
    audio = np.concatenate(parts)
    path = folder / "speech.wav"
    write_wav(path, audio)
    return path, read_audio(path), truth
