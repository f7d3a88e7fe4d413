"""Train one part of the upper-body avatar (ChatAnyone recipe): ``--part face`` (face motion DiT), ``body``
(body/hand transformer) or ``render`` (keypoint renderer).

    talkbench train avatar --part face --data DIR --preset tiny --out RUN
    torchrun --nproc_per_node 8 -m talkbench.models.train_avatar --part render --data DIR --out RUN

Data contract (the upper-body curation tables exported per clip; plain arrays, no pickle): ``DIR/clips/*.npz``
with ``frames`` (T, H, W, 3) uint8 at the preset's size (256×384 tiny, 512×768 paper), ``audio`` (N,) float32 at
16 kHz, ``expression`` (T, E), ``pose6`` (T, 6) (yaw, pitch, roll ÷ 90°, tx, ty, scale), ``body`` (T, Kb, C),
``hands`` (T, 2, 21, C) in [-1, 1] image units, optional ``hand_visible`` (T, 2). Only ``DIR/split.json``'s
"train" clips are read when it exists (all clips otherwise).

The same contract as the other trainers: the data stream is a pure function of the step index (``--resume`` replays
it), bf16 autocast on CUDA, EMA of the weights, DDP under torchrun, TensorBoard scalars in OUT/tb, ``last.pt`` holds
its own config; every option is checked before anything is written.
"""

from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, ManifestError
from . import body_hands, checkpoints, face_dit, kp_renderer
from .train_motion import setup_distributed, update_ema

PARTS = {"face": face_dit, "body": body_hands, "render": kp_renderer}
KEYS = ("frames", "audio", "expression", "pose6", "body", "hands")


@dataclass
class TrainConfig:
    part: str
    data: str
    out: str
    preset: str = "tiny"
    max_steps: int = 100_000  # ChatAnyone: 100k for both motion stages
    batch_size: int = 16  # ChatAnyone: 16 (motion), 32 (renderer)
    lr: float = 1e-4  # ChatAnyone: Adam 1e-4
    d_lr: float | None = None  # render: the discriminator's learning rate (None: lr)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    perceptual: str | None = None  # render: override the preset's perceptual loss
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 1000
    resume: bool = False


def check_config(cfg: TrainConfig, need_data: bool = True) -> list[Path]:
    """Refuse bad options before anything is written; returns the clip files (none when ``need_data`` is off)."""
    from .losses import PERCEPTUAL

    if cfg.part not in PARTS:
        raise ConfigError(f"unknown avatar part {cfg.part!r}; choose from {sorted(PARTS)}")
    PARTS[cfg.part].get_config(cfg.preset)
    for name in ("max_steps", "batch_size", "log_every", "ckpt_every"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name.replace('_', '-')} must be ≥ 1, got {getattr(cfg, name)}")
    if not cfg.lr > 0 or (cfg.d_lr is not None and not cfg.d_lr > 0):
        raise ConfigError(f"lr must be > 0, got {cfg.lr if not cfg.lr > 0 else cfg.d_lr}")
    if cfg.perceptual is not None and cfg.perceptual not in PERCEPTUAL:
        raise ConfigError(f"unknown perceptual loss {cfg.perceptual!r}; choose from {sorted(PERCEPTUAL)}")
    if not need_data:
        return []
    folder = Path(cfg.data) / "clips"
    files = sorted(folder.glob("*.npz"))
    split = Path(cfg.data) / "split.json"
    if split.is_file():
        train = set(json.loads(split.read_text()).get("train", []))
        files = [f for f in files if f.stem in train]
    if not files:
        raise ManifestError(f"{folder}: no train clips (*.npz with {', '.join(KEYS)})")
    return files


