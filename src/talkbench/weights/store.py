"""The installed files: ``$TALKBENCH_HOME/weights`` (default ``~/.cache/talkbench/weights``) and ``installed.json``.

``installed.json`` records for each entry the file's SHA-256, where it came from, and whether that hash is the
official one. Every install runs the entry's ``check`` too, so an ``--unverified`` file is only accepted if it fits
the architecture. Nothing here knows a particular entry: all it needs is on the ``WeightsEntry``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

from ..errors import MissingWeightsError, WeightsError
from .formats import check_state_dict, extract_pack, load_torchscript_file, torch_load
from .registry import entry_names, get_entry

CHUNK = 1 << 20


# ----------------------------------------------------------------------------- locations and records


def weights_home() -> Path:
    base = os.environ.get("TALKBENCH_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "talkbench")
    return Path(base) / "weights"


def _records_path() -> Path:
    return weights_home() / "installed.json"


def _records() -> dict:
    path = _records_path()
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def _write_records(records: dict) -> None:
    path = _records_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(records, indent=2, sort_keys=True))
    os.replace(tmp, path)


def is_installed(name: str) -> bool:
    return (weights_home() / get_entry(name).filename).is_file()


def weights_path(name: str) -> Path:
    """The installed file of an entry, or MissingWeightsError naming the install command."""
    entry = get_entry(name)
    path = weights_home() / entry.filename
    if not path.is_file():
        raise MissingWeightsError(f"weights {name!r} ({entry.filename}) are not installed in {weights_home()}; "
                                  f"install with: {entry.install_hint}")
    return path


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def installed_sha256(name: str) -> str | None:
    if not is_installed(name):
        return None
    record = _records().get(name)
    if record and record.get("sha256"):
        return record["sha256"]
    return sha256_file(weights_path(name))


def installed_record(name: str) -> dict | None:
    """{sha256, official (True/False/None), source} of an installed entry, or None."""
    if not is_installed(name):
        return None
    record = dict(_records().get(name) or {})
    if "sha256" not in record:
        digest = sha256_file(weights_path(name))
        record = {"sha256": digest, "official": get_entry(name).hash_matches(digest), "source": "unrecorded"}
    return record


def is_standard(name: str) -> bool:
    """False when the installed file's hash is known not to be the official one (an --unverified import)."""
    record = installed_record(name)
    return record is None or record.get("official") is not False


# ----------------------------------------------------------------------------- loading


def build(name: str) -> Any:
    """The ready network of an installed entry, made by its owner's ``build``."""
    return get_entry(name).build(weights_path(name))


def load_state_dict(name: str) -> dict:
    """The installed state dict of an entry (keys and shapes verified), tensors on the CPU."""
    state = torch_load(weights_path(name))
    check_state_dict(name, state)
    return state


def load_torchscript(name: str):
    return load_torchscript_file(weights_path(name))


def pack_dir(name: str) -> Path:
    """The extracted folder of a zip-archive entry (extracted at install time; again here if it was removed)."""
    path = weights_path(name)
    folder = weights_home() / name
    if not folder.is_dir():
        folder.mkdir(parents=True)
        extract_pack(path, folder)
    return folder


# ----------------------------------------------------------------------------- install / fetch / verify


