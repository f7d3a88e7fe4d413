"""Train the motion encoder + warping renderer (AniTalker stage 1 on LIA) from a clips manifest.

    talkbench train motion --manifest DIR/clips.parquet --preset tiny --out RUN --max-steps 300
    torchrun --nproc_per_node 8 -m talkbench.models.train_motion --manifest ... --preset base --out RUN

One step = a generator step (reconstruction + GAN + identity + CLUB terms), a discriminator step and a CLUB
estimator step (the estimator is fitted on detached codes, alternating with the encoder that minimises its bound).
Data order is a pure function of the step index, so ``--resume`` replays exactly what an uninterrupted run sees.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError
from . import checkpoints
from .data import MotionPairs, StepSampler, manifest_sha256
from .losses import (AAMSoftmax, CLUB, PERCEPTUAL, PyramidPerceptualLoss, d_nonsaturating, g_nonsaturating, psnr,
                     triplet_loss)
from .motion import Discriminator, MotionGenerator, get_config
from .run_folder import check_train_config


@dataclass
class LossWeights:
    # LIA trainer.py (wyhsirius/LIA @2a5bbfa): g_loss = vgg_loss + l1_loss + gan_loss, all weight 1; the VGG loss
    # itself weights each of 5 layers by 10 over a 4-level pyramid (see losses.VGG_LAYER_WEIGHTS).
    l1: float = 1.0
    perceptual: float = 1.0
    gan: float = 1.0
    # AniTalker (arXiv 2405.03121, Sec. 3.1) adds these terms but publishes no weights or training code; the values
    # below are ours: small enough that reconstruction dominates (its loss is O(10) with VGG) but not negligible.
    aam: float = 0.1  # AAM-softmax on identity_id; margin/scale from the speaker-verification default (0.2, 30)
    triplet: float = 0.1  # augmented copy = positive, other identity = negative, cosine margin 0.2
    # CLUB MI bound between identity and motion embeddings. Measured here (tiny, two identities, 120 steps): 0.01 let
    # the in-training estimate rise (-0.01 → 0.10); 0.1 made it fall (-0.01 → -0.10) with the same L1 (0.234);
    # 1.0 diverged (the encoder inflates the motion code against the estimator's bounded variance).
    club: float = 0.1
    # Mouth-region L1: the L1 inside a Gaussian window on the target's mouth (Face Mesh inner-lip midpoint, σ =
    # MOUTH_SIGMA inter-ocular distances), normalised by the window's area. 0 = off (LIA / AniTalker have no such term).
    mouth: float = 0.0

    @property
    def identity_terms(self) -> bool:
        return bool(self.aam or self.triplet or self.club)


MOUTH_SIGMA = 0.5  # in inter-ocular distances: the window spans the lips and the jaw below them


def mouth_window(mouth: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 1, size, size) Gaussian windows from (B, 3) mouth x, y, inter-ocular distance (fractions of the side)."""
    coords = (torch.arange(size, device=mouth.device, dtype=torch.float32) + 0.5) / size
    sigma = (MOUTH_SIGMA * mouth[:, 2]).clamp_min(1.0 / size)[:, None, None]
    dx = coords[None, None, :] - mouth[:, 0, None, None]
    dy = coords[None, :, None] - mouth[:, 1, None, None]
    return torch.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2))[:, None]


def mouth_l1(recon: torch.Tensor, target: torch.Tensor, mouth: torch.Tensor) -> torch.Tensor:
    win = mouth_window(mouth, target.shape[-1])  # (B, 1, S, S)
    return ((recon.float() - target).abs() * win).sum() / (win.sum() * target.shape[1]).clamp_min(1e-6)


