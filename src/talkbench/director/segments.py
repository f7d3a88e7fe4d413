"""Speech segments from the audio (pauses and energy), and word spans estimated from a transcript.

There is no speech recogniser or forced aligner here. Word times are estimates: the transcript's phrases (split at
punctuation, where speakers pause) are assigned to the longest pauses of the audio, and inside a phrase the voiced
time is shared among its words in proportion to their letters. On espeak-ng speech this puts a word inside its
true span (tests/director/test_segments.py); on real speech with unpunctuated pauses it is coarser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import MediaError

RATE = 16000
HOP_S = 0.01  # energy frames of 10 ms
WINDOW_S = 0.025


@dataclass(frozen=True)
class SegmentConfig:
    silence_db: float = -30.0  # a frame is silent below this level relative to the loud frames (95th percentile)
    floor_db: float = -55.0  # ... or below this absolute level (dBFS)
    min_pause_s: float = 0.15  # shorter silences are gaps inside a segment
    min_speech_s: float = 0.06  # shorter bursts are clicks, not speech


def frame_energy_db(audio: np.ndarray, rate: int = RATE) -> np.ndarray:
    """RMS level in dBFS of 25 ms windows every 10 ms, (N,)."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise MediaError(f"audio must be mono (one dimension), got shape {audio.shape}")
    hop, win = int(round(HOP_S * rate)), int(round(WINDOW_S * rate))
    n = max(1, int(np.ceil(len(audio) / hop)))
    padded = np.pad(audio, (0, n * hop + win - len(audio)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, win)[::hop][:n]
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


def speech_segments(audio: np.ndarray, rate: int = RATE, cfg: SegmentConfig = SegmentConfig()) -> list[tuple[float, float]]:
    """Voiced runs ``[(t0, t1), ...]`` in seconds, separated by pauses of at least ``cfg.min_pause_s``."""
    if len(audio) == 0:
        raise MediaError("audio is empty")
    db = frame_energy_db(audio, rate)
    loud = np.percentile(db, 95)
    voiced = (db > loud + cfg.silence_db) & (db > cfg.floor_db)
    runs = _runs(voiced)
    # Close short gaps, then drop short bursts.
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and (a - merged[-1][1]) * HOP_S < cfg.min_pause_s:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    duration = len(audio) / rate
    return [(round(a * HOP_S, 3), round(min(b * HOP_S, duration), 3)) for a, b in merged
            if (b - a) * HOP_S >= cfg.min_speech_s]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def pause_points(segments: list[tuple[float, float]]) -> list[float]:
    """The middle of every pause between two segments: where shots may be cut."""
    return [round((a[1] + b[0]) / 2, 3) for a, b in zip(segments, segments[1:])]


PHRASE_BREAK = re.compile(r"[.!?;:,]+")
TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")


def transcript_phrases(transcript: str) -> list[list[str]]:
    """The transcript split at punctuation into phrases of lower-case words (empty phrases dropped)."""
    return [ws for part in PHRASE_BREAK.split(transcript) if (ws := [w.lower() for w in TOKEN.findall(part)])]


def word_spans(transcript: str, segments: list[tuple[float, float]]) -> list[tuple[str, float, float]]:
    """Estimated ``(word, t0, t1)`` for every transcript word, in order."""
    phrases = transcript_phrases(transcript)
    if not phrases or not segments:
        return []
    groups = _assign_phrases(phrases, segments)
    spans = []
    for words, segs in groups:
        weights = np.array([len(w) + 1.0 for w in words])
        edges = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
        times = _voiced_to_time(edges, segs)
        spans += [(w, round(float(a), 3), round(float(b), 3)) for w, a, b in zip(words, times[:-1], times[1:])]
    return spans


def _assign_phrases(phrases, segments):
    """Each phrase gets a run of consecutive segments: phrase boundaries sit at the longest pauses, in time order.
    With fewer segments than phrases, the phrases share the whole voiced time in proportion to their letters."""
    k = len(phrases)
    if len(segments) < k:
        flat = [w for p in phrases for w in p]
        return [(flat, segments)]
    gaps = np.array([b[0] - a[1] for a, b in zip(segments, segments[1:])])
    cuts = sorted(np.argsort(-gaps, kind="stable")[: k - 1].tolist())  # cut after segment index c
    bounds = [0] + [c + 1 for c in cuts] + [len(segments)]
    return [(phrases[i], segments[bounds[i]:bounds[i + 1]]) for i in range(k)]


def _voiced_to_time(fractions: np.ndarray, segs: list[tuple[float, float]]) -> np.ndarray:
    """Map fractions of the total voiced time of ``segs`` to absolute seconds."""
    lengths = np.array([b - a for a, b in segs])
    starts = np.concatenate([[0.0], np.cumsum(lengths)])
    position = fractions * starts[-1]
    idx = np.clip(np.searchsorted(starts, position, side="right") - 1, 0, len(segs) - 1)
    return np.array([segs[i][0] for i in idx]) + (position - starts[idx])
