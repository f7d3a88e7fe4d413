"""The closed control vocabulary of the director: every value a plan may hold, with prototype phrases.

One registry, ``CONTROLS``: control kind → value → prototype phrases. An instruction phrase is matched to the
value whose prototypes are nearest in the text embedding (``talkbench.director.text``); emotions are found
through the NRC lexicon instead, and their prototypes only break ties between a word's lexicon emotions.
``NEUTRAL`` is the value of each kind when the instruction says nothing about it ("none": the model decides).
"""

from __future__ import annotations

from ..errors import PlanError

# Prototype phrases are short and plain; paraphrases beyond them are left to the embedding.
CONTROLS: dict[str, dict[str, tuple[str, ...]]] = {
    "head": {
        "none": (),
        "nod": ("nod", "nod your head", "nodding", "nod yes", "agree by nodding", "bob the head up and down"),
        "shake": ("shake your head", "shaking head no", "head shake", "shake the head from side to side",
                  "say no with the head"),
        "tilt": ("tilt your head", "head tilted to one side", "tilt the head", "lean the head sideways",
                 "cock the head"),
        "still": ("keep your head still", "hold the head steady", "do not move the head", "head motionless",
                  "freeze the head"),
    },
    "camera": {
        "none": (),
        "zoom-in": ("zoom in", "close-up", "move the camera closer", "push in", "zoom in on the face",
                    "closer shot"),
        "zoom-out": ("zoom out", "wide shot", "pull the camera back", "pull back", "zoom out to a wider view"),
        "pan": ("pan the camera", "camera pans sideways", "pan left", "pan right", "slide the camera across",
                "camera pan"),
        "static": ("static camera", "keep the camera still", "fixed camera", "locked-off shot",
                   "no camera movement"),
    },
    "gesture": {
        "none": (),
        "calm": ("calm", "subtle movements", "relaxed and restrained", "gentle and quiet", "move very little",
                 "low energy"),
        "animated": ("animated gestures", "lively and energetic", "gesture a lot", "very expressive",
                     "high energy", "move a lot"),
    },
    # The eight NRC emotions (the lexicon's sentiments "positive"/"negative" are not emotions of a face).
    "emotion": {
        "neutral": (),
        "anger": ("angry", "furious", "anger"),
        "anticipation": ("eager", "expectant", "anticipation"),
        "disgust": ("disgusted", "revolted", "disgust"),
        "fear": ("afraid", "scared", "fear"),
        "joy": ("happy", "joyful", "cheerful", "joy"),
        "sadness": ("sad", "sorrowful", "sadness"),
        "surprise": ("surprised", "astonished", "surprise"),
        "trust": ("trusting", "confident", "trust"),
    },
}

NEUTRAL: dict[str, str] = {"head": "none", "camera": "none", "gesture": "none", "emotion": "neutral"}
NEUTRAL_INTENSITY = 0.5

# Intensity of expression and motion in [0, 1]; a gesture value or an intensifier word sets it.
GESTURE_INTENSITY = {"none": NEUTRAL_INTENSITY, "calm": 0.25, "animated": 0.9}
INTENSIFIERS = {"very": 0.9, "strongly": 0.9, "extremely": 1.0, "really": 0.8, "a lot": 0.9,
                "slightly": 0.25, "a little": 0.25, "a bit": 0.3, "subtly": 0.2, "gently": 0.3}

# Measured on the phrase set in tests/director/test_text.py (40 paraphrases, 16 unrelated phrases): every
# paraphrase's best prototype was of its own value, the lowest at 0.55 ("hold still"); the highest unrelated phrase
# scored 0.28 ("look at the audience"). The threshold is the midpoint.
MATCH_THRESHOLD = 0.41
# NRC-tagged words outside an emotion slot count only this near an emotion prototype. Measured (same test file):
# plain words NRC tags ("wear", "start", "time", "explain", ...) reach at most 0.24; "smile" 0.70, "laugh" 0.38.
EMOTION_THRESHOLD = 0.3
EMOTION_VERBS = {"look", "looks", "looking", "feel", "feels", "feeling", "sound", "sounds", "seem", "seems", "appear",
                 "appears", "be", "become", "get", "stay", "act", "turn", "grow", "is", "are", "become"}


def values(kind: str) -> tuple[str, ...]:
    """Every value of one control kind, in registry order."""
    if kind not in CONTROLS:
        raise PlanError(f"unknown control {kind!r}; choose from {sorted(CONTROLS)}")
    return tuple(CONTROLS[kind])


def check_value(kind: str, value) -> str:
    """``value`` if it is in the vocabulary of ``kind``, else a one-line PlanError."""
    choices = values(kind)
    if not isinstance(value, str) or value not in choices:
        raise PlanError(f"unknown {kind} control {value!r}; choose from {sorted(choices)}")
    return value
