"""Source readers: HDTF metadata folders, url tables (CSV/Parquet/YAML) and local video folders → source rows.

Every reader returns ``(rows, issues)``. A row follows ``talkbench.manifests.schemas.SOURCES``; an issue is a
malformed or skipped line ``{"file", "line", "reason", "text"}`` that the caller reports and records, so one bad line
never stops the rest of the list.

Rules that keep reruns deterministic:

* ``source_id`` is the list's id (HDTF name, a table's ``id`` column, the YouTube id, or the file stem), reduced to
  ``[A-Za-z0-9._-]`` without leading dots. When sanitising changed it, a short hash of the raw id is appended, so
  ``../x`` and ``x`` never collide and no id can name a parent folder.
* Rows naming the same video (one YouTube id in any url form, one url, or one resolved local path) are merged:
  spans are deduplicated and, for tables, sorted by (start, end); the first row (earlier list on the command line,
  then file name, then line) wins for label and provenance. Two different videos whose ids sanitise alike get a hash
  of their url appended to both, independent of input order.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlparse

from ..errors import SourceListError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".flv", ".mpg", ".mpeg", ".ts")
HDTF_LICENCE = "CC BY 4.0"
HDTF_PREFIXES = ("RD", "WDA", "WRA")
TABLE_EXTENSIONS = (".csv", ".tsv", ".parquet", ".yaml", ".yml")

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Issue:
    file: str
    line: int
    reason: str
    text: str = ""
    kind: str = "malformed_line"  # malformed_line | no_spans | duplicate_row | identity_conflict

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "reason": self.reason, "text": self.text, "kind": self.kind}

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}" + (f" ({self.text!r})" if self.text else "")


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def sanitise_id(raw: str) -> str:
    """A file-name-safe id: only [A-Za-z0-9._-], no leading dot, ≤ 96 chars; a changed id gets a hash of the raw one."""
    clean = _SAFE.sub("_", raw.strip()).lstrip("._-")
    clean = re.sub(r"_+", "_", clean)[:80]
    if clean == raw and clean:
        return clean
    return f"{clean}-{_short_hash(raw)}" if clean else f"src-{_short_hash(raw)}"


def youtube_id(url: str) -> str | None:
    parsed = urlparse(url)
    host = (parsed.hostname or "").lower()
    if host.endswith("youtu.be"):
        return parsed.path.lstrip("/").split("/")[0] or None
    if host.endswith("youtube.com") or host.endswith("youtube-nocookie.com"):
        if parsed.path == "/watch":
            return (parse_qs(parsed.query).get("v") or [None])[0]
        parts = [p for p in parsed.path.split("/") if p]
        if len(parts) >= 2 and parts[0] in ("shorts", "embed", "live", "v"):
            return parts[1]
    return None


def platform_of(url: str | None) -> str:
    if url is None:
        return "local"
    if youtube_id(url):
        return "youtube"
    scheme = urlparse(url).scheme.lower()
    return "http" if scheme in ("http", "https", "ftp") else "local"


def parse_time(value) -> float | None:
    """Seconds from a number, 'ss', 'mm:ss' or 'hh:mm:ss' (fractions allowed); None/'' → None; bad → ValueError."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return None
        if value < 0:
            raise ValueError(f"negative time {value}")
        return float(value)
    text = str(value).strip()
    if not text:
        return None
    parts = text.split(":")
    if len(parts) > 3 or not all(re.fullmatch(r"\d+(\.\d+)?", p) for p in parts):
        raise ValueError(f"bad time {text!r}; expected seconds, mm:ss or hh:mm:ss")
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + float(p)
    return seconds


def _span(index: int, start, end, crop=None, ratio=None) -> dict:
    crop = crop or (None, None, None, None)
    return {"index": index, "start": start, "end": end, "crop_x": crop[0], "crop_w": crop[1], "crop_y": crop[2],
            "crop_h": crop[3], "crop_ratio": ratio}