def load_clips(files: list[Path], window: int) -> list[dict]:
    from .audio_features import MFCC_PER_FRAME, mfcc_features

    clips = []
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z]
            if missing:
                raise ManifestError(f"{f}: missing arrays {missing}")
            c = {k: z[k] for k in z.files}
        mfcc = mfcc_features(c["audio"])
        n = min(len(mfcc) // MFCC_PER_FRAME, len(c["frames"]), len(c["expression"]))
        if n < window + 1:
            continue
        c.update(n=n, mfcc=mfcc[: n * MFCC_PER_FRAME], motion=np.concatenate([c["expression"], c["pose6"]], 1)[:n])
        clips.append(c)
    if not clips:
        raise ManifestError(f"no clip is longer than the window of {window} + 1 frames")
    return clips


def image(frames: np.ndarray) -> torch.Tensor:
    return kp_renderer.to_tensor(frames)


# ----------------------------------------------------------------------------------------------------------------
# One batch per step: a pure function of (seed, step, rank)
# ----------------------------------------------------------------------------------------------------------------

def face_batch(clips, mcfg, rng, b):
    w, p, s = mcfg.window, mcfg.prev_frames, mcfg.style_frames
    out = {k: [] for k in ("motion", "prev", "audio", "style")}
    for _ in range(b):
        c = clips[rng.integers(len(clips))]
        a = int(rng.integers(1, c["n"] - w + 1))
        st = int(rng.integers(0, max(1, c["n"] - s + 1)))
        prev = c["motion"][max(0, a - p):a]
        prev = np.concatenate([np.repeat(prev[:1], p - len(prev), 0), prev])
        style = c["motion"][st:st + s]
        style = np.concatenate([np.repeat(style[:1], s - len(style), 0), style])
        out["motion"].append(c["motion"][a:a + w]), out["prev"].append(prev)
        out["audio"].append(c["mfcc"][4 * a:4 * (a + w)]), out["style"].append(style)
    return {k: torch.from_numpy(np.stack(v)).float() for k, v in out.items()}


def body_batch(clips, mcfg, rng, b):
    items = []
    for _ in range(b):
        c = clips[rng.integers(len(clips))]
        a, w = int(rng.integers(0, c["n"] - mcfg.window)), mcfg.window
        vis = c.get("hand_visible", np.ones((c["n"], 2), np.float32))
        items.append({"face_motion": c["motion"][a:a + w], "audio": c["mfcc"][4 * a:4 * (a + w)],
                      "image": image(c["frames"][:1])[0].numpy(), "source_body": c["body"][0],
                      "source_hands": c["hands"][0], "body": c["body"][a:a + w], "hands": c["hands"][a:a + w],
                      "hand_visible": vis[a:a + w]})
    return {k: torch.from_numpy(np.stack([np.asarray(i[k], np.float32) for i in items])) for k in items[0]}


def render_keypoints(c: dict, t, template) -> torch.Tensor:
    """(len(t), P, 2) renderer keypoints of frames t: face (template at the nose), body, both hands."""
    motion, body = torch.from_numpy(c["motion"][t]).float(), torch.from_numpy(c["body"][t][..., :2]).float()
    face = body_hands.face_image_points(motion, template, body[:, 0])
    return torch.cat([face, body, torch.from_numpy(c["hands"][t][..., :2]).float().flatten(1, 2)], 1)


def render_batch(clips, mcfg, rng, b, template, hand_drop):
    src, tgt, ks, kd, es, ed, on = [], [], [], [], [], [], []
    for _ in range(b):
        c = clips[rng.integers(len(clips))]
        i, j = (int(v) for v in rng.integers(0, c["n"], 2))
        src.append(image(c["frames"][i:i + 1])[0]), tgt.append(image(c["frames"][j:j + 1])[0])
        ks.append(render_keypoints(c, [i], template)[0]), kd.append(render_keypoints(c, [j], template)[0])
        es.append(torch.from_numpy(c["expression"][i]).float()), ed.append(torch.from_numpy(c["expression"][j]).float())
        vis = c.get("hand_visible")
        on.append(bool(rng.random() >= hand_drop) and (vis is None or bool(vis[j].any())))
    batch = {"source": torch.stack(src), "target": torch.stack(tgt), "kp_src": torch.stack(ks),
             "kp_drv": torch.stack(kd), "expr_src": torch.stack(es), "expr_drv": torch.stack(ed)}
    return batch, torch.tensor(on)


# ----------------------------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------------------------

def main(cfg: TrainConfig) -> dict:
    files = check_config(cfg)
    module = PARTS[cfg.part]
    mcfg = module.get_config(cfg.preset)
    if cfg.part == "render" and cfg.perceptual:
        import dataclasses

        mcfg = dataclasses.replace(mcfg, perceptual=cfg.perceptual)
    window = getattr(mcfg, "window", 1)
    clips = load_clips(files, window)
    rank, world, device = setup_distributed(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed + rank)
    amp = cfg.amp and device.type == "cuda"
    sha = checkpoints_sha(files)
    full_cfg = {"family": f"avatar-{cfg.part}", "model": mcfg.to_dict(), "train": asdict(cfg),
                "clips": [f.stem for f in files]}

    disc = perceptual = template = None
    # every part keeps the basis: generation reads a portrait's coefficients with the face part's, and bench `ours`
    # reads the driving clip's with the renderer's
    basis = read_basis(Path(cfg.data) / "basis.npz")
    if cfg.part == "face":
        model = face_dit.FaceDiT(mcfg)
        model.diffusion.fit_normalization(torch.from_numpy(np.concatenate([c["motion"] for c in clips])).float())
        model.net.front_end.fit(torch.from_numpy(np.concatenate([c["mfcc"] for c in clips])))
        model.fit_amplitude(face_batch(clips, mcfg, np.random.default_rng(cfg.seed), 256)["motion"])
    elif cfg.part == "body":
        model = body_hands.BodyHands(mcfg)
        model.front_end.fit(torch.from_numpy(np.concatenate([c["mfcc"] for c in clips])))
    else:
        from .losses import PyramidPerceptualLoss

        model = kp_renderer.KeypointRenderer(mcfg)
        perceptual = PyramidPerceptualLoss(mcfg.perceptual).to(device)
        disc = kp_renderer.PatchDiscriminator().to(device) if mcfg.gan_weight > 0 else None
        template = body_hands.FaceTemplate(clips[0]["expression"].shape[1])
    model = model.to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.d_lr or cfg.lr) if disc is not None else None

    start, ckpt_path = 0, out / "last.pt"
    if cfg.resume and ckpt_path.exists():
        ckpt = checkpoints.load(ckpt_path, map_location=device)
        checkpoints.check_architecture(full_cfg["model"], ckpt["cfg"]["model"], ckpt_path)
        if ckpt["manifest_sha"] != sha:
            raise ConfigError(f"{ckpt_path} was trained on other data ({ckpt['manifest_sha'][:12]}…); resume with "
                              "the same --data")
        model.load_state_dict(ckpt["model"]), ema.load_state_dict(ckpt["ema"]), opt.load_state_dict(ckpt["opt"])
        if disc is not None:
            disc.load_state_dict(ckpt["disc"]), d_opt.load_state_dict(ckpt["d_opt"])
        checkpoints.set_rng_state(ckpt["rng"])
        start = int(ckpt["step"])
    train_model = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=start)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext
    history: list[dict] = []

    def save(step: int) -> None:
        if rank == 0:
            payload = {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                       "cfg": full_cfg, "step": step, "manifest_sha": sha, "rng": checkpoints.rng_state()}
            if disc is not None:
                payload.update(disc=disc.state_dict(), d_opt=d_opt.state_dict())
            if basis is not None:  # coefficients of new faces (portrait, style reference, bench driver) use it
                payload.update(basis_mean=basis[0], basis_components=basis[1])
            checkpoints.save(ckpt_path, payload)

    model.train()
    done = start
    for step in range(start, cfg.max_steps):
        rng = np.random.default_rng([cfg.seed, step, rank])
        with autocast():
            if cfg.part == "face":
                batch = {k: v.to(device) for k, v in face_batch(clips, mcfg, rng, cfg.batch_size).items()}
                losses = train_model(batch)
            elif cfg.part == "body":
                batch = {k: v.to(device) for k, v in body_batch(clips, mcfg, rng, cfg.batch_size).items()}
                losses = model.losses(batch) if world == 1 else _ddp_losses(train_model, batch)
            else:
                batch, on = render_batch(clips, mcfg, rng, cfg.batch_size, template, mcfg.hand_drop)
                batch = {k: v.to(device) for k, v in batch.items()}
                losses, fake = kp_renderer.renderer_losses(train_model if world == 1 else model, perceptual, disc,
                                                           batch, on.to(device))
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if disc is not None:
            from .losses import d_nonsaturating

            with autocast():
                d_loss = d_nonsaturating(disc(batch["target"]), disc(fake.detach()))
            d_opt.zero_grad(set_to_none=True), d_loss.backward(), d_opt.step()
            losses["disc"] = d_loss
        done = step + 1
        update_ema(ema, model, min(cfg.ema_decay, (1 + done) / (10 + done)))
        if done % cfg.log_every == 0 or done == cfg.max_steps:
            row = {"step": done, **{k: float(v.detach()) for k, v in losses.items()}, "grad_norm": float(grad_norm)}
            history.append(row)
            if writer is not None:
                for k, v in row.items():
                    if k != "step":
                        writer.add_scalar(f"{cfg.part}/{k}", v, done)
                with (out / "log.jsonl").open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
        if done % cfg.ckpt_every == 0 or done == cfg.max_steps:
            save(done)
    if writer is not None:
        writer.close()
    return {"step": done, "history": history, "checkpoint": str(ckpt_path), "clips": len(clips)}


