"""The papers' published figures (package data ``talkbench/data/reported_v1.yaml``), validated on load."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

from ..errors import ConfigError

REPORTED_FILE = "reported_v1.yaml"
UNVERIFIED = "unverified secondary source"


@dataclass(frozen=True)
class Source:
    key: str
    cite: str
    url: str
    setting: str
    status: str

    @property
    def paper(self) -> str:
        """The paper's short name: the citation up to its title's colon or its arXiv number."""
        head = self.cite.split(", arXiv", 1)[0]
        return head.split(":", 1)[0].strip()

    @property
    def verified(self) -> bool:
        return self.status != UNVERIFIED


@dataclass(frozen=True)
class ReportedRow:
    method: str
    task: str
    figures: dict  # metric -> (value, source key)

    @property
    def source_keys(self) -> list[str]:
        return sorted({src for _, src in self.figures.values()})


@lru_cache(maxsize=4)
def load_reported(name: str = REPORTED_FILE) -> tuple[dict[str, Source], tuple[ReportedRow, ...], int]:
    text = resources.files("talkbench").joinpath("data", name).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    sources = {k: Source(k, v["cite"], v.get("url", ""), v.get("setting", ""), v["status"])
               for k, v in data["sources"].items()}
    rows = []
    for i, entry in enumerate(data["entries"]):
        figures = {}
        for metric, fig in entry["figures"].items():
            if fig["source"] not in sources:
                raise ConfigError(f"{name}: entry {i} ({entry['method']}) cites unknown source {fig['source']!r}")
            figures[metric] = (float(fig["value"]), fig["source"])
        rows.append(ReportedRow(entry["method"], entry["task"], figures))
    return sources, tuple(rows), int(data["version"])


def reported_for(task: str) -> list[ReportedRow]:
    return [r for r in load_reported()[1] if r.task == task]