def _row(raw_id: str, *, dataset: str, url: str | None, local_path: str | None, spans: list[dict],
         label: str | None, licence: str | None, list_file: str, list_line: int, ref_height: int | None = None) -> dict:
    return {
        "source_id": sanitise_id(raw_id),
        "dataset": dataset,
        "platform": platform_of(url),
        "video_id": raw_id,
        "url": url,
        "local_path": local_path,
        "spans": spans,
        "ref_width": None,  # HDTF gives only the height; nothing else gives either
        "ref_height": ref_height,
        "source_label": label,
        "licence": licence,
        "list_file": list_file,
        "list_line": list_line,
    }


# ---------------------------------------------------------------- HDTF


def _hdtf_lines(path: Path) -> list[tuple[int, list[str], str]]:
    # utf-8-sig drops the byte-order mark of WDA_video_url.txt; split() drops trailing spaces.
    text = path.read_text(encoding="utf-8-sig")
    return [(i + 1, line.split(), line) for i, line in enumerate(text.splitlines()) if line.strip()]


def _strip_mp4(name: str) -> str:
    return name[:-4] if name.lower().endswith(".mp4") else name


def read_hdtf(folder: str | Path) -> tuple[list[dict], list[Issue]]:
    """Link HDTF's url / annotation / crop_wh / crop_ratio / resolution files per video and per span.

    A video with a url but no annotation line has no talking-head span and is skipped as an issue; a span without a
    crop line keeps null crop fields.
    """
    folder = Path(folder)
    rows, issues = [], []
    prefixes = [p for p in HDTF_PREFIXES if (folder / f"{p}_video_url.txt").exists()]
    if not prefixes:
        raise SourceListError(f"{folder}: no HDTF *_video_url.txt file (expected one of {list(HDTF_PREFIXES)})")
    for prefix in prefixes:
        def path_of(kind: str) -> Path:
            return folder / f"{prefix}_{kind}.txt"

        def table(kind: str, n_fields: int | None, key: Callable[[str], str]) -> dict[str, tuple[int, list[str]]]:
            out: dict[str, tuple[int, list[str]]] = {}
            if not path_of(kind).exists():
                return out
            for line_no, fields, text in _hdtf_lines(path_of(kind)):
                fname = path_of(kind).name
                if (n_fields is not None and len(fields) != n_fields) or len(fields) < 2:
                    issues.append(Issue(fname, line_no, f"expected {n_fields or '≥ 2'} fields, found {len(fields)}",
                                        text.strip()))
                    continue
                name = key(fields[0])
                if name in out:
                    issues.append(Issue(fname, line_no, f"duplicate entry for {name!r} (first on line {out[name][0]})",
                                        text.strip(), kind="duplicate_row"))
                    continue
                out[name] = (line_no, fields[1:])
            return out

        urls = table("video_url", 2, str)
        times = table("annotion_time", None, _strip_mp4)
        resolutions = table("resolution", 2, _strip_mp4)
        crops = table("crop_wh", 5, _strip_mp4)
        ratios = table("crop_ratio", 2, _strip_mp4)
        url_file = path_of("video_url")
        for name, (line_no, (url,)) in urls.items():
            if name not in times:
                issues.append(Issue(url_file.name, line_no, f"video {name!r} has no line in {prefix}_annotion_time.txt",
                                    kind="no_spans"))
                continue
            t_line, span_texts = times[name]
            spans, bad = [], False
            for index, text in enumerate(span_texts):
                m = re.fullmatch(r"(\d+:\d+(?:\.\d+)?)-(\d+:\d+(?:\.\d+)?)", text)
                start = end = None
                if m:
                    start, end = parse_time(m.group(1)), parse_time(m.group(2))
                if not m or end <= start:
                    issues.append(Issue(f"{prefix}_annotion_time.txt", t_line, f"bad span {text!r}", text))
                    bad = True
                    continue
                key = f"{name}_{index}"
                crop = None
                if key in crops:
                    try:
                        crop = tuple(int(v) for v in crops[key][1])
                    except ValueError:
                        issues.append(Issue(f"{prefix}_crop_wh.txt", crops[key][0], "crop values are not integers"))
                ratio = None
                if key in ratios:
                    try:
                        ratio = float(ratios[key][1][0])
                    except ValueError:
                        issues.append(Issue(f"{prefix}_crop_ratio.txt", ratios[key][0], "ratio is not a number"))
                spans.append(_span(index, start, end, crop, ratio))
            if not spans:
                if not bad:
                    issues.append(Issue(f"{prefix}_annotion_time.txt", t_line, f"video {name!r} has no span",
                                        kind="no_spans"))
                continue
            ref_height = None
            if name in resolutions:
                try:
                    ref_height = int(resolutions[name][1][0]) or None  # KevinMcCarthy1 lists 0: unknown
                except ValueError:
                    issues.append(Issue(f"{prefix}_resolution.txt", resolutions[name][0], "resolution is not an integer"))
            rows.append(_row(name, dataset="hdtf", url=url, local_path=None, spans=spans, label=name,
                             licence=HDTF_LICENCE, list_file=str(url_file.resolve()), list_line=line_no,
                             ref_height=ref_height))
    return rows, issues


