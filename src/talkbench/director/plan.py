"""The director: audio + a text instruction (+ a transcript) → a validated, time-coded control plan.

A plan is plain JSON, editable by hand::

    {duration, fps, n_frames, instruction, transcript, controls: [...], unmatched: [...], notes: [...],
     segments: [[t0, t1], ...], shots: [{t0, t1, text, emotion, head, gesture, camera, intensity}, ...]}

``shots`` is what generation reads; ``controls`` and ``unmatched`` explain where each shot value came from.

How an instruction is read, in order:

1. Quoted words ("…", “…”) are set aside; sentences split at ``. ; ! ?`` and steps at "then", "after that",
   "afterwards", "finally" (a chain of steps shares the audio in order).
2. Timing words are taken out of each step: "while/when saying X" and quoted words (the span of X in the
   transcript), absolute times ("for the first 2 seconds", "from 1 to 3 seconds", "after 2 seconds"), and
   relative ones ("at the start", "in the middle", "at the end", "throughout", "in the second half").
   Relative spans snap to a pause of the audio within ``SNAP_S``.
3. The rest splits into phrases at commas, "and", "while", "with", "but". Each phrase is matched to the
   vocabulary by embedding similarity against the prototypes (``vocab.MATCH_THRESHOLD``), emotion words through
   the NRC lexicon, intensifiers ("very", "slightly") through ``vocab.INTENSIFIERS``. A phrase that matches
   nothing, or a time that cannot be placed, is reported in ``unmatched`` and changes nothing.
4. Shots cut the audio at its pauses and at every control's start and end, on the frame grid. Where two
   controls of one kind overlap, the later one in the instruction wins.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ..errors import PlanError
from . import vocab
from .segments import RATE, pause_points, speech_segments, word_spans

SNAP_S = 0.3
SHOT_FIELDS = ("t0", "t1", "text", "emotion", "head", "gesture", "camera", "intensity")
MATCH_KINDS = ("head", "camera", "gesture")  # matched by embedding; emotion through the lexicon

RELATIVE = [  # (pattern, (start, end) as fractions of the duration); longest phrasings first
    (r"\b(?:at|towards?|near|in) the (?:very )?end(?: of (?:the )?(?:video|clip|speech|talk))?\b", (2 / 3, 1.0)),
    (r"\b(?:at|in) the (?:very )?(?:start|beginning)(?: of (?:the )?(?:video|clip|speech|talk))?\b", (0.0, 1 / 3)),
    (r"\bin the middle(?: of (?:the )?(?:video|clip|speech|talk))?\b", (1 / 3, 2 / 3)),
    (r"\bin the first half\b", (0.0, 0.5)),
    (r"\bin the second half\b", (0.5, 1.0)),
    (r"\b(?:throughout|the whole time|all the time|the entire time|for the whole (?:video|clip|speech|talk))\b",
     (0.0, 1.0)),
]
NUMBER = r"(\d+(?:\.\d+)?)"
SECONDS = r"\s*(?:s|sec|secs|seconds?)\b"
ABSOLUTE = [  # (pattern, function of the matched numbers and the duration → (t0, t1))
    (rf"\b(?:from|between) {NUMBER}(?:{SECONDS})? (?:to|and|until) {NUMBER}{SECONDS}", lambda a, b, d: (a, b)),
    (rf"\b(?:for|in|during) the first {NUMBER}{SECONDS}", lambda a, d: (0.0, a)),
    (rf"\b(?:for|in|during) the last {NUMBER}{SECONDS}", lambda a, d: (d - a, d)),
    (rf"\bafter {NUMBER}{SECONDS}", lambda a, d: (a, d)),
    (rf"\b(?:before|until) {NUMBER}{SECONDS}", lambda a, d: (0.0, a)),
    (rf"\bat {NUMBER}{SECONDS}", lambda a, d: (a, a + 1.0)),
]
STEP_BREAK = r"\b(?:and then|then|after that|afterwards|finally)\b"
PHRASE_BREAK = r",|\band\b|\bwhile\b|\bwith\b|\bbut\b"
QUOTE = re.compile(r"\"([^\"]+)\"|“([^”]+)”|(?<![A-Za-z])'([^']+)'(?![A-Za-z])")
SAY_VERB = re.compile(r"\b(?:while|when|as)\s+(?:saying|you say|he says|she says|they say)\b")
SAYING = re.compile(r"@say\s+(?:the word\s+)?(@q\d+|[a-z0-9'\- ]+?)\s*$")
ON_WORD = re.compile(r"(?:\b(?:on|at)\s+(?:the word\s+)?)?(@q\d+)")  # "on 'X'", or a bare quoted word
FILLER = {"please", "the", "a", "an", "speaker", "should", "you", "your", "person", "avatar", "he", "she", "they",
          "first", "also", "just", "to", "be", "then", "and", "it", "let", "lets", "let's", "make", "now"}


def make_plan(audio, instruction: str, transcript: str | None = None, fps: int = 25) -> dict:
    """Plan one video: ``audio`` is a path or a 16 kHz mono float array. Deterministic."""
    samples = _load_audio(audio)
    if not isinstance(instruction, str):
        raise PlanError(f"instruction must be text, got {type(instruction).__name__}")
    if not (isinstance(fps, int) and fps > 0):
        raise PlanError(f"fps must be a positive integer, got {fps!r}")
    duration = round(len(samples) / RATE, 3)
    segments = speech_segments(samples)
    pauses = pause_points(segments)
    spans = word_spans(transcript, segments) if transcript else []
    notes = []
    if not instruction.strip():
        controls, unmatched = [], []
        notes.append("empty instruction: the neutral plan")
    else:
        controls, unmatched = parse_instruction(instruction, duration, pauses, spans,
                                                transcript_given=bool(transcript))
    plan = {
        "version": 1,
        "duration": duration,
        "fps": fps,
        "n_frames": n_frames(duration, fps),
        "instruction": instruction,
        "transcript": transcript or "",
        "controls": controls,
        "unmatched": unmatched,
        "notes": notes,
        "segments": [[a, b] for a, b in segments],
        "shots": build_shots(controls, duration, fps, pauses, spans),
    }
    validate_plan(plan, duration)
    return plan


def n_frames(duration: float, fps: int) -> int:
    """Frames of a video of ``duration`` seconds: round(duration × fps)."""
    return int(round(duration * fps))


def _load_audio(audio) -> np.ndarray:
    if isinstance(audio, (str, Path)):
        from ..media import read_audio

        if not Path(audio).is_file():
            raise PlanError(f"audio file not found: {audio}")
        samples = read_audio(audio, RATE)
        if samples is None:
            raise PlanError(f"{audio}: no audio stream")
    else:
        samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim != 1 or samples.size == 0:
        raise PlanError(f"audio must be non-empty mono samples at {RATE} Hz, got shape {samples.shape}")
    return samples


# --------------------------------------------------------------------------------------------------------------
# Reading the instruction


def parse_instruction(instruction: str, duration: float, pauses: list[float], spans: list[tuple[str, float, float]],
                      transcript_given: bool) -> tuple[list[dict], list[dict]]:
    """Controls ``[{kind, value, phrase, score, t0, t1, timing, intensity}]`` and ``[{phrase, reason}]``."""
    quotes: list[str] = []

    def keep_quote(m):
        quotes.append(next(g for g in m.groups() if g is not None).strip().lower())
        return f" @q{len(quotes) - 1} "

    text = QUOTE.sub(keep_quote, instruction).lower()
    steps = []
    for sentence in re.split(r"[;!?]+|\.(?!\d)", text):  # a decimal point ("1.5 seconds") is no full stop
        parts = [p for p in re.split(STEP_BREAK, sentence) if p.strip()]
        steps += [(p, len(parts) > 1) for p in parts]
    chain = [i for i, (_, chained) in enumerate(steps) if chained]
    controls, unmatched = [], []
    for index, (step, chained) in enumerate(steps):
        step = SAY_VERB.sub(" @say ", step)  # "while saying" is timing, not a phrase break
        # Timing words belong to the phrase they are in ("keep the camera still and tilt at the end"); a part that
        # is only timing ("while saying hello, nod") times the other parts of its step.
        parts = [_timing(part, duration, pauses, spans, quotes, transcript_given)
                 for part in re.split(PHRASE_BREAK, step)]
        shared = next(((sp, tm, pr) for sp, tm, rest, pr in parts if (sp or pr) and not _phrases(rest, quotes)),
                      None)
        used = False
        for span, timing, part, problem in parts:
            if span is None and problem is None and shared is not None:
                span, timing, problem = shared
                used = used or bool(_phrases(part, quotes))
            if span is None and problem is None and chained:
                k = chain.index(index)
                span = _snap((duration * k / len(chain), duration * (k + 1) / len(chain)), duration, pauses)
                timing = f"step {k + 1} of {len(chain)}"
            if span is None:
                span, timing = (0.0, duration), "whole video"
            for phrase in _phrases(part, quotes):
                if problem is not None:
                    unmatched.append({"phrase": phrase, "reason": problem})
                    continue
                found = match_phrase(phrase)
                if not found:
                    unmatched.append({"phrase": phrase, "reason": "no control in the vocabulary matches"})
                for item in found:
                    controls.append({**item, "phrase": phrase, "t0": round(span[0], 3), "t1": round(span[1], 3),
                                     "timing": timing})
        if shared is not None and not used:
            unmatched.append({"phrase": " ".join(step.replace("@say", "while saying").split()),
                              "reason": shared[2] or f"a time ({shared[1]}) with no control to place"})
    return controls, unmatched


def _timing(step, duration, pauses, spans, quotes, transcript_given):
    """(span or None, description, step without its timing words, problem or None)."""
    for pattern in (SAYING, ON_WORD):
        m = pattern.search(step)
        if m:
            target = m.group(1).strip()
            said = quotes[int(target[2:])] if target.startswith("@q") else target
            step = step[: m.start()] + " " + step[m.end():]
            span, description = _word_span(said, spans, transcript_given)
            return (span, description, step, None) if span else (None, "", step, description)
    for pattern, fn in ABSOLUTE:
        m = re.search(pattern, step)
        if m:
            numbers = [float(g) for g in m.groups()]
            t0, t1 = fn(*numbers, duration)
            step = step[: m.start()] + " " + step[m.end():]
            if not (0 <= t0 < t1 <= duration + 1e-6):
                return None, "", step, (f"time {m.group(0).strip()!r} is outside the audio "
                                        f"(0 to {duration:.2f} s)")
            return (t0, t1), m.group(0).strip(), step, None
    for pattern, (a, b) in RELATIVE:
        m = re.search(pattern, step)
        if m:
            step = step[: m.start()] + " " + step[m.end():]
            return _snap((a * duration, b * duration), duration, pauses), m.group(0).strip(), step, None
    return None, "", step, None


def _word_span(said: str, spans, transcript_given):
    """((t0, t1), description) of the first occurrence of the words ``said`` in the transcript, or
    (None, reason)."""
    target = re.findall(r"[a-z0-9][a-z0-9'\-]*", said.lower())
    if not transcript_given:
        return None, f"needs a transcript to place {said!r} in time (give --transcript)"
    words = [w for w, _, _ in spans]
    for i in range(len(words) - len(target) + 1):
        if target and words[i:i + len(target)] == target:
            return (spans[i][1], spans[i + len(target) - 1][2]), f"while saying {said!r}"
    return None, f"{said!r} is not in the transcript"


def _snap(span, duration, pauses):
    """Move each end of a relative span to a pause within SNAP_S, so shots cut where the speaker pauses."""
    out = []
    for t in span:
        near = [p for p in pauses if abs(p - t) <= SNAP_S and 0 < t < duration]
        out.append(min(near, key=lambda p: (abs(p - t), p)) if near else t)
    return (out[0], out[1]) if out[1] > out[0] else span


def _phrases(step: str, quotes: list[str]) -> list[str]:
    phrases = []
    for part in re.split(PHRASE_BREAK, step):
        part = re.sub(r"@q(\d+)", lambda m: quotes[int(m.group(1))], part)
        words = re.findall(r"[a-z0-9][a-z0-9'\-]*", part)
        if words and not all(w in FILLER for w in words):
            phrases.append(" ".join(words))
    return phrases


def match_phrase(phrase: str) -> list[dict]:
    """Every control one phrase names: ``[{kind, value, score, intensity}]`` (empty: nothing matched)."""
    from .text import embedder, lexicon_forms, nrc_lexicon

    intensity = None
    core = f" {phrase} "
    for word, level in sorted(vocab.INTENSIFIERS.items(), key=lambda kv: -len(kv[0])):
        if f" {word} " in core:
            intensity = level if intensity is None else intensity
            core = core.replace(f" {word} ", " ")
    core = core.strip()
    found = []
    emb = embedder()
    if core:
        labels, prototypes = _prototypes()
        scores = emb.embed(prototypes) @ emb.embed([core])[0]
        best = int(np.argmax(scores))
        if scores[best] >= vocab.MATCH_THRESHOLD:
            kind, value = labels[best]
            level = intensity if intensity is not None else (vocab.GESTURE_INTENSITY[value] if kind == "gesture"
                                                             else None)
            found.append({"kind": kind, "value": value, "score": round(float(scores[best]), 3), "intensity": level})
    # Emotion words through the lexicon. NRC tags many plain words ("wear" → trust, "start" → anticipation), so
    # a tagged word counts only in an emotion slot: after "look", "feel", "sound"..., as an adverb ("nod happily"),
    # or when it is near an emotion prototype (vocab.EMOTION_THRESHOLD). In a phrase that already names a motion
    # only adverbs count, so that "nod in agreement" does not read "agreement" as trust.
    lexicon = nrc_lexicon()
    emotions = {e: ps for e, ps in vocab.CONTROLS["emotion"].items() if ps}
    tokens = core.split()
    for i, word in enumerate(tokens):
        adverb = word.endswith("ly")
        if found and not adverb:
            continue
        tags = next((lexicon[f] for f in lexicon_forms(word) if f in lexicon), ())
        tags = [t for t in tags if t in emotions]
        if tags:
            query = emb.embed([word])[0]
            sims = {t: float((emb.embed(list(emotions[t])) @ query).max()) for t in tags}
            slot = adverb or (i > 0 and tokens[i - 1] in vocab.EMOTION_VERBS)
            if not slot and max(sims.values()) < vocab.EMOTION_THRESHOLD:
                continue
            value = max(tags, key=lambda t: (sims[t], -tags.index(t)))
            found.append({"kind": "emotion", "value": value, "score": round(sims[value], 3), "word": word,
                          "intensity": intensity})
            break
    return found


def _prototypes() -> tuple[list[tuple[str, str]], list[str]]:
    labels, phrases = [], []
    for kind in MATCH_KINDS:
        for value, protos in vocab.CONTROLS[kind].items():
            for p in protos:
                labels.append((kind, value))
                phrases.append(p)
    return labels, phrases


# --------------------------------------------------------------------------------------------------------------
# Shots


def build_shots(controls: list[dict], duration: float, fps: int, pauses: list[float], spans) -> list[dict]:
    """Cut [0, duration] at pauses and at control ends (on the frame grid); each shot takes the controls over it."""
    last = n_frames(duration, fps)
    cuts = {0, last}
    for t in pauses + [c["t0"] for c in controls] + [c["t1"] for c in controls]:
        cuts.add(min(max(int(round(t * fps)), 0), last))
    cuts = sorted(cuts)
    shots = []
    for a, b in zip(cuts, cuts[1:]):
        t0, t1 = a / fps, min(b / fps, duration)
        mid = (t0 + t1) / 2
        shot = {"t0": round(t0, 3), "t1": round(t1, 3),
                "text": " ".join(w for w, s, e in spans if t0 <= (s + e) / 2 < t1), **vocab.NEUTRAL,
                "intensity": vocab.NEUTRAL_INTENSITY}
        level = None
        for c in controls:  # instruction order: a later control of the same kind wins
            if c["t0"] <= mid < c["t1"]:
                shot[c["kind"]] = c["value"]
                level = c["intensity"] if c.get("intensity") is not None else level
        shot["intensity"] = level if level is not None else vocab.GESTURE_INTENSITY[shot["gesture"]]
        shots.append({k: shot[k] for k in SHOT_FIELDS})
    return shots


# --------------------------------------------------------------------------------------------------------------
# Validation


def validate_plan(plan, audio_duration: float) -> dict:
    """Check a (possibly hand-edited) plan against its audio; a one-line PlanError on the first problem."""
    if not isinstance(plan, dict):
        raise PlanError(f"a plan is a JSON object, got {type(plan).__name__}")
    for key, kind in (("duration", (int, float)), ("fps", int), ("shots", list)):
        if key not in plan:
            raise PlanError(f"plan has no {key!r}")
        if not isinstance(plan[key], kind) or isinstance(plan[key], bool):
            raise PlanError(f"plan {key!r} has the wrong type: {type(plan[key]).__name__}")
    fps, duration = plan["fps"], float(plan["duration"])
    if fps <= 0:
        raise PlanError(f"plan fps must be positive, got {fps}")
    tolerance = 1.0 / fps
    if abs(duration - audio_duration) > tolerance:
        raise PlanError(f"plan duration {duration:.3f} s does not match the audio ({audio_duration:.3f} s)")
    previous_end = 0.0
    for i, shot in enumerate(plan["shots"]):
        where = f"shot {i}"
        if not isinstance(shot, dict):
            raise PlanError(f"{where} is not an object")
        missing = [k for k in SHOT_FIELDS if k not in shot]
        if missing:
            raise PlanError(f"{where} lacks {missing}")
        extra = sorted(set(shot) - set(SHOT_FIELDS))
        if extra:
            raise PlanError(f"{where} has unknown fields {extra}; a shot has {list(SHOT_FIELDS)}")
        for key in ("t0", "t1", "intensity"):
            value = shot[key]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise PlanError(f"{where} {key} must be a number, got {value!r}")
        if not isinstance(shot["text"], str):
            raise PlanError(f"{where} text must be a string, got {shot['text']!r}")
        for kind in vocab.CONTROLS:
            try:
                vocab.check_value(kind, shot[kind])
            except PlanError as exc:
                raise PlanError(f"{where}: {exc}") from None
        if not 0.0 <= shot["intensity"] <= 1.0:
            raise PlanError(f"{where} intensity must be in [0, 1], got {shot['intensity']}")
        if shot["t0"] < 0 or shot["t1"] <= shot["t0"]:
            raise PlanError(f"{where} has t0 {shot['t0']} and t1 {shot['t1']}; need 0 <= t0 < t1")
        if shot["t1"] > audio_duration + tolerance / 2:
            raise PlanError(f"{where} ends at {shot['t1']} s, past the end of the audio ({audio_duration:.3f} s)")
        if shot["t0"] < previous_end - 1e-6:
            raise PlanError(f"{where} starts at {shot['t0']} s, before the previous shot ends ({previous_end} s)")
        previous_end = shot["t1"]
    return plan
