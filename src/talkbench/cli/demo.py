"""`talkbench demo make OUT_DIR`: generate demo material from real media (written in talkbench.demo)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import check_workers, console, new_app

app = new_app("Demo material built from real media on this machine.")


@app.command("make")
def make(out_dir: Path = typer.Argument(..., help="Folder to write the demo videos and sources.csv into."),
         seconds: float = typer.Option(3.0, help="Length of each passing portrait video, in seconds."),
         head_turns: bool = typer.Option(False, "--head-turns",
                                         help="The talking portraits also turn their heads out of plane (yaw and "
                                              "pitch), so nod and shake can be learnt from them.")) -> None:
    """Animate real portrait photos (with espeak-ng speech) plus failure cases, and write OUT_DIR/sources.csv.

    Then run: curate build-manifest OUT_DIR/sources.csv --config OUT_DIR/curate.yaml --out DIR
    """
    from ..demo import DEMO_CONFIG, make_demo

    sources = make_demo(out_dir, seconds=seconds, head_turns=head_turns)
    console.print(f"wrote {sources}")
    console.print(f"next: curate build-manifest {sources} --config {sources.parent / DEMO_CONFIG} "
                  f"--out {Path(out_dir) / 'curated'}", markup=False)


# CPU budget: tiny stage 1 at 64 px (20 steps of batch 4), tiny stage 2 on 50-frame windows (150 steps). The whole
# demo run (with the instruction and upper-body tables) took 11 min 28 s on 2 cores at load about 7 (three other jobs
# running). Too short for stage 1 to render mouth motion (tests/models/test_speech_learning.py has the figures).
DEMO_TRAIN = {"motion_steps": 20, "motion_batch": 4, "a2m_steps": 150, "window": 50, "ddim_steps": 20}


@app.command("run")
def run(ctx: typer.Context,
        out_dir: Path = typer.Argument(..., help="Folder for the whole demo: material/, curated/, runs/, leaderboards/."),
        workers: int = typer.Option(2, help="Worker processes for curation and scoring.", callback=check_workers),
        seconds: float = typer.Option(3.0, help="Length of each passing portrait video, in seconds."),
        train: bool = typer.Option(True, "--train/--no-train",
                                   help="Train tiny stage-1 and stage-2 models and score audio-driven ours."),
        motion_steps: int = typer.Option(DEMO_TRAIN["motion_steps"], help="Stage-1 (motion) training steps."),
        a2m_steps: int = typer.Option(DEMO_TRAIN["a2m_steps"], help="Stage-2 (audio2motion) training steps."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars.")) -> None:
    """The main job on generated real material: talking demo videos → curate build-manifest → train tiny stage 1 and
    stage 2 on the train split → bench run (gt, static, audio-driven ours, and instruction-following ours on one
    test clip) → publish.

    Every step is the same command a user would type; rerunning on the same folder resumes.
    """
    from ..demo import DEMO_CONFIG, make_demo
    from . import bench, curate
    from ._app import run_app

    root = ctx.find_root().command  # the `talkbench` app this command runs in (importing cli.main would be a cycle)

    def talkbench(argv: list[str]) -> int:
        return run_app(root, argv, "talkbench")

    out_dir = Path(out_dir)
    flags = ["--quiet"] if quiet else []
    console.rule("1 demo material from real media")
    sources = make_demo(out_dir / "material", seconds=seconds)
    console.print(f"wrote {sources}")
    curated = out_dir / "curated"
    manifest, runs = curated / "clips.parquet", out_dir / "runs"
    steps = [("curate build-manifest", curate.main,
              ["build-manifest", str(sources), "--config", str(sources.parent / DEMO_CONFIG),
               "--out", str(curated), "--workers", str(workers), *flags])]
    published = []
    # the test split holds two identities (curate.yaml), so cross-reenactment pairs people too
    for method, task, folder in (("gt", "self-reenact", "gt"), ("static", "self-reenact", "static"),
                                 ("static", "cross-reenact", "static-cross")):
        steps.append((f"bench run --method {method} --task {task}", bench.main,
                      ["run", "--method", method, "--task", task, "--manifest", str(manifest), "--split", "test",
                       "--workers", str(workers), "--out", str(runs / folder), *flags]))
        published.append(runs / folder)
    if train:
        stage1, stage2 = out_dir / "models" / "motion", out_dir / "models" / "audio2motion"
        resume = ["--resume"] if (stage1 / "last.pt").exists() else []
        steps += [
            ("train motion (tiny, CPU)", talkbench,
             ["train", "motion", "--manifest", str(manifest), "--out", str(stage1), "--preset", "tiny",
              "--max-steps", str(motion_steps), "--batch-size", str(DEMO_TRAIN["motion_batch"]),
              "--perceptual", "none-l1-pyramid", "--num-workers", "0",
              "--ckpt-every", str(motion_steps), *resume]),
            ("extract-motion", talkbench,
             ["extract-motion", "--manifest", str(manifest), "--checkpoint", str(stage1 / "last.pt"), "--split",
              "train", "--out", str(curated / "motion_latents.parquet")]),
            ("extract-targets", talkbench,
             ["extract-targets", "--manifest", str(manifest), "--split", "train", "--size", "256",
              "--out", str(curated / "motion_targets.parquet")]),
            ("train audio2motion (tiny, CPU)", talkbench,
             ["train", "audio2motion", "--manifest", str(manifest), "--motion-checkpoint", str(stage1 / "last.pt"),
              "--preset", "tiny", "--window", str(DEMO_TRAIN["window"]), "--max-steps", str(a2m_steps),
              "--batch-size", "8", "--lr", "1e-3", "--device", "cpu", "--out", str(stage2),
              *(["--resume"] if (stage2 / "last.pt").exists() else []), *flags]),
        ]
        for method, extra in (("static", []), ("ours", ["--checkpoint", str(stage2 / "last.pt"), "--motion-checkpoint",
                                                        str(stage1 / "last.pt"), "--steps",
                                                        str(DEMO_TRAIN["ddim_steps"])])):
            steps.append((f"bench run --method {method} --task audio-driven", bench.main,
                          ["run", "--method", method, "--task", "audio-driven", "--manifest", str(manifest),
                           "--split", "test", "--workers", str(workers), *extra,
                           "--out", str(runs / f"{method}-audio"), *flags]))
            published.append(runs / f"{method}-audio")
        # instruction following: directed ours on one test clip, one instruction per checked control
        from ..bench.instruction import DEMO_INSTRUCTIONS

        steps.append(("bench run --method ours --task instruction", bench.main,
                      ["run", "--method", "ours", "--task", "instruction", "--manifest", str(manifest),
                       "--split", "test", "--limit", "1", "--instructions", ",".join(DEMO_INSTRUCTIONS),
                       "--checkpoint", str(stage2 / "last.pt"), "--motion-checkpoint", str(stage1 / "last.pt"),
                       "--steps", str(DEMO_TRAIN["ddim_steps"] // 2), "--out", str(runs / "instruction-ours"),
                       *flags]))
        published.append(runs / "instruction-ours")
    if train:  # the upper-body table (ChatAnyone Table 1's setting) with ours: cli/avatar.py
        from .avatar import demo_upper_steps

        upper_steps, upper_run = demo_upper_steps(out_dir, talkbench, bench.main, flags)
        steps += upper_steps
        published.append(upper_run)
    steps.append(("bench publish", bench.main,
                  ["publish", *map(str, published), "--out", str(out_dir / "leaderboards")]))
    for k, (title, command, argv) in enumerate(steps, start=2):
        console.rule(f"{k}/{len(steps) + 1} {title}")
        code = command(argv)
        if code:
            raise typer.Exit(code)
    console.rule("done")
    console.print(f"clip dataset: {manifest}")
    console.print(f"curation report: {curated / 'report.html'}")
    console.print(f"leaderboard: {out_dir / 'leaderboards' / 'index.html'}")


def register(root: typer.Typer) -> None:
    """Add the `demo` group to the root app."""
    root.add_typer(app, name="demo")