# ---------------------------------------------------------------- tables


def _table_records(path: Path) -> list[tuple[int, dict]]:
    """(line, record) pairs: CSV lines, Parquet rows (1-based) or YAML list items (their line in the file).

    Parquet and YAML are known by their extension; anything else is read as comma-separated text.
    """
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".yaml", ".yml"):  # .csv, .tsv, or any text list read with --format table
        text = path.read_text(encoding="utf-8-sig")
        lines = text.splitlines()
        first = next((i for i, l in enumerate(lines) if l.strip() and not l.lstrip().startswith("#")), None)
        if first is None:
            return []
        delimiter = "\t" if suffix == ".tsv" else ","
        header = [h.strip().lower() for h in next(csv.reader([lines[first]], delimiter=delimiter))]
        if "url" not in header and "path" not in header:
            # Headerless list: url[,start,end,identity].
            header, body_start = ["url", "start", "end", "identity"], first
        else:
            body_start = first + 1
        out = []
        for i in range(body_start, len(lines)):
            line = lines[i]
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            values = next(csv.reader([line], delimiter=delimiter))
            if len(values) > len(header):
                out.append((i + 1, {"__error__": f"{len(values)} fields, header has {len(header)}", "__text__": line}))
                continue
            out.append((i + 1, {k: (v.strip() if v.strip() else None) for k, v in zip(header, values)}
                        | {"__text__": line}))
        return out
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - any pyarrow failure means the list is unreadable
            raise SourceListError(f"{path}: not a readable Parquet file: {exc}") from exc
        columns = [str(c).lower() for c in table.column_names]
        if "url" not in columns and "path" not in columns:
            # Every row would be skipped as "no url": the table is the wrong one, say so once.
            raise SourceListError(f"{path.name} has no 'url' or 'path' column (columns: {', '.join(columns)})")
        records = table.to_pylist()
        return [(i + 1, {str(k).lower(): v for k, v in r.items()}) for i, r in enumerate(records)]
    if suffix in (".yaml", ".yml"):
        import yaml

        text = path.read_text(encoding="utf-8-sig")
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            raise SourceListError(f"{path}: not valid YAML: {exc}") from exc
        if node is None:
            return []
        if isinstance(node, yaml.MappingNode):
            items = [v for k, v in node.value if getattr(k, "value", None) == "sources"]
            node = items[0] if items else None
        if not isinstance(node, yaml.SequenceNode):
            raise SourceListError(f"{path}: expected a list of sources (or a mapping with a 'sources' list)")
        out = []
        for item in node.value:
            line = item.start_mark.line + 1
            value = yaml.SafeLoader(yaml.serialize(item)).get_single_data()
            if isinstance(value, str):
                value = {"url": value}
            if not isinstance(value, dict):
                out.append((line, {"__error__": "item is neither a url nor a mapping", "__text__": str(value)}))
                continue
            out.append((line, {str(k).lower(): v for k, v in value.items()}))
        return out