def read_basis(path: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The expression basis: ``mean`` (1404,) and ``components`` (E, 1404) of the curation's Procrustes-aligned face
    meshes (``export-avatar-data`` writes these; see ``manifests.targets.expression_coefficients``), or ``mean``
    (936,), ``components`` (E, 936) in the canonical face-mesh frame of
    ``metrics.instruction.face_tracks``), or None when the data folder has none."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        if "mean" not in z or "components" not in z:
            raise ManifestError(f"{path}: expected arrays 'mean' and 'components'")
        return torch.from_numpy(z["mean"]).float(), torch.from_numpy(z["components"]).float()


def _ddp_losses(ddp_model, batch):
    out = ddp_model(batch["face_motion"], batch["audio"], batch["image"], batch["source_body"], batch["source_hands"])
    body = (out["body"].float() - batch["body"]).abs().mean()
    hands = (out["hands"].float() - batch["hands"]).abs().mean()
    return {"body": body, "hands": hands, "total": body + hands}


def checkpoints_sha(files: list[Path]) -> str:
    """sha256 over the clip files' names and sha256s: the data identity a resume must match."""
    import hashlib

    from ..media import sha256_file

    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode()), h.update(sha256_file(f).encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# The three parts as model families (FAMILIES: `train avatar-face|avatar-body|avatar-render`, `models summary`)
# ----------------------------------------------------------------------------------------------------------------

def part_config(part: str) -> type:
    """The TrainConfig of one part as a family: ``manifest`` (a clips.parquet, exported with ``targets`` into
    OUT/data first, or a folder already in the npz contract) instead of ``part`` and ``data``; the other fields
    and their defaults are TrainConfig's (its only copy)."""
    from dataclasses import field, fields, make_dataclass

    rest = [(f.name, f.type, field(default=f.default)) for f in fields(TrainConfig) if f.name not in
            ("part", "data", "out")]
    cls = make_dataclass(f"{part.title()}TrainConfig", [("manifest", str), ("out", str),
                                                        ("targets", "str | None", field(default=None)), *rest])
    cls.__module__ = __name__
    cls.__doc__ = f"`train avatar-{part}`: " + (part_config.__doc__ or "").split(";")[0]
    return cls


def resolve_data(manifest: str, targets: str | None, out: str, preset: str, part: str = "render") -> str:
    """The npz data folder of a run: ``manifest`` itself when it is one, else its export into OUT/data."""
    from .avatar_data import export_avatar_data, frame_size

    path = Path(manifest)
    if path.is_dir():
        return str(path)
    if path.suffix == ".parquet" and path.is_file():  # refuse clips too short for the part before exporting
        from ..manifests.io import read_rows

        window = getattr(PARTS[part].get_config(preset), "window", 1)
        longest = max((int(r.get("n_frames") or 0) for r in read_rows(path, "clips") if r.get("split") == "train"),
                      default=0)
        if longest < window + 1:
            raise ManifestError(f"{path}: no train clip is longer than the {part} part's window of {window} + 1 "
                                f"frames (longest {longest})")
    export_avatar_data(path, Path(out) / "data", targets=targets, size=frame_size(preset))
    return str(Path(out) / "data")


class PartTrainer:
    """What a family's ``trainer`` provides (``TrainConfig`` and ``main``) for one avatar part."""

    def __init__(self, part: str):
        self.part = part
        self.TrainConfig = part_config(part)

    def main(self, cfg) -> dict:
        from dataclasses import asdict

        values = asdict(cfg)
        manifest, targets = values.pop("manifest"), values.pop("targets")
        # the renderer's loss only (d_lr is not checked: `train FAMILY --lr` sets it with lr, and only the renderer
        # has a discriminator to use it)
        if values["perceptual"] is not None and self.part != "render":
            raise ConfigError(f"--perceptual does not apply to the avatar-{self.part} family")
        check_config(TrainConfig(part=self.part, data=".", **values), need_data=False)  # before writing anything
        data = resolve_data(manifest, targets, values["out"], values["preset"], self.part)
        return main(TrainConfig(part=self.part, data=data, **values))


TRAINERS = {part: PartTrainer(part) for part in PARTS}


def _cli():  # torchrun entry point: the flags of `talkbench train avatar` (--data) or `train avatar-PART` (--manifest)
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", required=True, choices=sorted(PARTS))
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="npz data folder (export-avatar-data)")
    source.add_argument("--manifest", help="upper-body clips.parquet (exported with --targets into OUT/data)")
    p.add_argument("--targets", default=None)
    p.add_argument("--out", required=True)
    # only what is given is passed: TrainConfig's defaults are the only copy
    for flag, kind in (("--preset", str), ("--max-steps", int), ("--batch-size", int), ("--lr", float),
                       ("--device", str), ("--seed", int), ("--ckpt-every", int), ("--perceptual", str)):
        p.add_argument(flag, type=kind, default=None)
    p.add_argument("--resume", action="store_true")
    a = vars(p.parse_args())
    given = {k: v for k, v in a.items() if v is not None and k not in ("part", "data", "manifest", "targets", "out")}
    if a["manifest"]:
        trainer = TRAINERS[a["part"]]
        trainer.main(trainer.TrainConfig(manifest=a["manifest"], targets=a["targets"], out=a["out"], **given))
    else:
        main(TrainConfig(part=a["part"], data=a["data"], out=a["out"], **given))


if __name__ == "__main__":
    _cli()
