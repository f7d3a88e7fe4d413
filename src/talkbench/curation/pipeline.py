"""`curate build-manifest`: sources → DIR/sources.parquet, then every stage of ``stages.STAGES`` in order.

Reruns are cheap and exact: the executor skips completed ranks, and a manifest is only rewritten when its bytes
change, so a rerun on a finished folder changes nothing. Errors writing the output folder (disk full, permissions,
a path under a file) stop the run with one line naming the path; manifests are written atomically, so none is ever
left half-written.
"""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..errors import ConfigError
from ..runtime import Executor, make_executor
from .clip_pipeline import clean_stale_media
from .config import CurationConfig
from .download import OutputWriteError
from .readers import Issue, issues_as_rejections, read_sources
from .report import build_report
from .stages import STAGES, Run, Stage, run_stage, write_manifest

UNTIL = (*(stage.name for stage in STAGES), "all")


@dataclass
class BuildResult:
    out_dir: Path
    sources: int
    videos: dict[str, int]  # status → count
    segments: int
    issues: list[Issue] = field(default_factory=list)
    rejections: int = 0
    clips: int | None = None
    stopped_after: str = "acquire"


def check_writable(out_dir: Path) -> None:
    """Fail early, with one clear line, when the output folder cannot be created or written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        where = exc.filename or out_dir
        raise OutputWriteError(f"cannot write the output folder {out_dir}: {exc.strerror or exc} ({where})") from exc


def _fatal_os_error(exc: OSError, out_dir: Path) -> OutputWriteError:
    return OutputWriteError(f"cannot write under {out_dir}: {exc.strerror or exc}"
                            + (f" ({exc.filename})" if exc.filename else ""))


def build_sources(paths: Sequence[str | Path], out: str | Path, fmt: str | None = None) -> tuple[list[dict], list[Issue]]:
    """`curate sources`: read and merge the lists, write the sources table."""
    rows, issues = read_sources(paths, fmt)
    write_manifest(rows, Path(out), "sources")
    return rows, issues


def run_stages(run: Run, rows: list[dict], stages: list[Stage] = STAGES, until: str | None = None) -> list[dict]:
    """Run ``stages`` in order (stopping after ``until``), then write rejections.parquet; a full run also removes
    stale clip media and builds the report."""
    for stage in stages:
        rows = run_stage(stage, run, rows)
        if stage.name == until:
            break
    write_manifest(run.rejections, run.out_dir / "rejections.parquet", "rejections")
    if until is None or until == stages[-1].name:
        clean_stale_media(run.out_dir / "clips", {c["clip_id"] for c in rows})
        build_report(run.out_dir)
    return rows


def build_manifest(sources: Sequence[str | Path], out_dir: str | Path, config: CurationConfig | None = None,
                   executor: Executor | None = None, until: str = "all", fmt: str | None = None, quiet: bool = False,
                   log: Callable[[str], None] | None = None) -> BuildResult:
    if until not in UNTIL:
        raise ConfigError(f"unknown stage {until!r}; choose from {sorted(UNTIL)}")
    config = config or CurationConfig()
    executor = executor or make_executor("local", quiet=quiet)
    log = log or (lambda message: None)
    out_dir = Path(out_dir).absolute()
    rows, issues = read_sources(sources, fmt)
    for issue in issues:
        log(f"skipped {issue}")
    check_writable(out_dir)
    try:
        write_manifest(rows, out_dir / "sources.parquet", "sources")
        run = Run(out_dir, config, executor, rejections=issues_as_rejections(issues))
        clips = run_stages(run, rows, STAGES, until=None if until == "all" else until)
        videos = run.outputs["acquire"]
        counts: dict[str, int] = {}
        for v in videos:
            counts[v["status"]] = counts.get(v["status"], 0) + 1
        result = BuildResult(out_dir, len(rows), dict(sorted(counts.items())),
                             sum(1 for v in videos for s in v["segments"] or [] if s["status"] == "ok"), issues,
                             len(run.rejections), stopped_after=until)
        if until in ("all", STAGES[-1].name):
            result.clips, result.stopped_after = len(clips), "all"
        return result
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EDQUOT,
                         errno.EISDIR):
            raise _fatal_os_error(exc, out_dir) from exc
        raise