def read_table_list(path: str | Path) -> tuple[list[dict], list[Issue]]:
    """Read a table of ``url[,start,end,identity]`` (optional ``id``, ``licence``). ``url`` may be a local path."""
    path = Path(path)
    rows, issues = [], []
    list_file = str(path.resolve())
    for line, rec in _table_records(path):
        text = str(rec.get("__text__", ""))
        if "__error__" in rec:
            issues.append(Issue(path.name, line, rec["__error__"], text.strip()))
            continue
        url = rec.get("url") or rec.get("path")
        if url is None or not str(url).strip():
            issues.append(Issue(path.name, line, "no url", text.strip()))
            continue
        url = str(url).strip()
        try:
            start, end = parse_time(rec.get("start")), parse_time(rec.get("end"))
        except ValueError as exc:
            issues.append(Issue(path.name, line, str(exc), text.strip()))
            continue
        if start is not None and end is not None and end <= start:
            issues.append(Issue(path.name, line, f"end {end} is not after start {start}", text.strip()))
            continue
        local = None
        if platform_of(url) == "local":
            p = Path(url[7:] if url.startswith("file://") else url).expanduser()
            local = str((path.parent / p).resolve() if not p.is_absolute() else p.resolve())
            url = None
        raw_id = rec.get("id")
        if raw_id is None or not str(raw_id).strip():
            raw_id = (youtube_id(url) if url else None) or (Path(local).stem if local else
                                                            Path(urlparse(url).path).stem or urlparse(url).hostname)
        label = rec.get("identity") or rec.get("label")
        spans = [] if start is None and end is None else [_span(0, start, end)]
        rows.append(_row(str(raw_id).strip(), dataset="table", url=url, local_path=local, spans=spans,
                         label=None if label is None else str(label).strip(),
                         licence=None if rec.get("licence") is None else str(rec.get("licence")),
                         list_file=list_file, list_line=line))
    return rows, issues


# ---------------------------------------------------------------- folders


def read_folder(folder: str | Path) -> tuple[list[dict], list[Issue]]:
    """Every video file under ``folder`` (recursively, sorted); the id is the relative path without its extension."""
    folder = Path(folder)
    rows = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."):
            rel = p.relative_to(folder).with_suffix("").as_posix()
            rows.append(_row(rel, dataset="folder", url=None, local_path=str(p.resolve()), spans=[], label=None,
                             licence=None, list_file=str(folder.resolve()), list_line=0))
    return rows, []


# ---------------------------------------------------------------- dispatch

READERS: dict[str, Callable[[Path], tuple[list[dict], list[Issue]]]] = {
    "hdtf": read_hdtf,
    "table": read_table_list,
    "folder": read_folder,
}


def detect_format(path: str | Path) -> str:
    path = Path(path)
    if path.is_dir():
        if any((path / f"{p}_video_url.txt").exists() for p in HDTF_PREFIXES):
            return "hdtf"
        return "folder"
    if path.suffix.lower() in TABLE_EXTENSIONS:
        return "table"
    if not path.exists():
        raise SourceListError(f"{path}: no such file or folder")
    raise SourceListError(f"{path}: cannot tell the source list format from the path; pass --format "
                          f"({'|'.join(sorted(READERS))})")


def _video_key(row: dict) -> str:
    """What makes two rows the same video: the YouTube id (any url form), else the url, else the resolved path."""
    if row["url"]:
        yid = youtube_id(row["url"])
        return f"youtube:{yid}" if yid else row["url"]
    return f"file://{row['local_path']}"


