"""`talkbench plan` as a user types it, on espeak-ng speech."""

from __future__ import annotations

import json

from talkbench.cli.main import main

from director_speech import TRANSCRIPT


def test_plan_nod_while_saying_hello_then_validate_the_edited_plan(speech, tmp_path, capsys):
    path, _, truth = speech
    out = tmp_path / "plan.json"
    argv = ["plan", "--audio", str(path), "--instruction", "nod while saying hello", "--transcript", TRANSCRIPT,
            "--out", str(out)]
    assert main(argv) == 0
    first = out.read_bytes()
    plan = json.loads(first)
    (nod,) = [s for s in plan["shots"] if s["head"] == "nod"]
    assert abs(nod["t0"] - truth[1][0]) <= 0.06 and abs(nod["t1"] - truth[1][1]) <= 0.06
    assert "head nod" in capsys.readouterr().out
    assert main(argv) == 0 and out.read_bytes() == first  # deterministic, byte for byte
    # A user edit that stays valid passes --plan; one past the audio is refused in one line.
    plan["shots"][0]["camera"] = "zoom-in"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(plan))
    assert main(["plan", "--audio", str(path), "--plan", str(edited)]) == 0
    plan["shots"][-1]["t1"] = plan["duration"] + 2
    edited.write_text(json.dumps(plan))
    capsys.readouterr()
    assert main(["plan", "--audio", str(path), "--plan", str(edited)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: shot") and "past the end of the audio" in err and "\n" not in err


def test_bad_input_is_one_line_before_any_output(speech, tmp_path, capsys):
    path, _, _ = speech
    out = tmp_path / "plan.json"
    cases = [
        (["--instruction", "wear a red hat and read the news"], "unmatched: 'wear a red hat'"),
        (["--instruction", "nod", "--source", str(tmp_path / "missing.png")], "source portrait not found"),
        ([], "give exactly one of --instruction"),
    ]
    for extra, message in cases:
        assert main(["plan", "--audio", str(path), *extra, "--out", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
        assert not out.exists()
    plan_file = tmp_path / "unknown.json"
    plan_file.write_text(json.dumps({"duration": 1.0, "fps": 25, "shots": []}))
    assert main(["plan", "--audio", str(path), "--plan", str(plan_file)]) == 1
    assert "does not match the audio" in capsys.readouterr().err


def test_empty_instruction_writes_the_neutral_plan_and_says_so(speech, tmp_path, capsys):
    path, _, _ = speech
    out = tmp_path / "plan.json"
    assert main(["plan", "--audio", str(path), "--instruction", "", "--out", str(out)]) == 0
    assert "empty instruction: the neutral plan" in capsys.readouterr().out
    assert {s["head"] for s in json.loads(out.read_text())["shots"]} == {"none"}