def install_file(name: str, src: str | os.PathLike, *, unverified: bool = False, source: str = "import") -> dict:
    """Check and copy a file into the weights home; returns its record.

    A hash that differs from the official one is refused unless ``unverified``; structure is always checked.
    A file installed ``unverified`` is recorded as not official (so results made with it are non-standard), also
    for entries that publish no hash.
    """
    entry = get_entry(name)
    src = Path(src)
    if not src.is_file():
        raise WeightsError(f"{src}: no such file to install as {name!r}")
    digest = sha256_file(src)
    official = entry.hash_matches(digest)
    if official is False and not unverified:
        raise WeightsError(f"weights {name!r}: sha256 {digest} does not match the official "
                           f"{'prefix' if entry.hash_kind == 'prefix' else 'hash'} {entry.sha256}; refusing "
                           f"(use 'talkbench weights import PATH --as {name} --unverified' for a non-standard file)")
    if unverified and official is not True:
        # The user says this is not the official file (a re-trained SyncNet, say). Entries that publish no hash
        # cannot tell by themselves, so the declaration decides: results made with it are non-standard.
        official = False
    entry.check(src)
    home = weights_home()
    home.mkdir(parents=True, exist_ok=True)
    dest = home / entry.filename
    fd, tmp = tempfile.mkstemp(dir=home, prefix=f".{entry.filename}.", suffix=".tmp")
    os.close(fd)
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    if entry.container == "zip-archive":
        folder = home / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        extract_pack(dest, folder)
    record = {"sha256": digest, "official": official, "source": source, "size": dest.stat().st_size,
              "hash_kind": entry.hash_kind}
    records = _records()
    records[name] = record
    _write_records(records)
    return record


def local_source(spec: str) -> Path | None:
    """The file of a ``package:relative/path`` spec inside an installed package, or None."""
    package, rel = spec.split(":", 1)
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(list(found.submodule_search_locations)[0]) / rel
    return path if path.is_file() else None


def download(url: str, dest: Path, *, timeout: float = 60.0,
             progress: Callable[[int, int | None], None] | None = None) -> Path:
    """HTTP(S) download to dest, resuming from ``dest.part`` with a Range request when a partial file exists."""
    part = dest.with_name(dest.name + ".part")
    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "talkbench"})
    if done:
        request.add_header("Range", f"bytes={done}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and done:  # the partial file is already complete
            os.replace(part, dest)
            return dest
        raise WeightsError(f"download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise WeightsError(f"download {url}: {exc}") from exc
    with response:
        resumed = response.status == 206
        if done and not resumed:
            done = 0  # the server ignored the Range header: start again
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None else None
        with open(part, "ab" if resumed else "wb") as out:
            while block := response.read(CHUNK):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    if total is not None and done != total:
        raise WeightsError(f"download {url}: got {done} of {total} bytes; run fetch again to resume")
    os.replace(part, dest)
    return dest


def fetch(name: str, *, url: str | None = None, progress=None) -> dict:
    """Install an entry: from an offline local source when one exists, else download (resumable) and check."""
    entry = get_entry(name)
    if url is None:
        for spec in entry.local_sources:
            path = local_source(spec)
            if path is not None and entry.hash_matches(sha256_file(path)) is not False:
                return install_file(name, path, source=f"local:{spec}")
    urls = (url,) if url else entry.urls
    home = weights_home()
    home.mkdir(parents=True, exist_ok=True)
    staging = home / f".download-{entry.filename}"
    errors = []
    for candidate in urls:
        try:
            download(candidate, staging, progress=progress)
        except WeightsError as exc:
            errors.append(str(exc))
            continue
        try:
            return install_file(name, staging, source=candidate)
        finally:
            staging.unlink(missing_ok=True)
    raise WeightsError(f"weights {name!r}: every source failed: {'; '.join(errors)}")


def verify(names: list[str] | None = None) -> list[dict]:
    """Re-hash installed files; each result says ok / mismatch against the record and the official hash."""
    results = []
    records = _records()
    for name in names or entry_names():
        entry = get_entry(name)
        if not is_installed(name):
            results.append({"name": name, "status": "missing", "detail": entry.install_hint})
            continue
        digest = sha256_file(weights_path(name))
        recorded = (records.get(name) or {}).get("sha256")
        official = entry.hash_matches(digest)
        if recorded and recorded != digest:
            status, detail = "changed", f"file hash {digest[:16]} != recorded {recorded[:16]}"
        elif official is False:
            status, detail = "unverified", f"sha256 {digest[:16]} is not the official {entry.sha256[:16]}"
        else:
            try:
                entry.check(weights_path(name))
                status = "ok" if official else "ok-unpinned"
                detail = digest[:16]
            except WeightsError as exc:
                status, detail = "bad", str(exc)
        results.append({"name": name, "status": status, "detail": detail, "sha256": digest})
    return results
