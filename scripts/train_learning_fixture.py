"""Train the tiny stage-1 + stage-2 checkpoints that the speech learning test loads (issue 10), from the demo material.

    PYTHONPATH=src python scripts/train_learning_fixture.py --out tests/data/speech_learning
    PYTHONPATH=src python scripts/train_learning_fixture.py --out DIR --data CURATED   # reuse a curated demo

What it runs, the way a user types it (``RECIPE`` holds every number):
1. ``talkbench demo make DEMO`` and ``talkbench curate build-manifest DEMO/sources.csv --out DATA`` (unless ``--data``);
2. stage 1 on the train split: ``talkbench.models.train_motion.main`` with the ``tiny-mouth`` preset, the mouth-region
   L1 and near-in-time pairs (the CLI has no flags for those two), then the EMA weights are kept (``stage1.pt``);
3. ``talkbench extract-motion --split train`` with ``stage1.pt`` and ``talkbench extract-targets --split train``;
4. ``talkbench train audio2motion`` with the ``tiny-talk`` preset (teacher-forced, standardised variance adapter) and
   ``--mouth-weight``, then the EMA weights are kept (``a2m.pt``).
Writes ``stage1.pt``, ``a2m.pt`` and ``recipe.json`` (the recipe, the seeds, both files' sha256, the manifest's
sha256, torch's version and the wall time) into OUT. Training is on the CPU and deterministic for a given torch build
and thread count (``--threads``, recorded).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

RECIPE = {
    "stage1": {"preset": "tiny-mouth", "max_steps": 600, "batch_size": 4, "lr": 2e-3, "perceptual": "none-l1-pyramid",
               "near_pairs": 0.5, "seed": 0, "weights": {"gan": 0.0, "aam": 0.0, "triplet": 0.0, "club": 0.0,
                                                         "mouth": 30.0}},
    "stage2": {"preset": "tiny-talk", "window": 50, "max_steps": 600, "batch_size": 8, "lr": 1e-3, "mouth_weight": 5.0,
               "seed": 0},
}
# The head-turn checkpoints of the directed-generation test (issue 16, tests/data/head_turns): the demo made with
# --head-turns, stage 1 "tiny-turn" (the coarse flow) for 1500 steps, stage 2 "tiny-turn" (relative to the hint).
TURN_RECIPE = {
    "demo": ["--head-turns"],
    "stage1": {**RECIPE["stage1"], "preset": "tiny-turn", "max_steps": 1500},
    "stage2": {**RECIPE["stage2"], "preset": "tiny-turn"},
}
# The rendered-mouth checkpoints of the speech learning test (issue 10, tests/data/speech_rendered): the default demo,
# stage 1 "tiny-lips" (the coarse flow with a mouth window) for 1500 steps, stage 2 "tiny-lips" (its mouth direction is
# the renderer's lip stretch).
LIPS_RECIPE = {
    "stage1": {**RECIPE["stage1"], "preset": "tiny-lips", "max_steps": 1500},
    "stage2": {**RECIPE["stage2"], "preset": "tiny-lips"},
}
RECIPES = {"speech": RECIPE, "turn": TURN_RECIPE, "lips": LIPS_RECIPE}
KEEP = {"motion": ("ema", "cfg", "step", "manifest_sha"),
        "audio2motion": ("ema", "cfg", "step", "manifest_sha", "motion_checkpoint_sha")}


def keep_inference_weights(src: Path, dst: Path) -> str:
    """Write ``dst`` with the EMA weights and the metadata generation reads (no optimiser, no discriminator, no live
    weights): a few MB instead of ~9. Returns its sha256."""
    from talkbench.media import sha256_file
    from talkbench.models import checkpoints

    ckpt = checkpoints.load(src)
    checkpoints.save(dst, {k: ckpt[k] for k in KEEP[ckpt["cfg"]["family"]]})
    return sha256_file(dst)


def build(out: Path, data: Path | None = None, work: Path | None = None, recipe: dict = RECIPE,
          threads: int = 1) -> dict:
    """Train both stages into ``out`` (stage1.pt, a2m.pt, recipe.json) with ``threads`` torch threads (restored
    afterwards) and return the recipe record."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _build(out, data, work, recipe)
    finally:
        torch.set_num_threads(before)


