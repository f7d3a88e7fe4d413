"""Evaluation protocols: frozen, named descriptions of exactly how every metric is computed.

A result row always carries ``protocol_id``. Two rows are comparable only when their protocol ids are equal and
both are standard (every feature network's file is the official one, checked by SHA-256).
The registry of protocols lives here (manifests stands below every stage); the weights entries' hashes are
checked against ``talkbench.metrics.weights`` by the tests.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class FeatureNet:
    weights: str  # entry name in the weights registry
    sha256: str  # the official file's hash (or published prefix, see the registry)


@dataclass(frozen=True)
class EvalProtocol:
    protocol_id: str
    fps: float = 25.0
    size: int = 256  # frames are decoded to size×size RGB uint8
    crop: str = "none"  # clips are already square face crops (curation), no extra crop
    alignment: str = "none"  # no face alignment; CSIM aligns internally to the ArcFace template
    audio_rate: int = 16000
    metrics: tuple[str, ...] = ()
    feature_nets: tuple[tuple[str, FeatureNet], ...] = ()  # (metric, network) pairs, a tuple to stay hashable
    hkc_detector: str = "mediapipe-hands"
    fid_min_samples: int = 2048
    fvd_frames: int = 16
    psnr_cap: float | None = None  # None: identical frames give inf
    notes: str = ""
    extras: tuple[tuple[str, str], ...] = field(default=())

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def network(self, metric: str) -> FeatureNet | None:
        return dict(self.feature_nets).get(metric)


PROTOCOLS: dict[str, EvalProtocol] = {}


def register_protocol(protocol: EvalProtocol) -> EvalProtocol:
    if protocol.protocol_id in PROTOCOLS and PROTOCOLS[protocol.protocol_id] != protocol:
        raise ValueError(f"protocol {protocol.protocol_id!r} is already registered with other settings")
    PROTOCOLS[protocol.protocol_id] = protocol
    return protocol


def get_protocol(protocol_id: str) -> EvalProtocol:
    if protocol_id not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol_id!r}; choose from {sorted(PROTOCOLS)}")
    return PROTOCOLS[protocol_id]
