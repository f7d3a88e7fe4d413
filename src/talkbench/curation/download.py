"""Fetch one source video: yt-dlp (Python API) for urls, a copy (a reflink where the file system allows) for local
files. Local files are never hard-linked: a link would give the source (``file:///etc/passwd`` too) a second name
inside OUT, and anything that later changed or removed the copy in place would change the source.

Every call has a socket timeout. Failures are classified from yt-dlp's messages; only the temporary classes
(``rate_limited``, ``network``) are retried, with exponential backoff. The first error message is the one recorded:
a retry that fails differently never replaces it (the last one is kept beside it, for the record).

Height floor: the format is ``bv*[height>=?N]+ba/b[height>=?N]``. The ``?`` lets a format whose height is unknown
through: a direct ``.mp4`` url (yt-dlp's generic extractor) advertises no height, and refusing it would make every
plain http source fail with "format". Its real height is probed after download and recorded in the manifest.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TalkbenchError
from .breaker import GLOBAL_ANSWERS

TEMPORARY = frozenset({"rate_limited", "network"})
ERROR_CLASSES = ("unavailable", "private", "bot_check", "rate_limited", "geo", "format", "network", "other")

# Checked in order: the first class whose pattern matches wins (a 429 page that says "unavailable" is rate limiting).
_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("rate_limited", re.compile(r"HTTP Error 429|Too Many Requests|rate[- ]?limit", re.I)),
    ("bot_check", re.compile(r"not a bot|captcha|HTTP Error 403|Sign in to confirm you", re.I)),
    ("geo", re.compile(r"in your country|geo[- ]?restrict|geo[- ]?block|not available from your location", re.I)),
    ("private", re.compile(r"private video|video is private|members[- ]only|join this channel|age[- ]restricted|"
                           r"confirm your age|requires (payment|purchase)", re.I)),
    ("format", re.compile(r"requested format is not available|no video formats found|format .*not available|"
                          r"requested formats are incompatible", re.I)),
    ("unavailable", re.compile(r"video unavailable|is unavailable|no longer available|has been removed|"
                               r"HTTP Error 40[04]|HTTP Error 410|does not exist|not found|account .*terminated|"
                               r"unsupported url|no such file", re.I)),
    ("network", re.compile(r"timed? ?out|connection (reset|refused|aborted)|remote end closed|"
                           r"name resolution|name or service not known|network is unreachable|no route to host|"
                           r"incompleteread|did not get any data|content too short|bytes read|EOF occurred|"
                           r"HTTP Error 5\d\d|urlopen error|transport|ssl|broken pipe|connection error", re.I)),
]

# Errors about our own output folder are not a property of the video: they stop the run.
_FATAL_ERRNO = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.ENOTDIR, errno.EPERM}
_FATAL_TEXT = re.compile(r"No space left on device|Read-only file system|Disk quota exceeded|"
                         r"unable to (open|create|write)[^:]*for writing|\[Errno (28|30|13|20)\]", re.I)


class OutputWriteError(TalkbenchError):
    """The output folder cannot be written (disk full, permissions, read-only): the whole run stops."""


def classify_error(message: str) -> str:
    for name, pattern in _PATTERNS:
        if pattern.search(message):
            return name
    return "other"


@dataclass
class DownloadOptions:
    min_height: int = 720
    timeout: float = 120.0
    retries: int = 3
    backoff: float = 2.0
    cookies_file: str | None = None
    proxy: str | None = None
    max_consecutive_failures: int = 20  # the circuit breaker's threshold (breaker.py); 0 never trips

    @classmethod
    def from_config(cls, acquire) -> "DownloadOptions":
        return cls(min_height=acquire.min_height, timeout=acquire.timeout, retries=acquire.retries,
                   backoff=acquire.backoff, cookies_file=acquire.cookies_file, proxy=acquire.proxy,
                   max_consecutive_failures=acquire.max_consecutive_failures)


@dataclass
class DownloadResult:
    status: str  # ok | failed
    path: Path | None = None
    error_class: str | None = None
    error_message: str | None = None  # the FIRST error
    last_error: str | None = None  # the last one, when it differs
    attempts: int = 0
    errors: list[str] = field(default_factory=list)


def format_selector(min_height: int) -> str:
    if min_height <= 0:
        return "bv*+ba/b"
    return f"bv*[height>=?{min_height}]+ba/b[height>=?{min_height}]"


def _existing_download(dest_dir: Path, stem: str) -> Path | None:
    """A finished download named ``stem.<ext>`` (not a .part file, not an unmerged ``stem.f137.mp4``)."""
    for p in sorted(dest_dir.glob(f"{glob_escape(stem)}.*")):
        rest = p.name[len(stem) + 1:]
        if "." in rest or rest in ("part", "ytdl", "tmp", "temp"):
            continue
        return p
    return None


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


class _Logger:
    """Collects yt-dlp's messages instead of printing them; errors are kept in order."""

    def __init__(self):
        self.errors: list[str] = []

    def debug(self, msg):
        pass

    def info(self, msg):
        pass

    def warning(self, msg):
        pass

    def error(self, msg):
        self.errors.append(str(msg))