def _build(out: Path, data: Path | None, work: Path | None, recipe: dict) -> dict:
    import torch

    from talkbench.cli.main import main as talkbench
    from talkbench.models.data import manifest_sha256
    from talkbench.models.train_motion import LossWeights, TrainConfig
    from talkbench.models.train_motion import main as train_motion

    out.mkdir(parents=True, exist_ok=True)
    work = Path(work or tempfile.mkdtemp(prefix="speech-learning-"))
    t0 = time.perf_counter()
    if data is None:
        data = work / "data"
        assert talkbench(["demo", "make", str(work / "demo"), *recipe.get("demo", [])]) == 0
        assert talkbench(["curate", "build-manifest", str(work / "demo" / "sources.csv"), "--out", str(data),
                          "--quiet"]) == 0
    manifest = data / "clips.parquet"
    s1, s2 = recipe["stage1"], recipe["stage2"]
    train_motion(TrainConfig(manifest=str(manifest), out=str(work / "motion"), preset=s1["preset"],
                             max_steps=s1["max_steps"], batch_size=s1["batch_size"], lr=s1["lr"], device="cpu",
                             perceptual=s1["perceptual"], num_workers=0, near_pairs=s1["near_pairs"], seed=s1["seed"],
                             image_every=10 ** 6, ckpt_every=s1["max_steps"], weights=LossWeights(**s1["weights"])))
    t1 = time.perf_counter()
    stage1 = out / "stage1.pt"
    stage1_sha = keep_inference_weights(work / "motion" / "last.pt", stage1)
    lat, tg = work / "motion_latents.parquet", work / "motion_targets.parquet"
    assert talkbench(["extract-motion", "--manifest", str(manifest), "--checkpoint", str(stage1), "--split", "train",
                      "--out", str(lat)]) == 0
    assert talkbench(["extract-targets", "--manifest", str(manifest), "--split", "train", "--size", "256",
                      "--out", str(tg)]) == 0
    t2 = time.perf_counter()
    stage2_cmd = ["train", "audio2motion", "--manifest", str(manifest), "--motion-checkpoint", str(stage1),
                  "--latents", str(lat), "--targets", str(tg), "--preset", s2["preset"], "--window", str(s2["window"]),
                  "--max-steps", str(s2["max_steps"]), "--batch-size", str(s2["batch_size"]), "--lr", str(s2["lr"]),
                  "--mouth-weight", str(s2["mouth_weight"]), "--seed", str(s2["seed"]), "--device", "cpu", "--quiet",
                  "--out", str(work / "a2m")]
    assert talkbench(stage2_cmd) == 0
    t3 = time.perf_counter()
    a2m_sha = keep_inference_weights(work / "a2m" / "last.pt", out / "a2m.pt")
    record = {"recipe": recipe, "stage1_sha256": stage1_sha, "a2m_sha256": a2m_sha,
              "manifest_sha256": manifest_sha256(manifest),
              "stage2_command": "talkbench " + " ".join(stage2_cmd),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
              "seconds": {"stage1": round(t1 - t0, 1), "extract": round(t2 - t1, 1), "stage2": round(t3 - t2, 1)}}
    (out / "recipe.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _cli(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for stage1.pt, a2m.pt, recipe.json")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="speech",
                   help="speech: tests/data/speech_learning (issue 10); turn: tests/data/head_turns (issue 16); "
                        "lips: tests/data/speech_rendered (issue 10)")
    p.add_argument("--data", type=Path, help="an already curated demo (DATA with clips.parquet); default: curate one")
    p.add_argument("--work", type=Path, help="scratch folder (default: a new temporary folder, removed at the end)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (recorded; 1 is the fastest on a busy "
                                                          "2-core box)")
    a = p.parse_args(argv)
    work = a.work or Path(tempfile.mkdtemp(prefix="speech-learning-"))
    try:
        record = build(a.out, a.data, work, recipe=RECIPES[a.recipe], threads=a.threads)
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
