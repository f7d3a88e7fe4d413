"""The offline text embedding and the emotion lexicon: MODELS.md's figures, and the measured thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from talkbench.director import text, vocab
from talkbench.errors import MissingDependencyError

# Paraphrases that are in no prototype list, and phrases that name no control.
PARAPHRASES = {
    ("head", "nod"): ["nod a few times", "nods along", "give a nod", "nod in agreement"],
    ("head", "shake"): ["shake the head", "shakes his head", "shake head to disagree", "head shaking"],
    ("head", "tilt"): ["tilt the head slightly", "tilted head", "head tilt", "tilt head to the left"],
    ("head", "still"): ["keep the head steady", "head stays still", "hold still", "no head movement"],
    ("camera", "zoom-in"): ["zoom in slowly", "zoom into the face", "tight close-up", "camera zooms in"],
    ("camera", "zoom-out"): ["zoom out slowly", "camera zooms out", "wider shot", "pull out to a wide shot"],
    ("camera", "pan"): ["pan to the left", "slow pan", "the camera pans", "pan across"],
    ("camera", "static"): ["camera stays still", "keep the camera fixed", "static shot", "no camera motion"],
    ("gesture", "calm"): ["stay calm", "calm and relaxed", "subtle motion", "very little movement"],
    ("gesture", "animated"): ["lively gestures", "energetic", "be animated", "gesture energetically"],
}
UNRELATED = ["read the news", "wear a red hat", "the weather is nice", "speak louder", "talk about the budget",
             "look at the audience", "open the window", "drink some water", "blue background",
             "the speaker is a teacher", "say something", "introduce yourself", "explain the plan",
             "use simple words", "sing a song", "hello"]


def test_wordllama_from_the_wheel_reproduces_the_measured_similarities():
    emb = text.embedder()
    figures = [("nod your head", "nodding", 0.68), ("nod your head", "zoom in", -0.01),
               ("shake your head", "shaking head no", 0.81), ("happy", "joyful", 0.55), ("happy", "sad", 0.18)]
    for a, b, want in figures:
        assert emb.similarity(a, b) == pytest.approx(want, abs=0.01), (a, b)
    assert emb.embed(["nod"]).shape == (1, 256)


def test_match_threshold_separates_paraphrases_from_unrelated_phrases():
    from talkbench.director.plan import _prototypes

    emb = text.embedder()
    labels, protos = _prototypes()
    P = emb.embed(protos)
    own = []
    for key, phrases in PARAPHRASES.items():
        for phrase in phrases:
            scores = P @ emb.embed([phrase])[0]
            assert labels[int(np.argmax(scores))] == key, phrase
            own.append(scores.max())
    unrelated = [float((P @ emb.embed([p])[0]).max()) for p in UNRELATED]
    # Measured: paraphrases 0.55 and up, unrelated at most 0.28; the threshold (0.41) sits between.
    assert min(own) == pytest.approx(0.547, abs=0.01) and max(unrelated) == pytest.approx(0.279, abs=0.01)
    assert max(unrelated) < vocab.MATCH_THRESHOLD < min(own)


def test_nrc_lexicon_is_read_from_its_file():
    lex = text.nrc_lexicon()
    assert len(lex) == 6468
    assert lex["happy"] == ("anticipation", "joy", "positive", "trust")
    assert "sad" not in lex and "sadness" in text.lexicon_forms("sad")
    assert "angry" in text.lexicon_forms("angrily")


def test_emotion_threshold_rejects_plain_words_the_lexicon_tags():
    from talkbench.director.plan import match_phrase

    for phrase, emotion in [("smile", "joy"), ("look sad", "sadness"), ("look gloomy", "sadness"),
                            ("shake your head angrily", "anger"), ("look afraid", "fear"), ("laugh", "joy")]:
        found = {c["kind"]: c["value"] for c in match_phrase(phrase)}
        assert found.get("emotion") == emotion, phrase
    for phrase in ["wear a red hat", "start talking", "explain the plan", "nod in agreement"]:
        assert all(c["kind"] != "emotion" for c in match_phrase(phrase)), phrase


def test_missing_package_is_one_line_with_the_install_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "wordllama", None)
    with pytest.raises(MissingDependencyError, match=r"pip install wordllama==0\.3\.3\.post0"):
        text.Embedder()