def _clean(message: str) -> str:
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(message)).strip()
    return message[len("ERROR: "):] if message.startswith("ERROR: ") else message


def _raise_if_fatal(message: str, exc: BaseException | None = None) -> None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FATAL_ERRNO and exc.filename:
            raise OutputWriteError(f"cannot write {exc.filename}: {exc.strerror}") from exc
        info = getattr(exc, "exc_info", None)
        exc = (info[1] if info and len(info) > 1 else None) or exc.__cause__ or exc.__context__
    if _FATAL_TEXT.search(message):
        raise OutputWriteError(f"cannot write the download folder: {message}")


def ytdlp_options(opts: DownloadOptions, dest_dir: Path, stem: str, archive: Path | None, logger) -> dict:
    options = {
        "format": format_selector(opts.min_height),
        "outtmpl": {"default": str(dest_dir / f"{stem}.%(ext)s")},
        "merge_output_format": "mkv",  # holds any codec pair; normalise re-encodes anyway
        "socket_timeout": opts.timeout,
        # Retries are ours (classified, with backoff); yt-dlp's own would hide the first error.
        "retries": 0,
        "fragment_retries": 0,
        "extractor_retries": 0,
        "file_access_retries": 0,
        "noplaylist": True,
        "continuedl": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "color": {"stdout": "no_color", "stderr": "no_color"},
        "logger": logger,
        "cachedir": False,
    }
    if archive is not None:
        options["download_archive"] = str(archive)
    if opts.cookies_file:
        options["cookiefile"] = opts.cookies_file
    if opts.proxy:
        options["proxy"] = opts.proxy
    return options


def _ytdlp_once(url: str, opts: DownloadOptions, dest_dir: Path, stem: str, archive: Path | None) -> Path:
    """One yt-dlp call. Returns the downloaded file or raises RuntimeError with yt-dlp's first error message."""
    import yt_dlp

    logger = _Logger()
    with yt_dlp.YoutubeDL(ytdlp_options(opts, dest_dir, stem, archive, logger)) as ydl:
        try:
            info = ydl.extract_info(url, download=True)
        except yt_dlp.utils.DownloadError as exc:
            message = _clean(logger.errors[0] if logger.errors else str(exc))
            _raise_if_fatal(message, exc)
            raise RuntimeError(message) from exc
        except OSError as exc:
            _raise_if_fatal(str(exc), exc)
            raise RuntimeError(str(exc)) from exc
    if logger.errors:
        raise RuntimeError(_clean(logger.errors[0]))
    paths = [d.get("filepath") for d in (info or {}).get("requested_downloads", []) if d.get("filepath")]
    for p in paths:
        if Path(p).exists():
            return Path(p)
    found = _existing_download(dest_dir, stem)
    if found is None:
        raise FileNotFoundError("yt-dlp finished without a file (download archive lists it, but the file is gone)")
    return found


