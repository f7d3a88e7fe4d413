"""Steps and filters: the unit of work an executor runs over a shard of rows.

A step is a picklable object whose ``run(rows, rank, world_size)`` yields rows. It loads heavy models lazily inside
``run`` and never imports ray or multiprocessing: executors own parallelism. A step counts things and records
rejections through its own ``count`` and ``reject`` (the datatrove way); they write into ``step.ctx``, a
:class:`StepContext` that exists from the start (so a step also runs on its own, outside any executor) and that an
executor replaces with a fresh one before each rank and collects afterwards. The runtime knows nothing about what a
row describes: a filter names the column that identifies its rows (``id_key``).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator


@dataclass
class StepContext:
    name: str
    rank: int = 0
    world_size: int = 1
    rows_in: int = 0
    rows_out: int = 0
    seconds: float = 0.0
    dropped: Counter = field(default_factory=Counter)
    counters: Counter = field(default_factory=Counter)
    rejections: list[dict] = field(default_factory=list)

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] += n

    def reject(self, item_id: str, reason: str, *, source_id: str | None = None, value: float | None = None,
               threshold: float | None = None, **detail: Any) -> None:
        """Record a dropped row with its reason; nothing is dropped silently."""
        self.dropped[reason] += 1
        self.rejections.append(
            {
                "stage": self.name,
                "item_id": str(item_id),
                "source_id": source_id,
                "reason": reason,
                "value": None if value is None else float(value),
                "threshold": None if threshold is None else float(threshold),
                "detail": json.dumps(detail, sort_keys=True, default=str) if detail else None,
            }
        )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "dropped": dict(sorted(self.dropped.items())),
            "counters": dict(sorted(self.counters.items())),
            "seconds": round(self.seconds, 6),
        }


class Step:
    """Base class: override ``run``. ``resources`` declares what one rank needs (e.g. ``{"num_gpus": 1}``)."""

    resources: dict = {}

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def ctx(self) -> StepContext:
        """This rank's context; a default one until an executor starts a rank (``start_rank``)."""
        ctx = self.__dict__.get("_ctx")
        if ctx is None:
            ctx = self.__dict__["_ctx"] = StepContext(self.name)
        return ctx

    @ctx.setter
    def ctx(self, value: StepContext) -> None:
        self.__dict__["_ctx"] = value

    def start_rank(self, rank: int, world_size: int) -> StepContext:
        """Called by the executor before a rank: a fresh context, which the executor collects after the rank."""
        self.ctx = StepContext(self.name, rank, world_size)
        return self.ctx

    def count(self, key: str, n: int = 1) -> None:
        self.ctx.count(key, n)

    def reject(self, item_id: str, reason: str, **kwargs: Any) -> None:
        self.ctx.reject(item_id, reason, **kwargs)

    def run(self, rows: Iterable[dict], rank: int = 0, world_size: int = 1) -> Iterator[dict]:
        yield from rows

    def __getstate__(self):
        # Loaded models and the per-rank context never travel to workers; run() rebuilds what it needs.
        state = dict(self.__dict__)
        state.pop("_ctx", None)
        for key in [k for k in state if k.startswith("_lazy")]:
            state.pop(key)
        return state


class Filter(Step):
    """A step that keeps or drops rows. Override ``filter(row)``; ``id_key`` names the column that identifies a row.

    ``filter`` returns ``True`` to keep the row, or ``(False, reason)``, ``(False, reason, value)`` or
    ``(False, reason, value, threshold)`` to drop it. The base class counts kept and dropped rows per reason and
    records every drop for ``rejections.parquet``.
    """

    id_key = "item_id"

    def filter(self, row: dict) -> bool | tuple:
        raise NotImplementedError

    def run(self, rows, rank=0, world_size=1):
        for row in rows:
            verdict = self.filter(row)
            if verdict is True:
                self.count("kept")
                yield row
                continue
            if verdict is False or not isinstance(verdict, tuple) or verdict[0] is not False:
                raise TypeError(f"{self.name}.filter must return True or (False, reason, ...), got {verdict!r}")
            reason = verdict[1]
            value = verdict[2] if len(verdict) > 2 else None
            threshold = verdict[3] if len(verdict) > 3 else None
            self.reject(row[self.id_key], reason, source_id=row.get("source_id"), value=value, threshold=threshold)
