"""Train the tiny stage-1 checkpoint that the renderer-beats-static test loads (issue 10), from the demo's moving heads.

    PYTHONPATH=src python scripts/train_renderer_fixture.py --out tests/data/beats_static

The material: real portraits (insightface's t1.jpg people for training, skimage's astronaut held out) moved by the
demo's known head motions (sway, zoom, nod), rendered as ``demo make`` renders them and cut to the square crop a
curated clip has (face box ~110 px in 256 px), so no curation run is needed. Stage 1 is ``talkbench.models.
train_motion.main`` on the train clips (``RECIPE`` holds every number); the EMA weights are kept (``stage1.pt``).
Writes ``stage1.pt`` and ``recipe.json`` (the recipe, the file's sha256, torch's version, threads and wall time).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZE = 256  # the talkbench-v1-256 protocol's frame size
CROP = 700  # side of the square around the face: the face box (300 px) is ~110 px at 256 px
SECONDS = 2.0
TRAIN = [("person_b", "sway"), ("person_b", "zoom"), ("person_c", "sway"), ("person_c", "nod")]
TEST = [("astronaut", "sway"), ("astronaut", "zoom"), ("astronaut", "nod")]
# tiny preset, batch 4, seed 0, pixel-pyramid loss, GAN term off (measured: it slows short CPU runs)
RECIPE = {"preset": "tiny", "max_steps": 150, "batch_size": 4, "lr": 2e-3, "perceptual": "none-l1-pyramid",
          "seed": 0, "weights": {"gan": 0.0}}


def clip(name: str, kind: str) -> np.ndarray:
    """(T, SIZE, SIZE, 3) frames of one portrait moved by one of the demo's motions, framed like a curated clip."""
    import cv2

    from talkbench import demo

    # rendered straight onto the CROP × CROP square around the face: the same pixels as the centred crop of a larger
    # frame (the portrait is warped from the photo; the canvas only sets where the output stops)
    frames = demo.render_portrait(name, kind, SECONDS, size=(CROP, CROP))[0]
    return np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in frames])


def build(out: Path, work: Path, threads: int = 1) -> dict:
    """Train into ``work``, keep the EMA weights as ``out/stage1.pt`` and write ``out/recipe.json``; returns the
    record."""
    import torch

    from talkbench import demo, media
    from talkbench.manifests import write_table
    from talkbench.models.train_motion import LossWeights, TrainConfig, main

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_learning_fixture import keep_inference_weights

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        rows = []
        for name, kind in TRAIN:
            rel = f"clips/{name}-{kind}.mp4"
            media.write_video(work / rel, clip(name, kind), fps=demo.FPS, crf=12)
            rows.append({"clip_id": f"{name}-{kind}", "source_id": f"{name}-{kind}", "identity_id": name,
                         "path": rel, "n_frames": int(SECONDS * demo.FPS), "fps": demo.FPS, "size": SIZE,
                         "split": "train", "has_audio": False})
        write_table(rows, work / "clips.parquet", "clips")
        torch.manual_seed(RECIPE["seed"])
        r = RECIPE
        result = main(TrainConfig(manifest=str(work / "clips.parquet"), out=str(work / "run"), preset=r["preset"],
                                  max_steps=r["max_steps"], batch_size=r["batch_size"], lr=r["lr"], device="cpu",
                                  perceptual=r["perceptual"], num_workers=0, seed=r["seed"], log_every=10,
                                  image_every=10_000, ckpt_every=10_000, weights=LossWeights(**r["weights"])))
        seconds = time.perf_counter() - t0
        out.mkdir(parents=True, exist_ok=True)
        sha = keep_inference_weights(Path(result["checkpoint"]), out / "stage1.pt")
    finally:
        torch.set_num_threads(before)
    record = {"recipe": RECIPE, "train": TRAIN, "held_out": TEST, "stage1_sha256": sha, "torch": torch.__version__,
              "threads": threads, "python": platform.python_version(), "seconds": round(seconds, 1)}
    (out / "recipe.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _cli(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for stage1.pt and recipe.json")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (recorded)")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="renderer-fixture-") as work:
        print(json.dumps(build(a.out, Path(work), a.threads), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
