"""A tiny clips manifest built from real media: Megamind (a cartoon talking face) and an animated astronaut portrait."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

MEGAMIND = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")


def animated_astronaut(n: int, size: int) -> np.ndarray:
    """skimage's astronaut portrait with a slow pan/zoom (a real photo moving like a talking head)."""
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.astronaut())  # (512, 512, 3)
    frames = []
    for t in range(n):
        s = 300 + 20 * np.sin(t / 6)
        x0, y0 = 90 + 12 * np.sin(t / 5), 20 + 8 * np.cos(t / 7)
        frames.append(np.asarray(img.resize((size, size), Image.BICUBIC, box=(x0, y0, x0 + s, y0 + s))))
    return np.stack(frames)


def megamind_frames(size: int) -> np.ndarray:
    from talkbench import media

    # 720×528 source: a centred square crop keeps the face; no alignment (natural motion kept)
    return media.read_frames(MEGAMIND, size=size, crop=(96, 0, 528, 528))


def build_manifest(root: Path, size: int = 64, n: int = 40, splits=("train", "train", "train")) -> Path:
    from talkbench import media
    from talkbench.manifests import write_table

    mm = megamind_frames(size)
    clips = [("mm-a", "megamind", mm[:n]), ("mm-b", "megamind", mm[120:120 + n]),
             ("astro-a", "astronaut", animated_astronaut(n, size))]
    rows = []
    for (clip_id, ident, frames), split in zip(clips, splits):
        rel = f"clips/{clip_id}.mp4"
        media.write_video(root / rel, frames, fps=25.0, crf=12)
        rows.append({"clip_id": clip_id, "source_id": clip_id.split("-")[0], "identity_id": ident, "path": rel,
                     "n_frames": len(frames), "fps": 25.0, "size": size, "split": split, "has_audio": False})
    path = root / "clips.parquet"
    write_table(rows, path, "clips")
    return path


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory) -> Path:
    return build_manifest(tmp_path_factory.mktemp("motion-data"))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small convolutions on 2 shared cores: one intra-op thread avoids OpenMP oversubscription, which was measured
    here to slow a tiny training step from 0.9 s to 12 s when other processes compete for the cores."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def one_clip_manifest(tiny_manifest) -> Path:
    """The same folder's manifest reduced to one Megamind clip (one identity)."""
    from talkbench.manifests import read_rows, write_table

    out = tiny_manifest.parent / "one-clip.parquet"
    write_table([r for r in read_rows(tiny_manifest, "clips") if r["clip_id"] == "mm-a"], out, "clips")
    return out
