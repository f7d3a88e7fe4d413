"""A circuit breaker for the download step, shared by every worker process through one small file.

Offline, every download failed on its own after three retries with backoff (14 s each, 45 minutes for HDTF on two
workers) only to report ``network`` for all of them. A crawl that the site refuses (``rate_limited``, ``bot_check``)
is the same: slowing down one video while the other workers keep asking makes it worse.

So the download step keeps, in ``OUT/stats/acquire/downloads.json``:

- ``streak``: consecutive finished downloads that failed with ``network``. Any other outcome resets it (a 404 or a
  success proves the network works). At ``threshold`` the breaker trips: "network unreachable: …".
- ``answers``: consecutive attempts the site answered with a rate limit or a bot check. Each one pauses *every*
  worker (``pause_until``, backoff doubled per answer, capped); any other answer resets it; at ``threshold`` the
  breaker trips: "rate limited: …" / "bot check: …".
- counts of finished downloads, which the CLI prints as progress when stderr is not a terminal.

Why a file: ranks run in separate processes (a spawn pool, or ray on one box), and the count must be one count. Each
update takes an exclusive ``flock`` on ``downloads.json.lock``, reads, changes and atomically replaces the state, so
readers without the lock always see a whole file. ``run`` is a token made once per build: a state file left by an
earlier build is started afresh. Once tripped, every rank stops before its next download (and a rank whose
download failed after the trip is not marked complete), so the next run retries exactly those sources.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import TalkbenchError
from ..manifests.io import atomic_write_text

GLOBAL_ANSWERS = frozenset({"rate_limited", "bot_check"})  # the site refuses us, not one video
STATE_FILE = "downloads.json"
PAUSE_LOG = 32
FIRST_CHARS = 200  # the first error is quoted in the one-line message; yt-dlp's can run to a paragraph


def _first(source_id: str, message: str | None) -> str:
    text = f"{source_id}: {' '.join(str(message).split())}"
    return text if len(text) <= FIRST_CHARS else text[:FIRST_CHARS - 1] + "…"


class DownloadsStopped(TalkbenchError):
    """The circuit breaker stopped the download step (network down, rate limited or bot-checked)."""


def fresh_state(run: str) -> dict:
    return {"run": run, "done": 0, "ok": 0, "failed": {}, "streak": 0, "streak_first": None, "answers": 0,
            "answer_first": None, "answer_kinds": {}, "pause_until": 0.0, "pauses": 0, "pause_log": [],
            "tripped": None, "updated": time.time()}


@dataclass
class Breaker:
    path: str  # OUT/stats/acquire/downloads.json
    run: str  # one token per build
    threshold: int = 20  # 0 = never trip
    backoff: float = 2.0  # first global pause, doubled per consecutive refusal
    max_pause: float = 16.0

    # ------------------------------------------------------------------ state

    def read(self) -> dict:
        try:
            state = json.loads(Path(self.path).read_text())
        except (OSError, ValueError):
            return fresh_state(self.run)
        return state if state.get("run") == self.run else fresh_state(self.run)

    def _update(self, change) -> dict:
        import fcntl

        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{path}.lock", "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                state = self.read()
                change(state)
                state["updated"] = time.time()
                atomic_write_text(path, json.dumps(state, sort_keys=True))
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
        return state

    # ------------------------------------------------------------------ what the download step calls

    def check(self) -> None:
        """Raise once the breaker has tripped: no new download starts."""
        tripped = self.read()["tripped"]
        if tripped:
            raise DownloadsStopped(tripped)

    def wait(self, sleep=time.sleep) -> None:
        """Before every attempt: wait out the global pause (in short steps, so a trip meanwhile stops us at once)."""
        while True:
            state = self.read()
            if state["tripped"]:
                raise DownloadsStopped(state["tripped"])
            remaining = state["pause_until"] - time.time()
            if remaining <= 0:
                return
            sleep(min(remaining, 1.0))

    def answer(self, source_id: str, error_class: str | None, message: str | None) -> dict:
        """After every attempt (``error_class`` None on success): count refusals and pause every worker."""
        def change(state):
            if error_class in GLOBAL_ANSWERS:
                state["answers"] += 1
                state["answer_first"] = state["answer_first"] or _first(source_id, message)
                kinds = state["answer_kinds"]
                kinds[error_class] = kinds.get(error_class, 0) + 1
                pause = min(self.backoff * 2 ** (state["answers"] - 1), self.max_pause)
                state["pause_until"] = max(state["pause_until"], time.time() + pause)
                state["pauses"] += 1
                # Kept for the CLI, which announces every global pause (the last few are enough between its polls).
                state["pause_log"] = state["pause_log"][-(PAUSE_LOG - 1):] + [
                    {"n": state["pauses"], "class": error_class, "source_id": source_id, "seconds": pause,
                     "answers": state["answers"]}]
                if self.threshold and state["answers"] >= self.threshold and not state["tripped"]:
                    state["tripped"] = self._refused_message(state)
            elif error_class != "network":  # a real answer (a video, a 404…): the site is not refusing us
                state.update(answers=0, answer_first=None, answer_kinds={}, pause_until=0.0)

        return self._update(change)

    def finished(self, source_id: str, status: str, error_class: str | None, message: str | None) -> dict:
        """After every download that reached the network: progress counts and the network streak."""
        def change(state):
            state["done"] += 1
            if status == "ok":
                state["ok"] += 1
            else:
                state["failed"][error_class] = state["failed"].get(error_class, 0) + 1
            if status != "ok" and error_class == "network":
                state["streak"] += 1
                state["streak_first"] = state["streak_first"] or _first(source_id, message)
                if self.threshold and state["streak"] >= self.threshold and not state["tripped"]:
                    state["tripped"] = (f"network unreachable: {state['streak']} consecutive downloads failed "
                                        f"(first: {state['streak_first']}); check connectivity, --proxy or "
                                        f"--cookies-file, then rerun with --retry-failed")
            else:
                state.update(streak=0, streak_first=None)

        return self._update(change)

    def _refused_message(self, state: dict) -> str:
        n, first, kinds = state["answers"], state["answer_first"], state["answer_kinds"]
        waited = f"although every worker backed off (pauses up to {self.max_pause:g} s)"
        if set(kinds) == {"rate_limited"}:
            return (f"rate limited: {n} consecutive answers were rate limits {waited} (first: {first}); wait, then "
                    f"rerun with --retry-failed, or use --cookies-file or --proxy")
        if set(kinds) == {"bot_check"}:
            return (f"bot check: {n} consecutive downloads were refused as a bot {waited} (first: {first}); pass "
                    f"--cookies-file (exported from a signed-in browser) or --proxy, then rerun")
        return (f"rate limited and bot-checked: {n} consecutive refusals ({kinds.get('rate_limited', 0)} rate limits, "
                f"{kinds.get('bot_check', 0)} bot checks) {waited} (first: {first}); wait, then rerun with "
                f"--retry-failed, with --cookies-file or --proxy")


def state_path(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / "stats" / "acquire" / STATE_FILE
