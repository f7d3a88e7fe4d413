"""The acquisition stage as executor steps: download → probe → normalise, one ``videos`` row per source.

A source that fails keeps its row (status ``failed`` or ``rejected`` with ``error_class`` and the first
``error_message``) and gets a rejection record, so the funnel counts it. Steps pass failed rows through untouched.
Paths in rows are relative to the output folder; the steps get that folder as an absolute path.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from ..manifests.io import atomic_write_text
from ..media import sha256_file
from ..runtime import Step
from .config import PIPELINE_VERSION, CurationConfig
from .breaker import GLOBAL_ANSWERS, Breaker, state_path
from .download import TEMPORARY, DownloadOptions, DownloadResult, fetch_source
from .normalise import NormaliseError, normalise_span
from .probe import ProbeError, display_size, probe_video

PROBE_FIELDS = ("size_bytes", "container", "video_codec", "pix_fmt", "bit_depth", "width", "height", "rotation",
                "avg_fps", "real_fps", "is_vfr", "duration", "n_frames", "has_audio", "audio_codec", "audio_rate",
                "audio_channels")


def segment_path(source_id: str, span_index: int) -> str:
    return f"media/normalised/{source_id}/{span_index}.mp4"


def _rel(path: Path, out_dir: Path) -> str:
    return path.resolve().relative_to(out_dir.resolve()).as_posix()


class _AcquireStep(Step):
    stage = "acquire"

    def __init__(self, out_dir: str | Path, config: CurationConfig):
        self.out_dir = str(Path(out_dir).resolve())
        self.config = config

    @property
    def name(self) -> str:
        return self.stage

    def fail(self, row: dict, status: str, error_class: str, message: str, **detail) -> dict:
        row.update(status=status, error_class=error_class, error_message=message)
        self.reject(row["source_id"], error_class, source_id=row["source_id"], message=message, **detail)
        if status == "rejected":
            self.drop_local_copy(row)
        return row

    def drop_local_copy(self, row: dict) -> None:
        """A rejected local input keeps no copy in OUT (the source is still where it was); a download is kept."""
        if row.get("platform") != "local" or not row.get("download_path"):
            return
        (Path(self.out_dir) / row["download_path"]).unlink(missing_ok=True)
        result_record(Path(self.out_dir), row["source_id"]).unlink(missing_ok=True)
        row["download_path"] = None
        self.count("local_copy_removed")


class DownloadStep(_AcquireStep):
    """Source row → video row with the download result (yt-dlp for urls, a copy for local files)."""

    stage = "download"

    def __init__(self, out_dir: str | Path, config: CurationConfig):
        super().__init__(out_dir, config)
        self.run_token = uuid.uuid4().hex  # one per build: the breaker's shared state starts afresh (breaker.py)

    def breaker(self, opts: DownloadOptions) -> Breaker:
        return Breaker(str(state_path(self.out_dir)), self.run_token, opts.max_consecutive_failures, opts.backoff,
                       opts.backoff * 2 ** max(opts.retries, 0))

    def run(self, rows, rank=0, world_size=1):
        out_dir = Path(self.out_dir)
        opts = DownloadOptions.from_config(self.config.acquire)
        breaker = self.breaker(opts)
        for src in rows:
            breaker.check()  # tripped (here or in another worker): no new download starts
            row = {k: src.get(k) for k in ("source_id", "dataset", "platform", "video_id", "url", "source_label",
                                            "licence")}
            row.update(config_hash=self.config.hash("acquire"), pipeline_version=PIPELINE_VERSION, segments=[],
                       _spans=src.get("spans") or [])
            result = self._fetch(src, out_dir, opts, breaker)
            if result.status != "ok" and result.error_class in TEMPORARY | GLOBAL_ANSWERS:
                # Failed after the breaker tripped: stop without marking this rank complete, so a rerun retries it.
                breaker.check()
            row["attempts"] = result.attempts
            if result.status != "ok":
                self.count(f"failed_{result.error_class}")
                detail = {"attempts": result.attempts}
                if result.last_error:
                    detail["last_error"] = result.last_error
                yield self.fail(row, "failed", result.error_class, result.error_message, **detail)
                continue
            self.count("downloaded")
            row.update(status="ok", download_path=_rel(result.path, out_dir))
            yield row

    def _fetch(self, src: dict, out_dir: Path, opts: DownloadOptions, breaker: Breaker) -> DownloadResult:
        # The result of a finished download is kept beside it, so a rerun after a crash reports the same attempts.
        # A failed one is kept too (never reused): it is how --retry-failed finds the ranks to run again.
        record = result_record(out_dir, src["source_id"])
        if record.exists():
            try:
                saved = json.loads(record.read_text())
                if saved.get("status", "ok") == "ok" and (out_dir / saved["path"]).exists():
                    return DownloadResult("ok", out_dir / saved["path"], attempts=saved["attempts"])
            except (OSError, ValueError, KeyError, TypeError):
                pass
        result = fetch_source(src, out_dir, opts, breaker=None if src.get("local_path") else breaker)
        if result.attempts and not src.get("local_path"):
            breaker.finished(src["source_id"], result.status, result.error_class, result.error_message)
        if result.status == "ok":
            saved = {"status": "ok", "path": _rel(result.path, out_dir), "attempts": result.attempts}
        else:
            saved = {"status": "failed", "path": None, "attempts": result.attempts, "error_class": result.error_class}
        atomic_write_text(record, json.dumps(saved, sort_keys=True))
        return result


def result_record(out_dir: Path, source_id: str) -> Path:
    return Path(out_dir) / "media" / "downloads" / f".{source_id}.result.json"


def reopen_failed_downloads(rows: list[dict], out_dir: str | Path, world_size: int,
                            classes=TEMPORARY) -> list[str]:
    """``--retry-failed``: make the ranks whose download failed with a temporary class run again.

    The executor skips ranks that have a completion marker (``stats/acquire/completions/{rank:05d}``) and gives
    rank ``r`` the rows ``rows[r::world_size]``; removing the marker of such a rank is all it takes. Every other rank
    is untouched, so its rows, segments and rejections stay byte-identical. Returns the source ids reopened.
    """
    out_dir = Path(out_dir)
    completions = out_dir / "stats" / "acquire" / "completions"
    reopened = []
    for i, row in enumerate(rows):
        try:
            saved = json.loads(result_record(out_dir, row["source_id"]).read_text())
        except (OSError, ValueError):
            continue
        if saved.get("status") == "failed" and saved.get("error_class") in classes:
            (completions / f"{i % world_size:05d}").unlink(missing_ok=True)
            reopened.append(row["source_id"])
    return reopened


class ProbeStep(_AcquireStep):
    """Adds the probe fields; an empty, corrupt or video-less file is rejected with its reason."""

    stage = "probe"

    def run(self, rows, rank=0, world_size=1):
        out_dir = Path(self.out_dir)
        acquire = self.config.acquire
        for row in rows:
            if row["status"] != "ok":
                yield row
                continue
            path = out_dir / row["download_path"]
            try:
                probe = probe_video(path)
            except ProbeError as exc:
                row["size_bytes"] = path.stat().st_size if path.exists() else None
                yield self.fail(row, "rejected", exc.reason, str(exc))
                continue
            row.update(probe)
            row["sha256"] = sha256_file(path)
            w, h = display_size(probe)
            row.update(norm_fps=float(acquire.fps), norm_audio_rate=int(acquire.audio_rate) if probe["has_audio"]
                       else None, norm_width=w - w % 2, norm_height=h - h % 2)
            for flag in ("is_vfr", "has_audio"):
                if probe[flag]:
                    self.count(flag)
            if probe["rotation"]:
                self.count("rotated")
            if (probe["bit_depth"] or 8) > 8:
                self.count("high_bit_depth")
            yield row


class NormaliseStep(_AcquireStep):
    """Cuts every span to DIR/media/normalised/<source_id>/<span_index>.mp4 (the whole video when there is none)."""

    stage = "normalise"

    def run(self, rows, rank=0, world_size=1):
        out_dir = Path(self.out_dir)
        acquire = self.config.acquire
        for row in rows:
            spans = row.pop("_spans", None) or []
            if row["status"] != "ok":
                yield row
                continue
            if not spans:
                spans = [{"index": 0, "start": None, "end": None}]
            segments = []
            for span in spans:
                rel = segment_path(row["source_id"], int(span["index"]))
                start = float(span["start"] or 0.0)
                end = float(span["end"]) if span.get("end") is not None else row["duration"]
                seg = {"index": int(span["index"]), "start": start, "end": end, "path": rel, "n_frames": None,
                       "expected_frames": int(round((end - start) * acquire.fps)), "sha256": None,
                       "status": "ok", "error_message": None}
                try:
                    seg.update(normalise_span(out_dir / row["download_path"], out_dir / rel, start=span["start"],
                                              end=span.get("end"), source_duration=row["duration"],
                                              has_audio=row["has_audio"], fps=acquire.fps,
                                              audio_rate=acquire.audio_rate))
                    self.count("segments_ok")
                except NormaliseError as exc:
                    seg.update(status="failed", path=None, error_message=str(exc))
                    self.reject(f"{row['source_id']}/{seg['index']}", exc.reason, source_id=row["source_id"],
                                    message=str(exc), start=start, end=end)
                segments.append(seg)
            row["segments"] = segments
            if not any(s["status"] == "ok" for s in segments):
                first = next(s for s in segments if s["status"] != "ok")
                row.update(status="rejected", error_class="no_usable_segment", error_message=first["error_message"])
                self.reject(row["source_id"], "no_usable_segment", source_id=row["source_id"],
                                message=first["error_message"])
                self.drop_local_copy(row)
            yield row


def acquire_steps(out_dir: str | Path, config: CurationConfig) -> list[Step]:
    return [DownloadStep(out_dir, config), ProbeStep(out_dir, config), NormaliseStep(out_dir, config)]
