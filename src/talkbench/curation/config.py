"""Curation configuration: one frozen dataclass per stage, composed into ``CurationConfig``.

Defaults follow the AniTalker data rules (face ≥ 256 px, rotation < 60°, 2–3 clips per identity, 256×256 output).
``config_hash`` covers every field that changes the output, and goes into clip ids and manifests.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace

from .upper_body import UpperBodyConfig

PIPELINE_VERSION = "1"


@dataclass(frozen=True)
class AcquireConfig:
    min_height: int = 720  # yt-dlp height floor (bv*[height>=N]+ba)
    timeout: float = 120.0  # seconds, on every network call
    retries: int = 3  # for temporary error classes only
    backoff: float = 2.0  # seconds, doubled per retry
    cookies_file: str | None = None
    proxy: str | None = None
    # Circuit breaker: after this many consecutive network failures, or rate-limit / bot-check answers, across all
    # workers, no new download starts and the stage stops with one line (curation/breaker.py). 0 never stops.
    max_consecutive_failures: int = 20
    fps: float = 25.0
    audio_rate: int = 16000

    def __post_init__(self):
        n = self.max_consecutive_failures
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"acquire.max_consecutive_failures must be a whole number ≥ 0 (0 never stops), got {n!r}")


@dataclass(frozen=True)
class SceneConfig:
    detector: str = "content"  # content | adaptive (PySceneDetect)
    content_threshold: float = 27.0
    adaptive_threshold: float = 3.0
    min_scene_frames: int = 15
    trim_frames: int = 3  # dropped at each side of every cut so no neighbouring-shot frame leaks in


@dataclass(frozen=True)
class FaceConfig:
    backend: str = "mediapipe"  # mediapipe | insightface
    sample_fps: float = 5.0
    min_confidence: float = 0.5
    iou_threshold: float = 0.3  # IoU to continue a track between consecutive samples
    max_gap_samples: int = 2  # samples a track may miss before it ends
    crop_margin: float = 0.4  # the union box is enlarged by this fraction of its side, then made square


@dataclass(frozen=True)
class FilterConfig:
    min_face_size: float = 256.0  # median track box side in source pixels
    max_yaw: float = 60.0
    max_pitch: float = 60.0
    max_roll: float = 60.0
    min_duration: float = 2.0  # seconds
    second_face_ratio: float = 0.5  # a second face larger than this × the main face rejects the clip
    crop_policy: str = "pad"  # pad | inside: pad records padding per clip, inside rejects crops leaving the frame
    require_audio: bool = True
    min_sharpness: float | None = None  # variance of the Laplacian on the crop; None disables


@dataclass(frozen=True)
class IdentityConfig:
    backend: str = "auto"  # auto (arcface if installed, else dlib) | arcface | dlib
    threshold: float | None = None  # cosine distance threshold; None = the backend's documented default


@dataclass(frozen=True)
class SelectConfig:
    max_clips: int = 3
    min_clips: int = 2
    seed: int = 0


@dataclass(frozen=True)
class ExportConfig:
    size: int = 256  # 256 or 512
    crf: int = 18
    png_frames: bool = False
    wav: bool = False


@dataclass(frozen=True)
class SplitConfig:
    test_fraction: float = 0.2
    seed: int = 0


@dataclass(frozen=True)
class CurationConfig:
    acquire: AcquireConfig = field(default_factory=AcquireConfig)
    scenes: SceneConfig = field(default_factory=SceneConfig)
    faces: FaceConfig = field(default_factory=FaceConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    upper_body: UpperBodyConfig = field(default_factory=UpperBodyConfig)  # the upper-body profile (curation/upper_body.py)

    def to_dict(self) -> dict:
        return asdict(self)

    def hash(self, *sections: str) -> str:
        """Hash of the named sections (all when none): ids depend only on what shaped them."""
        data = self.to_dict()
        if sections:
            data = {k: data[k] for k in sections}
        if not data.get("upper_body", {}).get("enabled", True):
            data.pop("upper_body")  # off: ids and hashes stay those of the pipeline before the profile existed
        # Network options (timeouts, cookies, proxy) do not change what is produced.
        if "acquire" in data:
            data["acquire"] = {k: v for k, v in data["acquire"].items()
                               if k not in ("timeout", "retries", "backoff", "cookies_file", "proxy",
                                            "max_consecutive_failures")}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict) -> "CurationConfig":
        parts = {}
        for f in fields(cls):
            sub = f.default_factory()  # type: ignore[misc]
            values = data.get(f.name, {}) or {}
            unknown = set(values) - {g.name for g in fields(sub)}
            if unknown:
                raise ValueError(f"unknown {f.name} option(s) {sorted(unknown)}; choose from {sorted(g.name for g in fields(sub))}")
            parts[f.name] = replace(sub, **values)
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown config section(s) {sorted(unknown)}; choose from {sorted(f.name for f in fields(cls))}")
        return cls(**parts)

    def with_overrides(self, overrides: dict[str, object]) -> "CurationConfig":
        """Apply ``{"filters.min_face_size": 200, ...}`` overrides (the CLI's ``--set KEY=VALUE``)."""
        data = self.to_dict()
        for key, value in overrides.items():
            section, _, name = key.partition(".")
            if section not in data or name not in data[section]:
                raise ValueError(f"unknown config key {key!r}")
            data[section][name] = value
        return CurationConfig.from_dict(data)
