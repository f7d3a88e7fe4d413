"""Train the speech → motion diffusion (AniTalker stage 2) on a clips manifest.

    talkbench train audio2motion --manifest DIR/clips.parquet --motion-checkpoint STAGE1.pt --preset tiny --out RUN
    torchrun --nproc_per_node 8 -m talkbench.models.train_audio2motion --manifest ... --motion-checkpoint ... --out RUN

Inputs next to the manifest (or given explicitly): ``motion_latents.parquet`` from ``talkbench extract-motion`` with
the same stage-1 checkpoint, and ``motion_targets.parquet`` (per-frame pose / location / scale, ``models.targets``).
Audio is read from each clip's mp4 (16 kHz mono). Only train-split clips are read. A sample is a 125-frame window
plus the hint frame just before it; the loss is MSE(ε) + MSE(location) + MSE(scale) + MSE(pose), unweighted.
The data stream is a pure function of the step index (as the motion trainer), so ``--resume`` replays exactly.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, ManifestError, MediaError
from . import checkpoints
from .audio2motion import VARIANCE, Audio2Motion, get_config
from .data import StepSampler, load_train_clips, manifest_sha256
from .run_folder import check_train_config
from .train_motion import setup_distributed, update_ema


@dataclass
class TrainConfig:
    manifest: str
    motion_checkpoint: str
    out: str
    preset: str = "paper"
    latents: str | None = None  # default: motion_latents.parquet beside the manifest
    targets: str | None = None  # default: motion_targets.parquet beside the manifest
    max_steps: int = 100_000
    batch_size: int = 64  # per rank (AniTalker config: 64)
    lr: float = 1e-4  # AniTalker: Adam 1e-4
    grad_clip: float = 1.0
    ema_decay: float = 0.9999
    device: str = "auto"
    compile: bool = False
    amp: bool = True  # bf16 autocast on CUDA
    num_workers: int = 0  # the data are in memory; workers only add start-up time
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 1000
    resume: bool = False
    progress: bool = True
    window: int | None = None  # frames per training/generation window; None = the preset's (125, AniTalker)
    # > 0: extra weight w on the ε error along the mouth direction of the normalised motion codes — the unit vector of
    # a least-squares probe from the train clips' codes to their lip gap (both centred per clip; the targets' lip_gap
    # column), stored in the checkpoint's cfg["mouth_direction"]. The error along it then counts 1 + w·20 times a
    # direction orthogonal to it (``EpsDenoiser.loss``). 0 (default): AniTalker's plain ε MSE.
    mouth_weight: float = 0.0
    # Probability that a window's hint is a random frame of its clip instead of the frame just before it. Generation
    # hints the first window with the portrait's own code, which is not the frame before the speech; and on a small
    # train set the previous frame tells the network where in which clip the window is, so the window's motion —
    # mouth included — can be recalled without the speech. 0 (default): AniTalker's previous-frame hint.
    hint_random: float = 0.0


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------

def _by_clip(table) -> dict[str, dict]:
    return {r["clip_id"]: r for r in table.to_pylist()}


class SpeechMotionWindows(Dataset):
    """Sample i → a window of ``window`` frames and its hint frame from one train clip, drawn from i alone."""

    def __init__(self, manifest: str | Path, latents: dict[str, dict], targets: dict[str, dict], window: int,
                 seed: int = 0, hint_random: float = 0.0):
        from .. import media
        from .audio_features import MFCC_PER_FRAME, mfcc_features

        manifest = Path(manifest)
        self.window, self.seed, self.hint_random = window, seed, hint_random
        self.clips, self.skipped = [], {}
        for row in load_train_clips(manifest):  # train split only; the test split is never read
            cid = row["clip_id"]
            if cid not in latents or cid not in targets:
                raise ManifestError(f"clip {cid} has no {'motion latents' if cid not in latents else 'targets'}; "
                                    "re-run extract-motion / extract-targets on this manifest")
            if not row.get("path"):
                raise ManifestError(f"clip {cid}: no mp4 path, so no audio to train on")
            audio = media.read_audio(manifest.parent / row["path"], 16000)
            if audio is None:
                raise MediaError(f"{manifest.parent / row['path']}: no audio stream")
            mfcc = mfcc_features(audio)
            lat, tg = latents[cid], targets[cid]
            n = min(len(mfcc) // MFCC_PER_FRAME, len(lat["motion"]), len(tg["location"]))
            gap = tg.get("lip_gap")
            if n < window + 1:
                self.skipped[cid] = f"{n} frames < window {window} + hint"
                continue
            self.clips.append({
                "clip_id": cid, "n": n, "audio": torch.from_numpy(mfcc[: n * MFCC_PER_FRAME]),
                "motion": torch.tensor(lat["motion"][:n], dtype=torch.float32),
                "identity": torch.tensor(lat["identity"], dtype=torch.float32),
                "pose": torch.tensor(tg["pose"][:n], dtype=torch.float32),
                "location": torch.tensor(tg["location"][:n], dtype=torch.float32)[:, None],
                "scale": torch.tensor(tg["scale"][:n], dtype=torch.float32)[:, None],
                "lip_gap": None if gap is None else torch.tensor(gap[:n], dtype=torch.float32)})
        if not self.clips:
            raise ManifestError(f"{manifest}: no train clip is longer than {window + 1} frames ({self.skipped})")

    def __len__(self) -> int:
        return 2 ** 31 - 1

    def all_motion(self) -> torch.Tensor:
        return torch.cat([c["motion"] for c in self.clips])

    def all_targets(self, names) -> dict[str, torch.Tensor]:
        return {name: torch.cat([c[name] for c in self.clips]) for name in names}

    def centred(self, key: str, transform=None) -> torch.Tensor:
        """Every clip's ``key`` (after ``transform``), centred per clip (identity offsets removed), concatenated
        (float64)."""
        parts = [(transform(c[key]) if transform else c[key]).double() for c in self.clips]
        return torch.cat([x - x.mean(0) for x in parts])

    def mouth_direction(self, normalize, fixed: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
        """(unit (D,) vector, train r): the least-squares probe from the normalised motion codes to the lip gap, both
        centred per clip (so identity offsets do not enter), and its correlation with the lip gap on the train
        frames. ``fixed`` (D,): use this direction instead of fitting one (signed so that it grows with the gap)."""
        missing = [c["clip_id"] for c in self.clips if c["lip_gap"] is None]
        if missing:
            raise ManifestError(f"the targets file has no lip_gap for clips {missing[:3]} (written by an older "
                                "extract-targets); re-run talkbench extract-targets to use --mouth-weight or a "
                                "mouth_stretch preset (tiny-talk)")
        codes, gap = self.centred("motion", normalize), self.centred("lip_gap")
        w = torch.linalg.lstsq(codes, gap[:, None]).solution[:, 0] if fixed is None else fixed.double()
        r = float(torch.corrcoef(torch.stack([codes @ w, gap]))[0, 1])
        if r < 0:
            w, r = -w, -r
        return (w / w.norm()).float(), r

    def pose_to_motion(self) -> dict:
        """The least-squares linear map from head pose (÷ 90, AniTalker's units) to motion codes, both centred per
        clip: {"matrix": (3, D) rows, "r2": the share of the codes' within-clip variance it explains}. Directed
        generation steers the codes with it (``DirectedConfig.pose_steer``)."""
        pose, codes = self.centred("pose"), self.centred("motion")
        a = torch.linalg.lstsq(pose, codes).solution  # (3, D)
        r2 = 1 - float(((codes - pose @ a) ** 2).sum() / (codes ** 2).sum().clamp_min(1e-12))
        return {"matrix": a.float().tolist(), "r2": round(r2, 4)}

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, int(index)])
        clip = self.clips[int(rng.integers(len(self.clips)))]
        w = self.window
        s = int(rng.integers(1, clip["n"] - w + 1))  # window [s, s + w), hint frame s - 1
        h = s - 1
        if self.hint_random and rng.random() < self.hint_random:
            h = int(rng.integers(clip["n"]))
        return {"motion": clip["motion"][s:s + w], "hint": clip["motion"][h], "identity": clip["identity"],
                "audio": clip["audio"][4 * s: 4 * (s + w)], "pose": clip["pose"][s:s + w],
                "location": clip["location"][s:s + w], "scale": clip["scale"][s:s + w]}


def check_motion_checkpoint(motion_checkpoint: str | Path, model_cfg) -> tuple[str, dict]:
    """(sha256, stage-1 model config) of a motion checkpoint that matches the audio2motion preset."""
    from .motion import MotionConfig
    from .motion import get_config as motion_config

    ckpt = checkpoints.load(motion_checkpoint)
    if ckpt.get("cfg", {}).get("family") != "motion":
        raise checkpoints.CheckpointError(f"{motion_checkpoint}: not a motion-model checkpoint")
    # a field added after the checkpoint was written (coarse_flow) takes its default, as when the model is built
    found = MotionConfig.from_dict(ckpt["cfg"]["model"]).to_dict()
    wanted = motion_config(model_cfg.motion_preset).to_dict()
    if found != wanted:
        differ = ", ".join(f"{k} {found.get(k)} not {wanted[k]}" for k in wanted if found.get(k) != wanted[k])
        raise ConfigError(f"{motion_checkpoint}: a stage-1 model of another preset ({differ}); this audio2motion "
                          f"preset reads the {model_cfg.motion_preset!r} stage-1 preset")
    return hashlib_file(motion_checkpoint), found


def mouth_stretch_row(motion_checkpoint) -> torch.Tensor | None:
    """(motion_dim,) the stage-1 coarse flow's weights from the code change to the vertical stretch about the mouth
    (``motion.MOUTH_STRETCH``), or None where the renderer has no mouth window."""
    from .motion import MOUTH_STRETCH, MotionConfig

    ckpt = checkpoints.load(motion_checkpoint)
    if not MotionConfig.from_dict(ckpt["cfg"]["model"]).coarse_mouth:
        return None
    return ckpt["ema"]["synthesis.coarse.coef.weight"][MOUTH_STRETCH].float()


def hashlib_file(path) -> str:
    from ..media import sha256_file

    return sha256_file(path)


def _read_inputs(cfg: TrainConfig, motion_sha: str) -> tuple[dict, dict]:
    from .inference import read_motion_latents
    from .targets import read_targets

    root = Path(cfg.manifest).parent
    lat_path = Path(cfg.latents) if cfg.latents else root / "motion_latents.parquet"
    tg_path = Path(cfg.targets) if cfg.targets else root / "motion_targets.parquet"
    if not lat_path.is_file():
        raise ManifestError(f"{lat_path}: no motion latents; write them with: talkbench extract-motion --manifest "
                            f"{cfg.manifest} --checkpoint {cfg.motion_checkpoint} --out {lat_path}")
    if not tg_path.is_file():
        raise ManifestError(f"{tg_path}: no pose/location/scale targets; write them with "
                            f"talkbench.models.targets.extract_targets({cfg.manifest!r}, {str(tg_path)!r})")
    latents = _by_clip(read_motion_latents(lat_path))
    shas = {r["checkpoint_sha"] for r in latents.values()}
    if shas != {motion_sha}:
        raise ConfigError(f"{lat_path} was extracted with stage-1 checkpoint(s) "
                          f"{', '.join(s[:12] + '…' for s in sorted(shas))}, but --motion-checkpoint has "
                          f"{motion_sha[:12]}…; re-run extract-motion with it")
    return latents, _by_clip(read_targets(tg_path))


# ----------------------------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------------------------

def main(cfg: TrainConfig) -> dict:
    check_train_config(cfg)  # before any folder exists: positive counts, no silent overwrite of a run
    if cfg.mouth_weight < 0:
        raise ConfigError(f"mouth_weight must be >= 0, got {cfg.mouth_weight}")
    if not 0 <= cfg.hint_random <= 1:
        raise ConfigError(f"hint_random must be in [0, 1], got {cfg.hint_random}")
    rank, world, device = setup_distributed(cfg.device)
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed + rank)
    model_cfg = get_config(cfg.preset)
    if cfg.window is not None:  # an architecture key: stored in the checkpoint's cfg like the others
        model_cfg = dataclasses.replace(model_cfg, window=cfg.window, overlap=min(model_cfg.overlap, cfg.window // 2))
    amp = cfg.amp and device.type == "cuda"

    motion_sha, motion_model_cfg = check_motion_checkpoint(cfg.motion_checkpoint, model_cfg)
    latents, targets = _read_inputs(cfg, motion_sha)
    data = SpeechMotionWindows(cfg.manifest, latents, targets, model_cfg.window, seed=cfg.seed,
                               hint_random=cfg.hint_random)
    manifest_sha = manifest_sha256(cfg.manifest)
    full_cfg = {"model": model_cfg.to_dict(), "train": asdict(cfg), "family": "audio2motion",
                "motion_checkpoint_sha": motion_sha, "motion_model": motion_model_cfg,
                "clips": [c["clip_id"] for c in data.clips], "skipped": data.skipped}

    if "pose" in VARIANCE[model_cfg.variance]:
        full_cfg["pose_to_motion"] = data.pose_to_motion()
    model = Audio2Motion(model_cfg).to(device)
    # data units → [-1, 1]; saved as buffers (relative presets: the motion minus the hint, and the hint)
    fitted = model.fit_normalization([c["motion"].to(device) for c in data.clips])
    if model_cfg.standardize_targets:  # the adapter's train statistics; saved as buffers
        model.net.adapter.fit_standardization({k: v.to(device)
                                               for k, v in data.all_targets(model.net.adapter.names).items()})
    loss_kw: dict = {}
    if cfg.mouth_weight > 0 or model_cfg.mouth_stretch:
        # the probe in the per-dimension-normalised space (before any stretch: fit_stretch is called below)
        # A stage 1 with a mouth window (tiny-lips) draws the mouth from one line of the code change: its coarse
        # flow's lip stretch. That line, in the normalised space, is the direction; otherwise the probe is fitted.
        row = mouth_stretch_row(cfg.motion_checkpoint)
        fixed = None if row is None else row.to(device) * model.diffusion.data_scale
        direction, probe_r = data.mouth_direction(lambda x: model.diffusion.normalize(x.to(device)).cpu(),
                                                  None if fixed is None else fixed.cpu())
        full_cfg["mouth_direction"] = {"direction": direction.tolist(), "train_r": probe_r,
                                       "weight": cfg.mouth_weight,
                                       "source": "lip-gap probe" if row is None else "renderer's lip stretch"}
        if model_cfg.mouth_stretch:
            proj = model.diffusion.normalize(fitted) @ direction.to(device)
            full_cfg["mouth_direction"]["gain"] = model.diffusion.fit_stretch(direction.to(device), proj)
        if cfg.mouth_weight > 0:
            loss_kw = {"weight_direction": direction.to(device), "direction_weight": cfg.mouth_weight}
    if model_cfg.front_end == "mfcc":
        model.net.front_end.fit(torch.cat([c["audio"] for c in data.clips]).to(device))
    out.mkdir(parents=True, exist_ok=True)  # only now: a refused input leaves no folder behind
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    start, ckpt_path = 0, out / "last.pt"
    if cfg.resume and ckpt_path.exists():
        ckpt = checkpoints.load(ckpt_path, map_location=device)
        checkpoints.check_architecture(full_cfg["model"], ckpt["cfg"]["model"], ckpt_path)
        if ckpt["manifest_sha"] != manifest_sha:
            raise ConfigError(f"{ckpt_path} was trained on a manifest with sha256 {ckpt['manifest_sha'][:12]}…, "
                              f"{cfg.manifest} has {manifest_sha[:12]}…; resume with the same manifest")
        if ckpt["motion_checkpoint_sha"] != motion_sha:
            raise ConfigError(f"{ckpt_path} was trained on stage-1 checkpoint {ckpt['motion_checkpoint_sha'][:12]}…, "
                              f"--motion-checkpoint has {motion_sha[:12]}…")
        model.load_state_dict(ckpt["model"]), ema.load_state_dict(ckpt["ema"]), opt.load_state_dict(ckpt["opt"])
        checkpoints.set_rng_state(ckpt["rng"])
        start = int(ckpt["step"])
    elif cfg.resume and rank == 0:
        print(f"--resume: no checkpoint at {ckpt_path}, starting from step 0")

    train_model = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        model.net.decoder = torch.compile(model.net.decoder)

    loader = torch.utils.data.DataLoader(
        data, batch_sampler=StepSampler(cfg.batch_size, start, cfg.max_steps, rank, world),
        num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=start)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext
    bar = _progress(cfg, start) if rank == 0 else None
    history: list[dict] = []

    def save(step: int) -> None:
        if rank == 0:
            checkpoints.save(ckpt_path, {
                "model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "cfg": full_cfg,
                "step": step, "manifest_sha": manifest_sha, "motion_checkpoint_sha": motion_sha,
                "rng": checkpoints.rng_state()})

    done, t_last = start, time.perf_counter()
    model.train()
    for step, batch in enumerate(loader, start=start):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with autocast():
            losses = train_model(batch, **loss_kw)  # forward() is losses(): DDP's hooks see it
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        done = step + 1
        update_ema(ema, model, min(cfg.ema_decay, (1 + done) / (10 + done)))  # warm-up as the motion trainer
        if bar is not None:
            bar.update(1)
        if done % cfg.log_every == 0 or done == cfg.max_steps:
            now = time.perf_counter()
            row = {"step": done, **{k: float(v.detach()) for k, v in losses.items()}, "grad_norm": float(grad_norm),
                   "sec_per_step": (now - t_last) / (cfg.log_every if history else max(1, done - start))}
            t_last = now
            history.append(row)
            if writer is not None:
                for k, v in row.items():
                    if k != "step":
                        writer.add_scalar(f"train/{k}", v, done)
                with (out / "log.jsonl").open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
        if done % cfg.ckpt_every == 0 or done == cfg.max_steps:
            save(done)
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return {"step": done, "history": history, "checkpoint": str(ckpt_path), "clips": len(data.clips),
            "skipped": data.skipped}


def _progress(cfg: TrainConfig, start: int):
    if not cfg.progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=cfg.max_steps, initial=start, desc="audio2motion", unit="step", dynamic_ncols=True)


def _cli():  # torchrun entry point: same flags as `talkbench train audio2motion`
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", required=True)
    p.add_argument("--motion-checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="paper")
    p.add_argument("--latents")
    p.add_argument("--targets")
    p.add_argument("--max-steps", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--mouth-weight", type=float, default=0.0)
    p.add_argument("--hint-random", type=float, default=0.0)
    a = p.parse_args()
    main(TrainConfig(manifest=a.manifest, motion_checkpoint=a.motion_checkpoint, out=a.out, preset=a.preset,
                     latents=a.latents, targets=a.targets, max_steps=a.max_steps, batch_size=a.batch_size,
                     device=a.device, compile=a.compile, resume=a.resume, mouth_weight=a.mouth_weight,
                     hint_random=a.hint_random))


if __name__ == "__main__":
    _cli()