@dataclass
class TrainConfig:
    manifest: str
    out: str
    preset: str = "base"  # the paper's 256 px model; "tiny" (64 px) trains on a CPU
    max_steps: int = 100_000
    batch_size: int = 8  # per rank
    lr: float = 2e-3  # LIA train.py default lr
    d_lr: float = 2e-3
    club_lr: float = 1e-4  # CLUB reference code (Cheng et al. 2020) uses 1e-4 … 5e-3 for the estimator
    # LIA / StyleGAN2 use Adam betas (0, 0.99) for both networks. For the generator we keep momentum: on the
    # one-clip overfit here (tiny, batch 8, 150 steps) β1 = 0.9 reached 23.5 dB PSNR against 18-22 dB (oscillating)
    # with β1 = 0 at the same lr. The discriminator keeps LIA's (0, 0.99).
    betas: tuple[float, float] = (0.9, 0.99)
    d_betas: tuple[float, float] = (0.0, 0.99)
    grad_clip: float = 10.0  # global-norm clip; a guard against GAN spikes, rarely active
    ema_decay: float = 0.999
    perceptual: str = "vgg19"  # one of losses.PERCEPTUAL; "none-l1-pyramid" when no VGG19 weights are installed
    weights: LossWeights = field(default_factory=LossWeights)
    aam_margin: float = 0.2
    aam_scale: float = 30.0
    triplet_margin: float = 0.2
    device: str = "auto"  # auto | cpu | cuda
    compile: bool = False
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    num_workers: int = 2
    seed: int = 0
    log_every: int = 10
    image_every: int = 500
    ckpt_every: int = 1000
    resume: bool = False
    near_pairs: float = 0.0  # fraction of pairs drawn within 3 frames of each other (data.MotionPairs)

    def __post_init__(self):
        if isinstance(self.weights, dict):
            self.weights = LossWeights(**self.weights)
        if self.perceptual not in PERCEPTUAL:
            raise ConfigError(f"unknown perceptual loss {self.perceptual!r}; choose from {sorted(PERCEPTUAL)}")
        self.betas, self.d_betas = tuple(map(float, self.betas)), tuple(map(float, self.d_betas))


# ----------------------------------------------------------------------------------------------------------------
# Pieces
# ----------------------------------------------------------------------------------------------------------------

class GeneratorStep(nn.Module):
    """Generator + AAM head as one module, so DDP and torch.compile see a single forward per step."""

    def __init__(self, gen: MotionGenerator, aam: AAMSoftmax):
        super().__init__()
        self.gen, self.aam = gen, aam

    def forward(self, source, target, other=None, aug=None):
        """Without ``other``/``aug`` (identity terms off) only source and target are encoded."""
        b = source.shape[0]
        images = [source, target] + ([other, aug] if other is not None else [])
        enc = self.gen.encoder(torch.cat(images))  # one pass over 4B (or 2B) images
        feats = [f[:b] for f in enc.feats]
        recon = self.gen.render(enc.w[:b], enc.alpha[b:2 * b], feats, enc.alpha[:b])  # (B, 3, S, S)
        return recon, enc.identity, enc.motion


def requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    ema_p = [p for p in ema.parameters()]
    model_p = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(ema_p, model_p, 1.0 - decay)
    for eb, mb in zip(ema.buffers(), model.buffers()):
        eb.copy_(mb)


