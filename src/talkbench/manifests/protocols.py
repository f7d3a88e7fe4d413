"""Evaluation protocols: frozen, named descriptions of exactly how every metric is computed.

A result row always carries ``protocol_id``. Two rows are comparable only when their protocol ids are equal and
both are standard (every feature network's file is the official one, checked by SHA-256).
The registry of protocols lives here (manifests stands below every stage). A protocol holds its metric names and
weights entries as data, because manifests cannot import the metrics layer above it; the Evaluator refuses a name
that is not in ``talkbench.metrics.spec.METRICS``, and the tests check every registered protocol against that
registry and the weights entries' hashes against the weights registry. Frame reading is part of the protocol
(``resize``, ``colour``; see ``talkbench.manifests.frames.read_video``), and so part of its ``digest``, which every
result row carries.
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
    resize: str = "pil-bicubic"  # kernel for frames of another size (talkbench.manifests.frames.RESIZE_KERNELS)
    colour: str = "rgb24"  # how frames become RGB uint8 (talkbench.manifests.frames.COLOURS)
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


# ----------------------------------------------------------------------------- registered protocols
# The metric set is data here (the default set a protocol pins, part of its digest); tests/manifests/test_protocols.py
# checks it against talkbench.metrics.spec.METRICS. A newly registered metric runs under a protocol by name.
# Hashes: full SHA-256 where published, the torch.hub filename prefix where only that is published, "" where the
# upstream publishes none (the result rows then carry the installed file's SHA-256; see talkbench.weights).

TALKBENCH_METRICS = ("psnr", "ssim", "lpips", "fid", "fid_clean", "fvd", "sync_c", "sync_d", "av_offset", "csim",
                     "hkc", "diversity", "akd", "aed", "akd_driver")

STANDARD_FEATURE_NETS = (
    ("lpips", FeatureNet("lpips-alex", "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0")),
    ("lpips_backbone", FeatureNet("alexnet", "7be5be79")),
    ("fid", FeatureNet("fid-inception", "6726825d")),
    ("fid_clean", FeatureNet("clean-fid-inception", "")),
    ("fvd", FeatureNet("i3d", "")),
    ("sync", FeatureNet("syncnet", "")),
    ("csim", FeatureNet("buffalo_l", "")),
    ("aed", FeatureNet("buffalo_l", "")),
)


def _standard(protocol_id: str, size: int, **kw) -> EvalProtocol:
    return register_protocol(EvalProtocol(
        protocol_id=protocol_id, fps=25.0, size=size, metrics=TALKBENCH_METRICS, feature_nets=STANDARD_FEATURE_NETS,
        notes="DESIGN.md 'Metric protocols': pytorch-fid FID, StyleGAN-V FVD, syncnet_python LSE, ArcFace CSIM", **kw))


_standard("talkbench-v1-256", 256)
_standard("talkbench-v1-512", 512)
_standard("talkbench-v1-256-dwpose", 256, hkc_detector="dwpose")

NONSTANDARD_SEPARATOR = "+nonstd."


def nonstandard_protocol(base_id: str, overrides: dict[str, str]) -> EvalProtocol:
    """The variant of a protocol that uses non-official files ({entry: sha256}); its id names their hashes' digest.

    ``talkbench-v1-256+nonstd.<12 hex>``: rows made with a re-trained SyncNet, say, never share an id with standard
    rows, and two runs with the same replacement files share one id.
    """
    base = get_protocol(base_id)
    if not overrides:
        return base
    digest = hashlib.sha256(json.dumps(sorted(overrides.items())).encode()).hexdigest()[:12]
    nets = tuple((m, FeatureNet(n.weights, overrides.get(n.weights, n.sha256))) for m, n in base.feature_nets)
    extras = base.extras + tuple(sorted((f"nonstandard:{k}", v) for k, v in overrides.items()))
    variant = EvalProtocol(**{**asdict(base), "protocol_id": f"{base_id}{NONSTANDARD_SEPARATOR}{digest}",
                              "feature_nets": nets, "extras": extras,
                              "notes": base.notes + "; NON-STANDARD weights: " + ", ".join(sorted(overrides))})
    return register_protocol(variant)


def is_standard_protocol(protocol_id: str) -> bool:
    return NONSTANDARD_SEPARATOR not in protocol_id
