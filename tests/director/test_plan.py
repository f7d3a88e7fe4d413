"""make_plan / validate_plan on real espeak-ng speech: timing, schema, determinism, bad input."""

from __future__ import annotations

import json

import pytest

from talkbench.director.plan import SHOT_FIELDS, make_plan, n_frames, validate_plan
from talkbench.director.segments import speech_segments, word_spans
from talkbench.errors import PlanError

from director_speech import TRANSCRIPT


def _shots_with(plan, kind, value):
    return [s for s in plan["shots"] if s[kind] == value]


def test_segments_and_word_spans_follow_the_real_pauses(speech):
    _, audio, truth = speech
    segs = speech_segments(audio)
    assert len(segs) == 3
    for (a, b), (ta, tb) in zip(segs, truth):
        assert abs(a - ta) < 0.05 and abs(b - tb) < 0.05
    spans = {w: (a, b) for w, a, b in word_spans(TRANSCRIPT, segs)}
    assert spans["hello"] == pytest.approx(truth[1], abs=0.05)
    assert truth[2][0] - 0.05 <= spans["today"][0] < spans["plans"][1] <= truth[2][1] + 0.05


def test_nod_while_saying_hello_puts_a_nod_on_hello_only(speech):
    _, audio, truth = speech
    plan = make_plan(audio, "nod while saying hello", transcript=TRANSCRIPT)
    nods = _shots_with(plan, "head", "nod")
    assert len(nods) == 1
    t0, t1 = nods[0]["t0"], nods[0]["t1"]
    ta, tb = truth[1]
    assert abs(t0 - ta) <= 0.06 and abs(t1 - tb) <= 0.06  # within 1.5 frames of the true span of "hello"
    assert nods[0]["text"] == "hello"
    assert all(s["head"] == "none" for s in plan["shots"] if s is not nods[0])
    # Without a transcript the word cannot be placed: reported, no nod guessed.
    blind = make_plan(audio, "nod while saying hello")
    assert not _shots_with(blind, "head", "nod") and "transcript" in blind["unmatched"][0]["reason"]


def test_plan_schema_and_determinism(speech):
    _, audio, _ = speech
    instruction = "Look happy and nod, then shake your head. Zoom in at the end."
    a = make_plan(audio, instruction, transcript=TRANSCRIPT)
    b = make_plan(audio, instruction, transcript=TRANSCRIPT)
    assert json.dumps(a) == json.dumps(b)
    assert a["n_frames"] == n_frames(a["duration"], 25) == round(len(audio) / 16000 * 25)
    assert [list(s) for s in a["shots"]] == [list(SHOT_FIELDS)] * len(a["shots"])
    assert a["shots"][0]["t0"] == 0 and a["shots"][-1]["t1"] == pytest.approx(a["duration"], abs=0.04)
    assert all(x["t1"] == y["t0"] for x, y in zip(a["shots"], a["shots"][1:]))
    d = a["duration"]
    nod, shake, zoom = (_shots_with(a, "head", "nod"), _shots_with(a, "head", "shake"),
                        _shots_with(a, "camera", "zoom-in"))
    assert max(s["t1"] for s in nod) <= d / 2 + 0.3 < min(s["t0"] for s in shake) + 0.6
    assert min(s["t0"] for s in zoom) == pytest.approx(2 * d / 3, abs=0.3)
    assert {s["emotion"] for s in nod} == {"joy"}


def test_empty_instruction_is_the_neutral_plan(speech):
    _, audio, _ = speech
    plan = make_plan(audio, "   ")
    assert plan["notes"] == ["empty instruction: the neutral plan"] and not plan["controls"]
    assert {(s["head"], s["camera"], s["emotion"], s["gesture"], s["intensity"]) for s in plan["shots"]} == \
        {("none", "none", "neutral", "none", 0.5)}


