"""`bench run --task instruction`: the bundled instruction set, generated on the test identities and scored for
adherence against the same audio with the neutral (empty) instruction.

Jobs: every test clip (its first frame is the portrait, its audio the speech) × every bundled instruction, plus one
neutral video per clip. ``ours`` generates them with ``models.directed`` (``--checkpoint`` an audio2motion
checkpoint, ``--motion-checkpoint`` its stage-1 checkpoint); a ``folder:PATH`` method supplies them::

    PATH/<clip_id>/neutral.mp4          the clip's audio with the empty instruction
    PATH/<clip_id>/<instruction_id>.mp4 one per bundled instruction (i01 … i45), any square size, 25 fps,
                                        the same number of frames as the neutral video (±1)

Scoring (``metrics.instruction``): face tracks of every video through the shared face module; for each expected
control of an instruction, ``adherence`` over its span (relative spans are fractions of the audio, "seconds" and
"seconds-from-end" absolute; "word" spans need a transcript, so without one they are null rows, reason
``no_transcript``). Rows: ``adh_<control>`` per (clip, instruction, control) = direction × effect (higher = followed
better; the success margin is in ``extra``), ``success_<control>`` and ``success`` (success rates over the run,
set-level), and CSIM / Sync-C / Sync-D of every directed video and FID of them against the test clips, through the
Evaluator (null with the install command when their weights are missing).
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import numpy as np

from ..errors import ConfigError

# control (kind:value) → metric suffix; controls scored by one measure share a metric (expression amplitude).
CONTROL_METRIC = {
    "head:nod": "nod", "head:shake": "shake", "head:tilt": "tilt", "head:still": "still",
    "camera:zoom-in": "zoom_in", "camera:zoom-out": "zoom_out", "camera:pan": "pan", "camera:static": "static",
    **{f"emotion:{e}": "emotion" for e in ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise",
                                           "trust")},
    "gesture:calm": "gesture", "gesture:animated": "gesture", "intensity:high": "intensity",
    "intensity:low": "intensity",
}
GENERATED_METRICS = ("csim", "sync_c", "sync_d")  # per directed video, through the Evaluator
SET_METRICS = ("fid",)


def load_instructions() -> list[dict]:
    doc = json.loads(files("talkbench").joinpath("data/instructions.json").read_text())
    return doc["instructions"]


def select_instructions(ids) -> list[dict]:
    """The bundled instructions with these ids, in the bundle's order; an unknown id is a ConfigError."""
    bundle = load_instructions()
    wanted = [i.strip() for i in ids if i.strip()]
    known = {i["id"] for i in bundle}
    unknown = [i for i in wanted if i not in known]
    if unknown or not wanted:
        raise ConfigError(f"unknown instruction {unknown[0] if unknown else ''!r}; choose from {sorted(known)}")
    return [i for i in bundle if i["id"] in set(wanted)]


def expected_span(expect: dict, duration: float, words: list | None = None) -> tuple[float, float] | None:
    """(t0, t1) seconds of one expected effect, or None when it cannot be placed (a word with no transcript, or
    not in it). ``words``: ``[(word, t0, t1)]`` from ``director.segments.word_spans``."""
    span = expect["span"]
    unit = span["unit"]
    if unit == "relative":
        return span["t0"] * duration, span["t1"] * duration
    if unit == "seconds":
        return float(span["t0"]), duration if span["t1"] == "end" else min(float(span["t1"]), duration)
    if unit == "seconds-from-end":
        return max(duration - span["t0"], 0.0), duration - span["t1"]
    if unit == "word":
        target = span["word"].lower()
        hit = next(((a, b) for w, a, b in (words or []) if w == target), None)
        return hit
    raise ConfigError(f"unknown span unit {unit!r}; choose from ['relative', 'seconds', 'seconds-from-end', 'word']")


