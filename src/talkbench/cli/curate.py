"""The `curate` console script: source lists → normalised videos → clip dataset."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import List, Optional, Sequence

import typer

from ..errors import TalkbenchError
from ._app import check_workers, choice, console, err_console, new_app, run_app

app = new_app("curate: build identity-tagged talking-head clip datasets from source lists.", root=True)

FORMAT_HELP = "Source list format: hdtf | table | folder (default: detected from each path)."


def _stage_names() -> str:
    from ..curation.stages import STAGES

    return " | ".join(stage.name for stage in STAGES)


def _profile_names() -> str:
    from ..curation.upper_body import PROFILES

    return " | ".join(PROFILES)


def _load_config(config_file: Optional[Path], overrides: List[str], profile: str = "default"):
    import yaml

    from ..curation.config import CurationConfig
    from ..errors import ConfigError

    config = CurationConfig()
    if config_file is not None:
        try:
            data = yaml.safe_load(Path(config_file).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {config_file}: {exc}") from exc
        try:
            config = CurationConfig.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{config_file}: {exc}") from exc
    from ..curation.upper_body import apply_profile

    try:
        config = apply_profile(config, profile)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    parsed = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        parsed[key.strip()] = yaml.safe_load(value)  # 200 → int, 0.5 → float, true → bool, null → None
    try:
        return config.with_overrides(parsed) if parsed else config
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc


@app.command("sources")
def sources_command(
    paths: List[Path] = typer.Argument(..., help="Source lists: an HDTF metadata folder, CSV/Parquet/YAML tables, "
                                                 "or folders of videos."),
    out: Path = typer.Option(..., "--out", "-o", help="The sources Parquet file to write."),
    fmt: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
):
    """Read and merge source lists into one normalised sources table (malformed lines are reported and skipped)."""
    from ..curation.pipeline import build_sources

    rows, issues = build_sources(paths, out, fmt)
    if not quiet:
        for issue in issues:
            err_console.print(f"skipped {issue}", markup=False)
        spans = sum(len(r["spans"] or []) for r in rows)
        console.print(f"{len(rows)} sources, {spans} spans, {len(issues)} skipped lines → {out}", markup=False)


@app.command("build-manifest")
def build_manifest_command(
    sources: List[Path] = typer.Argument(..., help="Source lists (see `curate sources`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (manifests, media, stats)."),
    until: str = typer.Option("all", "--until", help=f"Last stage to run: {_stage_names()} | all."),
    executor: str = typer.Option("local", "--executor", help="local (process pool) | ray.",
                                 callback=choice("executor", ("local", "ray"))),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster address, e.g. auto."),
    ray_max_retries: int = typer.Option(3, "--ray-max-retries", min=0, help="Ray: times a rank is retried after its "
                                                                            "worker dies (killed, out of memory)."),
    workers: int = typer.Option(1, "--workers", "-w", help="Parallel worker processes.", callback=check_workers),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or summary."),
    overrides: List[str] = typer.Option([], "--set", help="Config override section.key=value (repeatable)."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="CurationConfig YAML file."),
    profile: str = typer.Option("default", "--profile", help="Named config overrides, applied after --config and "
                                                             f"before --set: {_profile_names()}."),
    fmt: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    proxy: Optional[str] = typer.Option(None, "--proxy", help="Proxy for downloads, e.g. socks5://host:1080 "
                                                              "(same as --set acquire.proxy=…)."),
    cookies_file: Optional[Path] = typer.Option(None, "--cookies-file", help="Netscape cookies.txt for downloads "
                                                                             "(same as --set acquire.cookies_file=…)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Download again the sources whose download "
                                                                    "failed with network or rate_limited; "
                                                                    "everything else is kept as it is."),
):
    """Download, probe and normalise every source into OUT/videos.parquet, then run the clip stages that exist."""
    from ..curation.breaker import DownloadsStopped
    from ..curation.pipeline import build_manifest
    from ..runtime import make_executor

    config = _load_config(config_file, overrides, profile)
    network = {"acquire.proxy": proxy, "acquire.cookies_file": None if cookies_file is None else str(cookies_file)}
    network = {k: v for k, v in network.items() if v is not None}
    if network:
        config = config.with_overrides(network)  # as given: no YAML parsing of a path or url
    runner = make_executor(executor, workers=workers, quiet=quiet, ray_address=ray_address,
                           ray_max_retries=ray_max_retries)
    log = None if quiet else (lambda message: err_console.print(message, markup=False))
    if retry_failed:
        _reopen_failed(sources, out, runner, fmt, log)
    started = time.time()
    progress = None if quiet else DownloadProgress(Path(out), started)
    try:
        if progress is not None:
            progress.start()
        result = build_manifest(sources, out, config, runner, until=until, fmt=fmt, quiet=quiet, log=log)
    except DownloadsStopped:
        raise
    except Exception as exc:
        # Another executor (ray) may wrap the step's error in its own: the breaker's state says what happened.
        tripped = _tripped_since(Path(out), started)
        if tripped:
            raise DownloadsStopped(tripped) from exc
        raise
    finally:
        if progress is not None:
            progress.stop()
    if not quiet:
        status = ", ".join(f"{n} {s}" for s, n in result.videos.items()) or "none"
        console.print(f"{result.sources} sources → videos: {status}; {result.segments} segments; "
                      f"{result.rejections} rejections"
                      + (f"; {result.clips} clips" if result.clips is not None else "")
                      + f" → {result.out_dir}", markup=False)
    why = unusable_outcome(result)
    if why:
        raise NothingUsableError(why)


def _reopen_failed(sources, out: Path, runner, fmt, log) -> None:
    from ..curation.acquire import reopen_failed_downloads
    from ..curation.readers import read_sources

    rows, _ = read_sources(sources, fmt)  # the rows build_manifest reads, in its order
    reopened = reopen_failed_downloads(rows, Path(out).absolute(), runner.world_size_for(len(rows)))
    if log is not None:
        log(f"--retry-failed: {len(reopened)} sources failed with network or rate_limited and are downloaded again"
            + (f" ({', '.join(reopened[:5])}{', …' if len(reopened) > 5 else ''})" if reopened else ""))


def _tripped_since(out: Path, started: float) -> str | None:
    import json

    from ..curation.breaker import state_path

    try:
        state = json.loads(state_path(Path(out).absolute()).read_text())
    except (OSError, ValueError):
        return None
    return state.get("tripped") if state.get("updated", 0) >= started else None


class DownloadProgress:
    """Prints download progress from the breaker's shared state (breaker.py), which every worker updates.

    On a terminal the executor's progress bar shows ranks; elsewhere (a log file, CI, nohup) nothing was printed for
    the whole download, so there a line is printed every few seconds while the counts change. Global pauses for rate
    limits and bot checks are announced in both cases.
    """

    def __init__(self, out: Path, started: float, every: float = 2.0, poll: float = 0.2):
        from ..curation.breaker import state_path

        self.path, self.started, self.every, self.poll = state_path(Path(out).absolute()), started, every, poll
        self.out = Path(out)
        self.counts = sys.stderr is not None and not sys.stderr.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="download-progress", daemon=True)
        self._printed: tuple | None = None
        self._pauses = 0
        self._last_print = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._report(final=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            self._report()

    def _state(self) -> dict | None:
        import json

        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return state if state.get("updated", 0) >= self.started else None

    def _total(self) -> int | None:
        try:
            import pyarrow.parquet as pq

            return pq.read_metadata(self.out / "sources.parquet").num_rows
        except Exception:  # noqa: BLE001 - the total is a nicety; it may not be written yet
            return None

    def _report(self, final: bool = False) -> None:
        state = self._state()
        if state is None:
            return
        for pause in state.get("pause_log", []):
            if pause["n"] > self._pauses:
                self._pauses = pause["n"]
                err_console.print(f"download: {pause['class']} answer for {pause['source_id']} ({pause['answers']} "
                                  f"in a row): every worker waits {pause['seconds']:g} s", markup=False)
        key = (state["done"], state["ok"], tuple(sorted(state["failed"].items())))
        now = time.monotonic()
        if not self.counts or not state["done"] or key == self._printed or \
                (not final and now - self._last_print < self.every):
            return
        self._printed, self._last_print = key, now
        total = self._total()
        failed = sum(state["failed"].values())
        detail = ", ".join(f"{n} {k}" for k, n in sorted(state["failed"].items()))
        err_console.print(f"download: {state['done']}" + (f" of {total}" if total else "") + f" finished, "
                          f"{state['ok']} ok, {failed} failed" + (f" ({detail})" if detail else ""), markup=False)


class NothingUsableError(TalkbenchError):
    """The build finished and wrote its manifests, but nothing in them can be used (no source, video or clip)."""


def _counts(values) -> str:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def unusable_outcome(result) -> str | None:
    """One line saying why a finished build produced nothing usable, read from the manifests it wrote; else None."""
    from ..manifests.io import read_rows

    rejections = result.out_dir / "rejections.parquet"
    if result.sources == 0:
        first = f"; first: {result.issues[0]}" if result.issues else ""
        return (f"no usable sources: all {len(result.issues)} lines of the source lists were skipped{first}; "
                f"see {rejections}")
    videos = read_rows(result.out_dir / "videos.parquet", "videos")
    failed = [v for v in videos if v["status"] != "ok"]
    if len(failed) == len(videos):
        first = failed[0]
        return (f"no usable video: all {len(videos)} sources failed ({_counts(v['error_class'] for v in failed)}; "
                f"first: {first['source_id']}: {first['error_message']}); see {rejections}")
    if result.clips == 0:
        dropped = [r for r in read_rows(rejections, "rejections") if r["stage"] not in ("read", "download", "probe",
                                                                                         "normalise")]
        why = f" ({_counts(r['reason'] for r in dropped)})" if dropped else ""
        return f"no clips: every candidate clip was dropped{why}; see {rejections}"
    return None


@app.command("report")
def report_command(
    out: Path = typer.Argument(..., help="A curated folder (the --out of build-manifest)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
):
    """Rebuild OUT/report.html and OUT/report/*.png (funnel, drops, histograms, contact sheet) from the manifests."""
    from ..curation.report import build_report

    path = build_report(out)
    if not quiet:
        console.print(f"report → {path}", markup=False)


def main(argv: Sequence[str] | None = None) -> int:
    code = run_app(app, argv, "curate")
    if argv is None:
        raise SystemExit(code)
    return code


if __name__ == "__main__":  # python -m talkbench.cli.curate
    main()