def test_unknown_phrases_are_all_listed(speech):
    _, audio, _ = speech
    plan = make_plan(audio, "wear a red hat, read the news and nod")
    assert [u["phrase"] for u in plan["unmatched"]] == ["wear a red hat", "read the news"]
    assert [(c["kind"], c["value"]) for c in plan["controls"]] == [("head", "nod")]


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["shots"][-1].update(t1=p["duration"] + 1.0), "past the end of the audio"),
    (lambda p: p["shots"][0].update(head="wiggle"), "unknown head control 'wiggle'"),
    (lambda p: p["shots"][0].update(intensity="high"), "intensity must be a number"),
    (lambda p: p["shots"][0].update(mood="x"), r"unknown fields \['mood'\]"),
    (lambda p: p.update(fps="25"), "'fps' has the wrong type"),
    (lambda p: p["shots"].reverse(), "before the previous shot ends"),
])
def test_validate_plan_refuses_bad_edits_in_one_line(speech, edit, message):
    _, audio, _ = speech
    plan = make_plan(audio, "nod", transcript=TRANSCRIPT)
    edit(plan)
    with pytest.raises(PlanError, match=message) as err:
        validate_plan(plan, len(audio) / 16000)
    assert "\n" not in str(err.value)


def test_the_bundled_instruction_set(speech):
    """≥ 40 instructions, every control singly and combined, effects agree with the metric, and the director
    reads each instruction into exactly its expected controls and spans."""
    from importlib.resources import files

    from talkbench.director import vocab
    from talkbench.metrics.instruction import EFFECTS

    doc = json.loads(files("talkbench").joinpath("data/instructions.json").read_text())
    items = doc["instructions"]
    assert len(items) >= 40 and len({i["id"] for i in items}) == len(items)
    singles = {(e["kind"], e["value"]) for i in items if len(i["expect"]) == 1 for e in i["expect"]}
    every = {(k, v) for k in vocab.CONTROLS for v in vocab.CONTROLS[k] if v not in ("none", "neutral")}
    assert every <= singles
    assert sum(len(i["expect"]) > 1 for i in items) >= 10
    _, audio, _ = speech
    d = round(len(audio) / 16000, 3)
    for item in items:
        plan = make_plan(audio, item["instruction"], transcript=item.get("transcript"))
        assert not plan["unmatched"], (item["id"], plan["unmatched"])
        got = {(c["kind"], c["value"]): c for c in plan["controls"]}
        for e in item["expect"]:
            measure, direction = EFFECTS[(e["kind"], e["value"])]
            assert (e["measure"], e["direction"]) == (measure, "up" if direction > 0 else "down")
            if e["kind"] == "intensity":
                levels = {s["intensity"] for s in plan["shots"]}
                assert (max(levels) > 0.5) if e["value"] == "high" else (min(levels) < 0.5), item["id"]
                continue
            c = got[(e["kind"], e["value"])]
            span = e["span"]
            if span["unit"] == "relative":
                want = (span["t0"] * d, span["t1"] * d)
            elif span["unit"] == "seconds":
                want = (span["t0"], d if span["t1"] == "end" else span["t1"])
            elif span["unit"] == "seconds-from-end":
                want = (d - span["t0"], d - span["t1"])
            else:
                (w, a, b), = [x for x in word_spans(item["transcript"], speech_segments(audio)) if x[0] == span["word"]]
                want = (a, b)
            assert c["t0"] == pytest.approx(want[0], abs=0.31) and c["t1"] == pytest.approx(want[1], abs=0.31), \
                (item["id"], e, c)


def test_timing_words_bind_to_their_phrase_or_to_the_whole_step(speech):
    _, audio, truth = speech
    d = round(len(audio) / 16000, 3)
    plan = make_plan(audio, "Keep the camera still and tilt your head at the end.", transcript=TRANSCRIPT)
    got = {c["value"]: (c["t0"], c["t1"]) for c in plan["controls"]}
    assert got["static"] == (0.0, d) and got["tilt"][0] == pytest.approx(2 * d / 3, abs=0.3)
    plan = make_plan(audio, "While saying hello, tilt your head and smile.", transcript=TRANSCRIPT)
    for c in plan["controls"]:
        assert (c["t0"], c["t1"]) == pytest.approx(truth[1], abs=0.06), c
    assert {c["value"] for c in plan["controls"]} == {"tilt", "joy"}
    plan = make_plan(audio, "at the end")
    assert not plan["controls"] and "no control to place" in plan["unmatched"][0]["reason"]
    plan = make_plan(audio, "nod from 10 to 20 seconds")
    assert not plan["controls"] and "outside the audio" in plan["unmatched"][0]["reason"]