def score_videos(videos: dict[str, np.ndarray], neutral: np.ndarray, clip_id: str, duration: float,
                 instructions: list[dict], fps: float = 25.0, words: list | None = None) -> list[dict]:
    """Adherence rows of one clip: ``videos`` instruction id → frames (T, H, W, 3), ``neutral`` the neutral frames."""
    from ..metrics.instruction import adherence, face_tracks

    base = face_tracks(neutral)
    rows = []
    for item in instructions:
        job = f"{clip_id}/{item['id']}"
        frames = videos.get(item["id"])
        tracks = None
        if frames is not None:
            try:
                tracks = face_tracks(frames)
            except ConfigError as exc:
                tracks = str(exc)
        for expect in item["expect"]:
            control = f"{expect['kind']}:{expect['value']}"
            metric = f"adh_{CONTROL_METRIC[control]}"
            extra = {"instruction": item["id"], "control": control}
            span = expected_span(expect, duration, words)
            if frames is None:
                rows.append(_null(metric, job, "missing_output", extra))
            elif isinstance(tracks, str):
                rows.append(_null(metric, job, "no_face", {**extra, "error": tracks}))
            elif span is None:
                rows.append(_null(metric, job, "no_transcript", extra))
            else:
                r = adherence(tracks, base, expect["kind"], expect["value"], span, fps)
                rows.append({"metric": metric, "value": float(r["direction"] * r["effect"]), "null_reason": None,
                             "n": 1, "clip_id": job, "flags": None, "weights": None,
                             "extra": json.dumps({**extra, "success": r["success"], "margin": r["margin"],
                                                  "measure": r["measure"], "target": r["target"],
                                                  "neutral": r["neutral"], "span_s": [round(s, 3) for s in span]},
                                                 sort_keys=True)})
    return rows


def _null(metric, job, reason, extra):
    return {"metric": metric, "value": None, "null_reason": reason, "n": None, "clip_id": job, "flags": None,
            "weights": None, "extra": json.dumps(extra, sort_keys=True)}


def success_rows(rows: list[dict]) -> list[dict]:
    """Success rate per adherence metric (``success_<control>``) and over every scored control (``success``)."""
    by: dict[str, list[bool]] = {}
    for r in rows:
        if r["metric"].startswith("adh_") and r["value"] is not None:
            ok = json.loads(r["extra"])["success"]
            by.setdefault("success_" + r["metric"][4:], []).append(ok)
            by.setdefault("success", []).append(ok)
    return [{"metric": m, "value": float(np.mean(v)), "null_reason": None, "n": len(v), "clip_id": None,
             "flags": None, "weights": None, "extra": None} for m, v in sorted(by.items())]


# --------------------------------------------------------------------------------------------------------------
# generation (ours) and reading (folder:PATH)