def _merge(rows: list[dict], issues: list[Issue]) -> list[dict]:
    """Merge rows naming the same video, then make source ids unique (see the module docstring)."""
    # "First" means: earlier list on the command line, then file name, then line.
    rows = sorted(rows, key=lambda r: (r.pop("_order", 0), r["list_file"], r["list_line"], r["video_id"]))
    by_key: dict[str, dict] = {}
    for row in rows:
        key = _video_key(row)
        if key not in by_key:
            by_key[key] = dict(row, spans=list(row["spans"]))
            continue
        first = by_key[key]
        where = f"{Path(row['list_file']).name}:{row['list_line']}"
        seen = {(s["start"], s["end"]) for s in first["spans"]}
        new = [s for s in row["spans"] if (s["start"], s["end"]) not in seen]
        if not row["spans"] and first["spans"] or row["spans"] and not first["spans"]:
            issues.append(Issue(Path(row["list_file"]).name, row["list_line"],
                                "whole-video row and span rows for the same video; keeping the spans",
                                kind="duplicate_row"))
        elif not new:
            issues.append(Issue(Path(row["list_file"]).name, row["list_line"], f"duplicate of {key}", kind="duplicate_row"))
        if first["dataset"] == "hdtf":
            # HDTF span indices name its crop lines: spans from other lists are numbered after them.
            top = max((s["index"] for s in first["spans"]), default=-1)
            new = [dict(s, index=top + 1 + k) for k, s in enumerate(new)]
        first["spans"].extend(new)
        if row["source_label"] and first["source_label"] and row["source_label"] != first["source_label"]:
            issues.append(Issue(Path(row["list_file"]).name, row["list_line"],
                                f"identity {row['source_label']!r} conflicts with {first['source_label']!r}; "
                                f"keeping the first ({where} is ignored)", kind="identity_conflict"))
        first["source_label"] = first["source_label"] or row["source_label"]
    merged = list(by_key.values())
    for row in merged:
        if row["dataset"] != "hdtf":
            # Table spans carry no index of their own: number them in time order so the order of lines is irrelevant.
            spans = sorted(row["spans"], key=lambda s: (s["start"] or 0.0, s["end"] if s["end"] is not None else 1e18))
            row["spans"] = [dict(s, index=i) for i, s in enumerate(spans)]
    counts: dict[str, int] = {}
    for row in merged:
        counts[row["source_id"]] = counts.get(row["source_id"], 0) + 1
    for row in merged:
        if counts[row["source_id"]] > 1:
            row["source_id"] = f"{row['source_id']}-{_short_hash(row['url'] or row['local_path'])}"
    return sorted(merged, key=lambda r: r["source_id"])


def read_sources(paths, fmt: str | None = None) -> tuple[list[dict], list[Issue]]:
    """Read every list (format detected per path unless ``fmt`` is given), merge duplicates, sort by source_id."""
    if fmt is not None and fmt not in READERS:
        raise ValueError(f"unknown source format {fmt!r}; choose from {sorted(READERS)}")
    rows, issues, empty = [], [], []
    for k, path in enumerate(paths):
        path = Path(path)
        if not path.exists():
            raise SourceListError(f"{path}: no such file or folder")
        kind = fmt or detect_format(path)
        try:
            got, bad = READERS[kind](path)
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceListError(f"{path}: cannot read as {kind}: {exc}") from exc
        rows.extend(dict(r, _order=k) for r in got)
        issues.extend(bad)
        if not got and not bad:
            empty.append(_why_empty(path, kind))
    if not rows and not issues:
        # Nothing to write and nothing to report line by line: stop before any output exists.
        raise SourceListError("no sources: " + ("; ".join(empty) or "no source list given"))
    merged = _merge(rows, issues)
    return merged, issues


def _why_empty(path: Path, kind: str) -> str:
    """Why a list gave no row and no skipped line: an empty file, a lone header, a folder without videos."""
    if kind == "folder":
        return f"{path.name} holds no video files ({' '.join(VIDEO_EXTENSIONS)})"
    if kind == "hdtf":
        return f"{path.name} lists no videos in its *_video_url.txt files"
    if path.suffix.lower() in (".parquet", ".yaml", ".yml"):
        return f"{path.name} has no rows"
    text = [l for l in path.read_text(encoding="utf-8-sig").splitlines() if l.strip() and not l.lstrip().startswith("#")]
    return f"{path.name} has a header line but no rows" if text else f"{path.name} is empty"


def issues_as_rejections(issues: list[Issue]) -> list[dict]:
    """Read issues as rows of the rejections table (stage 'read', item id 'file:line')."""
    import json

    return [{"stage": "read", "item_id": f"{i.file}:{i.line}", "source_id": None, "reason": i.kind, "value": None,
             "threshold": None, "detail": json.dumps({"message": i.reason, "text": i.text}, sort_keys=True)}
            for i in issues]