def image_grid(*rows: torch.Tensor, n: int = 4) -> torch.Tensor:
    """(3, rows*S, n*S) uint8: each argument is one row of images in [-1, 1]."""
    lines = [torch.cat(list(r[:n].float().clamp(-1, 1)), dim=2) for r in rows]  # (3, S, n*S)
    return ((torch.cat(lines, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def setup_distributed(device: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was requested but torch sees no CUDA device")
    if world > 1:
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device == "cuda" else "gloo")
        dev = torch.device(f"cuda:{local}") if device == "cuda" else torch.device("cpu")
        if device == "cuda":
            torch.cuda.set_device(dev)
        return rank, world, dev
    return 0, 1, torch.device("cuda" if device == "cuda" else "cpu")


# ----------------------------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------------------------

def main(cfg: TrainConfig, on_log=None) -> dict:
    check_train_config(cfg)  # before any rank starts or any folder exists (run_folder.py)
    rank, world, device = setup_distributed(cfg.device)
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed + rank)
    model_cfg = get_config(cfg.preset)
    amp = cfg.amp and device.type == "cuda"

    data = MotionPairs(cfg.manifest, model_cfg.size, seed=cfg.seed, mouth=cfg.weights.mouth > 0, near=cfg.near_pairs)
    manifest_sha = manifest_sha256(cfg.manifest)
    full_cfg = {"model": model_cfg.to_dict(), "train": asdict(cfg), "identities": data.identities,
                "perceptual": cfg.perceptual, "family": "motion"}

    gen = MotionGenerator(model_cfg).to(device)
    disc = Discriminator(model_cfg).to(device)
    aam = AAMSoftmax(model_cfg.style_dim, len(data.identities), cfg.aam_margin, cfg.aam_scale).to(device)
    club = CLUB(model_cfg.style_dim, model_cfg.style_dim, model_cfg.head_hidden).to(device)
    gstep = GeneratorStep(gen, aam)
    ema = copy.deepcopy(gen).eval().requires_grad_(False)
    perceptual = PyramidPerceptualLoss(cfg.perceptual).to(device)
    g_opt = torch.optim.Adam(gstep.parameters(), lr=cfg.lr, betas=cfg.betas)
    d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.d_lr, betas=cfg.d_betas)
    c_opt = torch.optim.Adam(club.parameters(), lr=cfg.club_lr)

    start = 0
    ckpt_path = out / "last.pt"
    if cfg.resume and ckpt_path.exists():
        ckpt = checkpoints.load(ckpt_path, map_location=device)
        checkpoints.check_architecture(full_cfg["model"], ckpt["cfg"]["model"], ckpt_path)
        if ckpt["manifest_sha"] != manifest_sha:
            raise ConfigError(f"{ckpt_path} was trained on a manifest with sha256 {ckpt['manifest_sha'][:12]}…, "
                              f"{cfg.manifest} has {manifest_sha[:12]}…; resume with the same manifest")
        gen.load_state_dict(ckpt["model"]), ema.load_state_dict(ckpt["ema"])
        disc.load_state_dict(ckpt["disc"]), aam.load_state_dict(ckpt["aam"]), club.load_state_dict(ckpt["club"])
        g_opt.load_state_dict(ckpt["opt"]["g"]), d_opt.load_state_dict(ckpt["opt"]["d"])
        c_opt.load_state_dict(ckpt["opt"]["club"])
        checkpoints.set_rng_state(ckpt["rng"])
        start = int(ckpt["step"])
    elif cfg.resume and rank == 0:
        print(f"--resume: no checkpoint at {ckpt_path}, starting from step 0")

    w_identity = cfg.weights.identity_terms
    g_model, d_model = gstep, disc  # the CLUB estimator is tiny: no DDP wrapper, its grads are averaged by hand
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        # without identity terms the AAM head takes no part in the step
        g_model = DDP(gstep, device_ids=ids, find_unused_parameters=not w_identity)
        d_model = DDP(disc, device_ids=ids)
    if cfg.compile:
        g_model, d_model = torch.compile(g_model), torch.compile(d_model)

    loader = torch.utils.data.DataLoader(
        data, batch_sampler=StepSampler(cfg.batch_size, start, cfg.max_steps, rank, world),
        num_workers=cfg.num_workers, pin_memory=device.type == "cuda", persistent_workers=cfg.num_workers > 0)
    out.mkdir(parents=True, exist_ok=True)  # only now: a failing setup above leaves no empty run folder
    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=start)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext
    w = cfg.weights
    history: list[dict] = []

    def save(step: int) -> None:
        if rank != 0:
            return
        checkpoints.save(ckpt_path, {
            "model": gen.state_dict(), "ema": ema.state_dict(), "disc": disc.state_dict(), "aam": aam.state_dict(),
            "club": club.state_dict(),
            "opt": {"g": g_opt.state_dict(), "d": d_opt.state_dict(), "club": c_opt.state_dict()},
            "cfg": full_cfg, "step": step, "manifest_sha": manifest_sha, "rng": checkpoints.rng_state()})

    done, t_last = start, time.perf_counter()
    for step, batch in enumerate(loader, start=start):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        src, tgt, oth, aug = batch["source"], batch["target"], batch["other"], batch["aug"]

        # --- generator step: reconstruction + adversarial + identity metric learning + CLUB bound -------------
        requires_grad(disc, False), requires_grad(club, False)
        with autocast():
            if w.identity_terms:
                recon, identity, motion = g_model(src, tgt, oth, aug)
                id_s, id_t, id_o, id_a = identity.float().chunk(4)
            else:  # no identity term: the other and augmented images are not even encoded
                recon, identity, motion = g_model(src, tgt)
            zero = recon.new_zeros((), dtype=torch.float32)
            losses = {
                "l1": (recon.float() - tgt).abs().mean(),
                "perceptual": perceptual(recon, tgt),
                "gan": g_nonsaturating(d_model(recon)) if w.gan else zero,
                "aam": aam(torch.cat([id_s, id_t, id_o]), torch.cat([batch["label"], batch["label"],
                                                                     batch["other_label"]]))
                if w.identity_terms else zero,
                "triplet": triplet_loss(id_s, id_a, id_o, cfg.triplet_margin, mask=~batch["other_is_same"])
                if w.identity_terms else zero,
                "club": club(identity, motion) if w.identity_terms else zero,
            }
            if w.mouth:
                losses["mouth"] = mouth_l1(recon, tgt, batch["mouth"])
        g_total = sum(getattr(w, k) * v for k, v in losses.items())
        g_opt.zero_grad(set_to_none=True)
        g_total.backward()
        g_norm = torch.nn.utils.clip_grad_norm_(gstep.parameters(), cfg.grad_clip)
        g_opt.step()

        # --- discriminator step (non-saturating logistic loss, LIA / StyleGAN2) ------------------------------
        d_loss = torch.zeros((), device=device)
        if w.gan:
            requires_grad(disc, True)
            with autocast():
                d_loss = d_nonsaturating(d_model(tgt), d_model(recon.detach()))
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(disc.parameters(), cfg.grad_clip)
            d_opt.step()

        # --- CLUB estimator step: fit q(motion | identity) on detached codes ---------------------------------
        requires_grad(club, True)
        club_nll = club.learning_loss(identity.detach(), motion.detach())
        c_opt.zero_grad(set_to_none=True)
        club_nll.backward()
        if world > 1:
            for p in club.parameters():
                dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)
        c_opt.step()

        done = step + 1
        # EMA warm-up (as TensorFlow's ExponentialMovingAverage with num_updates): short runs get a usable average
        update_ema(ema, gen, min(cfg.ema_decay, (1 + done) / (10 + done)))

        if done % cfg.log_every == 0 or done == cfg.max_steps:
            now = time.perf_counter()
            row = {"step": done, **{k: float(v.detach()) for k, v in losses.items()}, "g_total": float(g_total.detach()),
                   "d_loss": float(d_loss.detach()), "club_nll": float(club_nll.detach()), "grad_norm": float(g_norm),
                   "psnr": float(psnr(recon.detach(), tgt)),
                   "sec_per_step": (now - t_last) / (cfg.log_every if history else max(1, done - start))}
            t_last = now
            history.append(row)
            if on_log is not None and rank == 0:  # the CLI's progress bar / off-terminal record
                on_log(row)
            if writer is not None:
                for k, v in row.items():
                    if k != "step":
                        writer.add_scalar(f"train/{k}", v, done)
                with (out / "log.jsonl").open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
        if writer is not None and (done % cfg.image_every == 0 or done == cfg.max_steps):
            writer.add_image("samples/source_target_recon_other", image_grid(src, tgt, recon.detach(), oth), done)
        if done % cfg.ckpt_every == 0 or done == cfg.max_steps:
            save(done)

    if writer is not None:
        writer.close()
    if world > 1:
        dist.barrier()
    return {"step": done, "history": history, "checkpoint": str(ckpt_path), "identities": data.identities}


def _cli():  # torchrun entry point: same flags as `talkbench train motion`, defaults from TrainConfig
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--preset")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device")
    p.add_argument("--perceptual", choices=PERCEPTUAL)
    p.add_argument("--compile", action="store_true", default=None)
    p.add_argument("--resume", action="store_true", default=None)
    p.add_argument("--num-workers", type=int)
    given = {k: v for k, v in vars(p.parse_args()).items() if v is not None}
    main(TrainConfig(**given))


if __name__ == "__main__":
    _cli()