def generate_ours(out: Path, clip: dict, source: np.ndarray, audio_path: Path, instructions: list[dict],
                  checkpoint, motion_checkpoint, steps: int = 20) -> None:
    """Write OUT/<clip_id>/{neutral,<id>}.mp4 with the directed model (skips videos already written: resume)."""
    from PIL import Image

    from ..models.directed import DirectedConfig, generate_directed

    folder = out / clip["clip_id"]
    folder.mkdir(parents=True, exist_ok=True)
    portrait = folder / "portrait.png"
    if not portrait.exists():
        Image.fromarray(source).save(portrait)
    cfg = DirectedConfig(steps=steps, blueprint_steps=max(1, steps // 2))
    for name, text in [("neutral", "")] + [(i["id"], i["instruction"]) for i in instructions]:
        video = folder / f"{name}.mp4"
        if not video.exists():
            generate_directed(portrait, audio_path, checkpoint, motion_checkpoint, video, instruction=text,
                              transcript=clip.get("transcript") or None, cfg=cfg)


def read_outputs(folder: Path, clip_id: str, instructions: list[dict]) -> tuple[np.ndarray, dict]:
    """(neutral frames, {instruction id: frames}) of one clip from the folder layout; a video whose length differs
    from the neutral one by more than a frame is left out (its rows are null, ``missing_output``)."""
    from ..media import read_frames

    base = folder / clip_id
    if not (base / "neutral.mp4").is_file():
        raise ConfigError(f"{base / 'neutral.mp4'} is missing: the instruction task needs PATH/<clip_id>/neutral.mp4 "
                          "beside PATH/<clip_id>/<instruction_id>.mp4")
    neutral = read_frames(base / "neutral.mp4")
    videos = {}
    for item in instructions:
        path = base / f"{item['id']}.mp4"
        if path.is_file():
            frames = read_frames(path)
            if abs(len(frames) - len(neutral)) <= 1:
                videos[item["id"]] = frames[: len(neutral)]
    return neutral, videos


def run_instruction(cfg, instructions: list[dict] | None = None):
    """The instruction task of ``bench run``: generate (ours) or read (folder:PATH), score, write results.parquet
    and summary.json in ``cfg.out``. Returns a BenchResult."""
    from .. import __version__
    from ..manifests import write_table
    from ..manifests.frames import read_video, resize_frames
    from ..media import read_audio
    from .methods import check_method_name
    from .run import BenchResult, load_protocol, make_evaluator, read_split, summarise, write_summary
    from .tasks import get_task

    task = get_task(cfg.task)
    key, arg = check_method_name(cfg.method)
    if key not in ("ours", "folder"):
        raise ConfigError(f"method {cfg.method!r} does not support task 'instruction'; use ours or folder:PATH")
    if instructions is None:
        ids = getattr(cfg, "instructions", None)
        instructions = select_instructions(ids) if ids else load_instructions()
    clips = [c for c in read_split(cfg.manifest, cfg.split) if c.get("has_audio")]
    if not clips:
        raise ConfigError(f"task 'instruction' needs audio, and no clip of split {cfg.split!r} has any")
    clips = sorted(clips, key=lambda c: c["clip_id"])[: cfg.limit or None]
    out = Path(cfg.out)
    root = Path(cfg.manifest).resolve().parent
    if key == "ours":
        checkpoint, motion = getattr(cfg, "checkpoint", None), getattr(cfg, "motion_checkpoint", None)
        if not checkpoint or not motion:
            raise ConfigError("method 'ours' on task 'instruction' needs --checkpoint A2M.pt and "
                              "--motion-checkpoint STAGE1.pt")
        for path in (checkpoint, motion):
            if not Path(path).is_file():
                raise ConfigError(f"checkpoint {path} does not exist")
        folder = out / "videos"
    else:
        folder = Path(arg)
        if not folder.is_dir():
            raise ConfigError(f"folder method: {folder} is not a folder (expected PATH/<clip_id>/<instruction>.mp4)")
        lacking = [c["clip_id"] for c in clips if not (folder / c["clip_id"] / "neutral.mp4").is_file()]
        if lacking:
            raise ConfigError(f"{folder / lacking[0] / 'neutral.mp4'} is missing ({len(lacking)} clips lack one): the "
                              "instruction task needs PATH/<clip_id>/neutral.mp4 beside PATH/<clip_id>/<id>.mp4")
    protocol = load_protocol(cfg.protocol)
    run_info = {"method": cfg.method if key == "folder" else "ours", "task": task.name, "split": cfg.split,
                "manifest": str(cfg.manifest), "protocol_id": protocol.protocol_id, "seed": None,
                "talkbench_version": __version__, "instructions": len(instructions),
                "instruction_ids": [i["id"] for i in instructions]}
    out.mkdir(parents=True, exist_ok=True)
    rows, records = [], {}
    evaluator = make_evaluator(cfg.protocol, GENERATED_METRICS, cfg.device)
    fid = make_evaluator(cfg.protocol, SET_METRICS, cfg.device)
    for clip in clips:
        clip_path = root / clip["path"]
        audio = read_audio(clip_path, 16000)
        duration = len(audio) / 16000
        source = read_video(clip_path, protocol, duration=0.5).frames[0]  # at the protocol size
        if key == "ours":
            wav = out / "audio" / f"{clip['clip_id']}.wav"
            if not wav.exists():
                from ..media import write_wav

                wav.parent.mkdir(parents=True, exist_ok=True)
                write_wav(wav, audio)
            generate_ours(folder, clip, source, wav, instructions, cfg.checkpoint, cfg.motion_checkpoint,
                          steps=int(getattr(cfg, "steps", 20) or 20))
        neutral, videos = read_outputs(folder, clip["clip_id"], instructions)
        words = []
        if clip.get("transcript"):
            from ..director.segments import speech_segments, word_spans

            words = word_spans(clip["transcript"], speech_segments(audio))
        clip_rows = score_videos(videos, neutral, clip["clip_id"], duration, instructions, protocol.fps, words)
        gt = read_video(clip_path, protocol).frames
        for iid, frames in videos.items():
            if frames.shape[1:3] != (protocol.size, protocol.size):  # the Evaluator scores at the protocol size
                frames = resize_frames(frames, protocol)
            a = audio[: int(round(len(frames) / protocol.fps * 16000))]
            for r in evaluator.add_video(f"{clip['clip_id']}/{iid}", frames, source=source, audio=a):
                clip_rows.append({"clip_id": f"{clip['clip_id']}/{iid}", "flags": None, "weights": None,
                                  "extra": None, **r})
            fid.add_video(f"{clip['clip_id']}/{iid}", frames[: len(gt)], gt=gt[: len(frames)])
        records[clip["clip_id"]] = {"ok": True, "reason": None}
        rows += clip_rows
    rows += success_rows(rows)
    rows += [{"clip_id": None, "flags": None, "weights": None, "extra": None, **r} for r in fid.finalize()]
    common = {"protocol_id": protocol.protocol_id, "protocol_digest": protocol.digest,
              "protocol_standard": evaluator.protocol_standard, "method": run_info["method"], "task": task.name,
              "split": cfg.split, "talkbench_version": __version__}
    rows = [{**common, **{k: r.get(k) for k in ("metric", "value", "null_reason", "n", "clip_id", "flags",
                                                 "weights", "extra")}} for r in rows]
    (out / "summary.json").unlink(missing_ok=True)  # a summary always describes the results.parquet beside it
    write_table(rows, out / "results.parquet", "results")
    summary = summarise(rows, run_info, evaluator.missing_weights() or {}, records, n_boot=cfg.n_boot)
    write_summary(out, summary)
    (out / "run.json").write_text(json.dumps(run_info, indent=1, sort_keys=True))
    return BenchResult(out, rows, summary, len(clips) * (len(instructions) + 1), 0)


# Instructions of the demo's table: one per control the tiny models are checked on (nod, shake, zoom) plus tilt and
# pan; the whole set costs about a minute of CPU per video at the demo's size.
DEMO_INSTRUCTIONS = ("i01", "i02", "i03", "i05", "i07")


def demo_instruction_run(out: Path, manifest: Path, motion_checkpoint: Path, checkpoint: Path, *,
                         ids=DEMO_INSTRUCTIONS, limit: int = 1, steps: int = 10, quiet: bool = True) -> Path:
    """`talkbench demo run`'s instruction-following step: ``ours`` (the demo's trained tiny checkpoints) on
    ``limit`` test clips and the instructions ``ids``; returns the run folder for ``bench publish``. Resumes: the
    videos already in OUT/videos are kept."""
    from .run import BenchConfig

    chosen = select_instructions(ids)
    cfg = BenchConfig(method="ours", task="instruction", manifest=str(manifest), out=str(out), split="test",
                      limit=limit, quiet=quiet)
    cfg.checkpoint, cfg.motion_checkpoint, cfg.steps = str(checkpoint), str(motion_checkpoint), steps
    run_instruction(cfg, chosen)
    return Path(out)
