"""Identity clustering accuracy on a labelled set built from real photos; prints a table per backend.

The set: 8 real people — the six faces of insightface's t1.jpg, skimage's astronaut and Tom_Hanks_54745.png — each
in 9 views that mimic what video frames do to a face (original, 0.5× and 1.6× scale, a shifted detector box, ±12°
rotation, Gaussian blur σ=2, JPEG q=20, darker flatter lighting). Every view is one "candidate"; clustering them
should give one cluster per person.

Reported: pairwise precision/recall/F1 and B-cubed precision/recall at the backend's default threshold, the largest
same-person and smallest different-person cosine distance (the gap the threshold must sit in), and a threshold sweep.

    python benchmarks/identity_accuracy.py [--sweep]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from talkbench.curation.identity import (  # noqa: E402
    DEFAULT_THRESHOLDS, DlibEmbedder, arcface_installed, cluster_embeddings,
)
from talkbench.faces.arcface import ArcFace  # noqa: E402

# Face boxes (x0, y0, x1, y1) found once with dlib's CNN (mmod) detector, which is too slow to rerun here (30 s for t1).
T1_BOXES = [(52, 272, 170, 390), (900, 81, 1018, 199), (721, 355, 839, 473), (437, 267, 578, 409),
            (1123, 283, 1221, 382), (257, 164, 355, 262)]
ASTRONAUT_BOX = (168, 69, 263, 164)
HANKS_BOX = (11, 20, 93, 102)


def _insightface_image(name: str) -> np.ndarray:
    from PIL import Image

    spec = importlib.util.find_spec("insightface")
    if spec is None:
        raise SystemExit("insightface's wheel (for its sample images) is not installed: pip install insightface")
    path = Path(spec.origin).parent / "data" / "images" / name
    return np.array(Image.open(path).convert("RGB"))


def people() -> list[tuple[str, np.ndarray, tuple]]:
    """(label, image, box) of the 8 real people."""
    from skimage import data

    t1 = _insightface_image("t1.jpg")
    out = [(f"t1_{i}", t1, box) for i, box in enumerate(T1_BOXES)]
    out.append(("astronaut", data.astronaut(), ASTRONAUT_BOX))
    out.append(("tom_hanks", _insightface_image("Tom_Hanks_54745.png"), HANKS_BOX))
    return out


def _context(image, box, factor=2.0):
    """A padded crop of `factor`× the box around the face, and the box in its coordinates."""
    import cv2

    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * factor
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    pad = int(side)
    big = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    ox, oy = int(cx - side / 2) + pad, int(cy - side / 2) + pad
    crop = big[oy:oy + int(side), ox:ox + int(side)].copy()
    return crop, (x0 + pad - ox, y0 + pad - oy, x1 + pad - ox, y1 + pad - oy)


def views(image, box) -> list[tuple[str, np.ndarray, tuple]]:
    """The 9 augmented views of one face: (name, image, box)."""
    import cv2
    from PIL import Image

    crop, b = _context(image, box)
    out = [("orig", crop, b)]
    for s in (0.5, 1.6):
        im = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
        out.append((f"scale{s}", im, tuple(v * s for v in b)))
    w = b[2] - b[0]
    out.append(("shift", crop, (b[0] + 0.1 * w, b[1] - 0.08 * w, b[2] + 0.1 * w, b[3] - 0.08 * w)))
    for angle in (12, -12):
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        out.append((f"rot{angle}", cv2.warpAffine(crop, m, crop.shape[1::-1], borderMode=cv2.BORDER_REFLECT), b))
    out.append(("blur", cv2.GaussianBlur(crop, (0, 0), 2.0), b))
    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, format="JPEG", quality=20)
    out.append(("jpeg20", np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")), b))
    # Darker, flatter lighting: gamma 1.6 and 70 % contrast.
    dark = 255.0 * (crop / 255.0) ** 1.6
    dark = np.clip(0.7 * (dark - dark.mean()) + dark.mean(), 0, 255).astype(np.uint8)
    out.append(("dark", dark, b))
    return out


def labelled_set():
    """[(person, view, image, box)] for every person and view."""
    return [(label, name, im, b) for label, image, box in people() for name, im, b in views(image, box)]


def landmarks5(data):
    """ArcFace's 5 points (eye centres, nose tip, mouth corners) from dlib's 68-point predictor inside each box."""
    import dlib

    from talkbench.curation.identity import dlib_models_dir

    predictor = dlib.shape_predictor(str(dlib_models_dir() / "shape_predictor_68_face_landmarks.dat"))
    out = []
    for _, _, im, b in data:
        x0, y0, x1, y1 = (int(round(v)) for v in b)
        shape = predictor(np.ascontiguousarray(im), dlib.rectangle(x0, y0, x1, y1))
        p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float64)
        out.append([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])
    return out


def pairwise_scores(labels, clusters):
    n = len(labels)
    iu = np.triu_indices(n, 1)
    same_true = (np.asarray(labels)[:, None] == np.asarray(labels)[None])[iu]
    same_pred = (np.asarray(clusters)[:, None] == np.asarray(clusters)[None])[iu]
    tp = int((same_true & same_pred).sum())
    precision = tp / max(1, int(same_pred.sum()))
    recall = tp / max(1, int(same_true.sum()))
    f1 = 2 * precision * recall / max(1e-12, precision + recall)
    return precision, recall, f1


def bcubed(labels, clusters):
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    p = r = 0.0
    for i in range(len(labels)):
        same_c = clusters == clusters[i]
        same_l = labels == labels[i]
        both = (same_c & same_l).sum()
        p += both / same_c.sum()
        r += both / same_l.sum()
    return p / len(labels), r / len(labels)


def evaluate(embeddings, labels, threshold):
    clusters = cluster_embeddings(embeddings, threshold)
    pp, pr, pf = pairwise_scores(labels, clusters)
    bp, br = bcubed(labels, clusters)
    return {"clusters": int(clusters.max() + 1), "pair_p": pp, "pair_r": pr, "pair_f1": pf, "b3_p": bp, "b3_r": br}


def distance_gap(embeddings, labels):
    x = np.stack(embeddings)
    d = 1.0 - x @ x.T
    same = np.asarray(labels)[:, None] == np.asarray(labels)[None]
    iu = np.triu_indices(len(labels), 1)
    return float(d[iu][same[iu]].max()), float(d[iu][~same[iu]].min())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true", help="also print precision/recall over a threshold sweep")
    parser.add_argument("--arcface-onnx", help="an ArcFace ONNX file to use instead of the installed buffalo_l entry "
                        "(a random-weight file only checks the code path: its figures are meaningless)")
    args = parser.parse_args(argv)
    data = labelled_set()
    labels = [d[0] for d in data]
    n_people = len(set(labels))
    print(f"labelled set: {len(data)} faces, {n_people} people, {len(data) // n_people} views each\n")
    header = (f"{'backend':8} {'model':40} {'thr':>5} {'clusters':>8} {'pair P':>7} {'pair R':>7} {'pair F1':>7} "
              f"{'B3 P':>6} {'B3 R':>6} {'max same':>8} {'min diff':>8}")
    print(header)
    print("-" * len(header))
    sweeps = {}
    for backend in ("dlib", "arcface"):
        if backend == "arcface" and not (arcface_installed() or args.arcface_onnx):
            print(f"{'arcface':8} {'buffalo_l (not installed: talkbench weights fetch buffalo_l)':40} — no figures")
            continue
        embedder = DlibEmbedder() if backend == "dlib" else ArcFace(args.arcface_onnx)
        if backend == "arcface":
            marks = landmarks5(data)
            emb = [embedder.embed(im, b, m) for (_, _, im, b), m in zip(data, marks)]
        else:
            emb = [embedder.embed(im, b) for _, _, im, b in data]
        thr = DEFAULT_THRESHOLDS[backend]
        r = evaluate(emb, labels, thr)
        same_max, diff_min = distance_gap(emb, labels)
        print(f"{backend:8} {embedder.model:40} {thr:5.2f} {r['clusters']:8d} {r['pair_p']:7.3f} {r['pair_r']:7.3f} "
              f"{r['pair_f1']:7.3f} {r['b3_p']:6.3f} {r['b3_r']:6.3f} {same_max:8.3f} {diff_min:8.3f}")
        sweeps[backend] = (emb, labels)
    if args.arcface_onnx:
        print(f"\nnote: arcface used {args.arcface_onnx}, not the installed buffalo_l entry; unless that file is the "
              "real w600k_r50.onnx (random-weight test files are not) its figures are meaningless.")
    if args.sweep:
        for backend, (emb, labels) in sweeps.items():
            print(f"\nthreshold sweep ({backend}):")
            print(f"{'thr':>5} {'clusters':>8} {'pair P':>7} {'pair R':>7} {'B3 P':>6} {'B3 R':>6}")
            for thr in (0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10, 0.12, 0.15):
                r = evaluate(emb, labels, thr)
                print(f"{thr:5.2f} {r['clusters']:8d} {r['pair_p']:7.3f} {r['pair_r']:7.3f} {r['b3_p']:6.3f} "
                      f"{r['b3_r']:6.3f}")


if __name__ == "__main__":
    main()