def _sleep(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


def download_url(url: str, dest_dir: Path, stem: str, opts: DownloadOptions, archive: Path | None = None,
                 sleep=_sleep, breaker=None) -> DownloadResult:
    """Download ``url`` to ``dest_dir/stem.<ext>``; an existing complete file is reused (skip on rerun).

    With a ``breaker`` (see breaker.py), every attempt first waits out the global pause and then reports its answer;
    a rate limit or bot check is backed off globally there instead of by this video alone.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    existing = _existing_download(dest_dir, stem)
    if existing is not None:
        return DownloadResult("ok", existing, attempts=0)
    result = DownloadResult("failed")
    use_archive = archive
    while True:
        if breaker is not None:
            breaker.wait(sleep)
        result.attempts += 1
        try:
            result.path = _ytdlp_once(url, opts, dest_dir, stem, use_archive)
            result.status = "ok"
            if breaker is not None:
                breaker.answer(stem, None, None)
            return result
        except FileNotFoundError:
            if use_archive is None:
                raise
            use_archive = None  # the archive remembers a file that was deleted: fetch it again, once
            result.attempts -= 1
            continue
        except RuntimeError as exc:
            message = str(exc)
        cls = classify_error(message)
        if breaker is not None:
            breaker.answer(stem, cls, message)
        result.errors.append(message)
        if result.error_message is None:
            result.error_class, result.error_message = cls, message
        elif message != result.error_message:
            result.last_error = message
        if cls not in TEMPORARY or result.attempts > opts.retries:
            return result
        if breaker is None or cls not in GLOBAL_ANSWERS:
            sleep(opts.backoff * 2 ** (result.attempts - 1))
        # else the pause breaker.answer set for every worker is waited out at the top of the loop


_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
# A file system that cannot share extents answers one of these; then the bytes are copied.
_NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.ENOSYS, errno.EPERM}


def _reflink(src_fd: int, dst_fd: int) -> bool:
    """Share ``src``'s extents with ``dst`` (btrfs, XFS, bcachefs…): a copy that costs no space until either changes."""
    try:
        import fcntl

        fcntl.ioctl(dst_fd, _FICLONE, src_fd)
        return True
    except (ImportError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno not in _NO_REFLINK:
            raise
        return False


def copy_local(src: Path, dest: Path) -> Path:
    """Copy ``src`` to ``dest`` atomically (reflink where the file system allows); an identical existing file is kept.

    Never a hard link or a symlink: ``dest`` is always a file of its own inside the output folder.
    """
    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"no such file: {src}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and not dest.is_symlink() and dest.stat().st_size == src.stat().st_size \
            and not os.path.samefile(dest, src):
        return dest
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        with open(src, "rb") as fin, open(tmp, "xb") as fout:
            if not _reflink(fin.fileno(), fout.fileno()):
                shutil.copyfileobj(fin, fout, 1 << 20)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def fetch_source(row: dict, out_dir: Path, opts: DownloadOptions, sleep=_sleep, breaker=None) -> DownloadResult:
    """Fetch one source row into ``out_dir/media/downloads``; the result's path is absolute."""
    dest_dir = out_dir / "media" / "downloads"
    stem = row["source_id"]
    if row.get("local_path"):
        src = Path(row["local_path"])
        try:
            path = copy_local(src, dest_dir / f"{stem}{src.suffix.lower()}")
        except FileNotFoundError as exc:
            return DownloadResult("failed", error_class="unavailable", error_message=str(exc), attempts=1)
        except OSError as exc:
            if exc.filename and str(exc.filename) == str(src):
                return DownloadResult("failed", error_class="other", error_message=f"{src}: {exc.strerror}", attempts=1)
            raise OutputWriteError(f"cannot write {exc.filename or dest_dir}: {exc.strerror or exc}") from exc
        return DownloadResult("ok", path, attempts=1)
    try:
        return download_url(row["url"], dest_dir, stem, opts, out_dir / "media" / "download_archive.txt", sleep,
                            breaker)
    except OSError as exc:
        if exc.errno in _FATAL_ERRNO:
            raise OutputWriteError(f"cannot write {exc.filename or dest_dir}: {exc.strerror or exc}") from exc
        raise
