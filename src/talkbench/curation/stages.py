"""The curation stages, in order: the one list that ``build-manifest`` runs and the report reads.

    sources ─(executor)→ acquire ─→ videos.parquet
            ─(executor)→ scenes → faces → filters → identity
            ─(in process, global)→ cluster → select
            ─(executor)→ export ─(in process)→ split ─→ clips.parquet, rejections.parquet, report.html

A :class:`Stage` either runs steps on the executor (``steps``, with ``resume`` naming the configuration its completed
ranks depend on, under ``DIR/stats/<name>/``) or runs in process (``apply``: clustering, selection and the split,
the global stages). An executor stage's output stays in its rank part files, each sorted by the stage's ``key``;
the next stage gets the lazy k-way merge of them (``runtime.MergedRows``), so rows arrive sorted by id between
stages and ranks, resume markers and manifests do not depend on the executor. ``cluster`` reads the candidate ids
and the embedding matrix as columns of the identity parts (never the row dicts) and hands on slim rows (the columns
selection reads) grouped by identity; ``select`` reads them one identity at a time (``select.select_stream``) and
then the whole rows of the clips it keeps from the parts; ``split`` labels one chunk at a time once the identity ids
are known (``split.split_stream``); manifests over ``MANIFEST_CHUNK_ROWS`` rows are written by an external sort
(``manifests.stream.write_table_sorted``). What is still a list in the driver: docs/scale.md, "Not done".
``funnel`` gives the report's labels for a stage's rows in and out.

Adding a stage is one function (or Step) plus one ``Stage(...)`` entry here.

Resources: an executor stage declares what one of its ranks needs (``resources``: ``num_cpus``, ``num_gpus``,
``memory`` in bytes). The Ray executor asks the cluster for it per task; the local executor ignores it. No curation
stage uses a GPU today (dlib, the ArcFace ONNX session, MediaPipe and ffmpeg all run on CPU here), so none asks for
one; a stage that gains a GPU path adds ``num_gpus``. Every stage runs one thread per rank (ffmpeg ``-threads 1``,
single-threaded detectors), hence one CPU. The memory figures are per-rank budgets with headroom over the models a
rank loads (estimates, not measured per stage; see docs/scale.md) — Ray uses them to avoid packing more ranks on a
node than its memory holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Callable

from ..errors import ManifestWriteError
from ..manifests.io import atomic_write_text, write_table
from ..runtime import Executor, Step
from .clip_pipeline import clip_id_for, clip_row, segment_rows
from .config import PIPELINE_VERSION, CurationConfig
from .download import OutputWriteError
from .select import SELECT_COLUMNS


@dataclass
class Run:
    """What one build shares with its stages: the folder, the configuration, the executor and every rejection."""

    out_dir: Path
    config: CurationConfig
    executor: Executor
    rejections: list[dict] = field(default_factory=list)
    # stage name → its output rows, for the stages named in ``keep`` only: holding every stage's rows would keep
    # each intermediate list of candidates alive to the end of the run (several copies of n rows).
    outputs: dict[str, list[dict]] = field(default_factory=dict)
    keep: tuple[str, ...] = ("acquire",)
    # Set by ``cluster`` when it hands on slim rows (the select columns): the identity stage's rows, from which
    # ``select`` reads the whole rows of the clips it keeps.
    full_rows: object = None

    @cached_property
    def cfg(self) -> dict:
        return self.config.to_dict()

    @cached_property
    def config_hash(self) -> str:
        return self.config.hash()

    @cached_property
    def identity_backend(self) -> str:
        from .identity import resolve_backend

        return resolve_backend(self.config.identity.backend)

    @property
    def stats(self) -> Path:
        return self.out_dir / "stats"


InProcess = Callable[[Run, list[dict]], tuple[list[dict], list[dict], dict]]  # rows → (rows, rejections, counters)


@dataclass(frozen=True)
class Stage:
    name: str
    steps: Callable[[Run], list[Step]] | None = None  # an executor stage's steps
    resume: Callable[[Run], dict] | None = None  # the configuration an executor stage's completed ranks depend on
    apply: InProcess | None = None  # an in-process stage
    prepare: Callable[[Run, list[dict]], list[dict]] | None = None  # the previous stage's rows → this stage's input
    finish: Callable[[Run, list[dict]], list[dict]] | None = None  # output rows → the rows the next stage gets
    funnel: tuple[str | None, str | None] = (None, None)  # report labels of the rows in and out (None: not shown)
    note: Callable[[dict], str] | None = None  # a report sentence from the stage's summary.json
    resources: dict = field(default_factory=dict)  # what one rank of an executor stage needs (Ray task options)
    # An executor stage's output order: each rank's part is sorted by ``key`` and the merge is a k-way merge by it
    # (the rows a stable sort of the ranks' concatenation gives); ``columns`` are stored as Parquet columns too.
    key: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()


# ----------------------------------------------------------------------------------------------------------------
# The stages' work (steps are imported when the stage runs, so reading this list stays cheap)
# ----------------------------------------------------------------------------------------------------------------

def _acquire_steps(run: Run) -> list[Step]:
    from .acquire import acquire_steps

    return acquire_steps(run.out_dir, run.config)


# Manifests with more rows are written as row groups of this many rows (manifests.stream), so the Arrow copy and
# the Parquet bytes in memory are one chunk's, not the whole table's; smaller ones keep write_table's exact bytes.
MANIFEST_CHUNK_ROWS = 100_000


def write_manifest(rows, path: Path, name: str) -> bool:
    """``write_table`` (atomic, untouched when unchanged); a failed write stops the run as an OutputWriteError.

    Above ``MANIFEST_CHUNK_ROWS`` rows they go to ``manifests.stream.write_table_sorted`` instead (sorted runs
    spilled to disk and merged): one Parquet file, one row group per chunk, also atomic and byte-identical on rerun,
    with about two chunks in memory besides the caller's rows.
    """
    try:
        if not isinstance(rows, list) and not hasattr(rows, "num_rows"):  # an Arrow table goes to write_table as is
            rows = list(rows)
        if hasattr(rows, "num_rows") or len(rows) <= MANIFEST_CHUNK_ROWS:
            return write_table(rows, path, name)
        from ..manifests.stream import write_table_sorted

        return write_table_sorted(rows, path, name, chunk_rows=MANIFEST_CHUNK_ROWS)
    except ManifestWriteError as exc:
        raise OutputWriteError(str(exc)) from exc


def _write_videos(run: Run, videos: list[dict]) -> list[dict]:
    write_manifest(videos, run.out_dir / "videos.parquet", "videos")
    return videos


def _scene_steps(run: Run) -> list[Step]:
    from .scenes import SceneStep

    return [SceneStep(run.config)]


def _face_steps(run: Run) -> list[Step]:
    from .faces import FaceStep

    return [FaceStep(run.config)]


def _filter_steps(run: Run) -> list[Step]:
    from .filters import make_filters
    from .upper_body import upper_body_steps

    return make_filters(run.config) + upper_body_steps(run.config)  # the profile's steps: [] unless it is on


def _filter_resume(run: Run) -> dict:
    on = run.config.upper_body.enabled
    return {"filters": run.cfg["filters"], **({"upper_body": run.cfg["upper_body"]} if on else {})}


def _embed_steps(run: Run) -> list[Step]:
    from .identity import EmbedStep

    return [EmbedStep(run.identity_backend)]


def embedding_columns(rows) -> tuple[list[str], "np.ndarray"]:
    """(candidate ids sorted, their embeddings as one float64 matrix in that order) from the identity stage's parts,
    reading only the ``candidate_id`` and ``embedding`` columns (``MergedRows.read_columns``), never the row dicts.

    float64, not float32: the embedders give float64 unit vectors, and clustering float32 copies would change the
    identity scores in their last digits (the manifests would no longer be byte-identical).
    """
    import numpy as np
    import pyarrow.compute as pc

    from ..errors import MediaError

    ids: list[str] = []
    parts: list[np.ndarray] = []
    dims: set[int] = set()
    for table in rows.read_columns(["candidate_id", "embedding"]):
        if table.num_rows == 0:
            continue
        emb = table.column("embedding").combine_chunks()
        if emb.null_count:
            raise MediaError(f"{emb.null_count} candidate(s) reached clustering without an embedding")
        lengths = pc.list_value_length(emb).to_numpy()
        dims.update(int(d) for d in np.unique(lengths))
        if len(dims) != 1:
            raise MediaError(f"embeddings of different lengths {sorted(dims)}; one identity backend per run")
        values = emb.flatten().to_numpy(zero_copy_only=False)
        parts.append(np.asarray(values, dtype=np.float64).reshape(len(emb), -1))
        ids += table.column("candidate_id").to_pylist()
    if not ids:
        return [], np.zeros((0, 0))
    # The parts are in rank order; the rows go in candidate order (the k-way merge's), filled part by part.
    order = sorted(range(len(ids)), key=ids.__getitem__)
    where = np.empty(len(ids), dtype=np.int64)
    where[order] = np.arange(len(ids))
    matrix = np.empty((len(ids), dims.pop()), dtype=np.float64)
    start = 0
    for part in parts:
        matrix[where[start:start + len(part)]] = part
        start += len(part)
    return [ids[i] for i in order], matrix


def slim_rows(rows) -> list[dict]:
    """The identity stage's rows as ``candidate_id`` + ``select.SELECT_COLUMNS`` only, in candidate order, read as
    columns (a part that keeps one of them in its JSON is decoded for it)."""
    slim = [row for table in rows.read_columns(["candidate_id", *SELECT_COLUMNS]) for row in table.to_pylist()]
    slim.sort(key=lambda r: r["candidate_id"])
    return slim


def _cluster(run: Run, rows):
    """``identity.assign_identities`` on columns: the same ids and scores (tests/curation/test_clustering.py), with
    O(n) bookkeeping instead of one pass over the rows per identity (6k identities × 1M rows at VoxCeleb2 size).

    From the identity stage's parts (``MergedRows``) the embedding matrix is built from two columns
    (``embedding_columns``), and the rows handed on are slim: ``candidate_id``, the columns selection reads
    (``select.SELECT_COLUMNS``, also Parquet columns of the parts) and the identity — no row's JSON is decoded.
    ``select`` then reads the whole rows of the clips it keeps from the parts (``run.full_rows``), without their
    embeddings: nothing after clustering uses them (n × 128 Python floats at 1M would be ~3 GB). A plain list of
    rows (tests, benchmarks) takes the row-dict path and hands on whole rows (without embeddings).
    """
    import numpy as np

    from .clustering import invalid_rejection, reject_invalid, split_invalid
    from .identity import threshold_for
    from .scale import assign_identities_columns

    threshold = threshold_for(run.identity_backend, run.config.identity.threshold)
    rejections: list[dict] = []  # NaN/zero embeddings (a corrupt crop) are recorded, never clustered
    if hasattr(rows, "read_columns"):
        cand, matrix = embedding_columns(rows)
        good_index, bad = split_invalid(matrix) if cand else (np.zeros(0, dtype=np.int64), {})
        good_ids, bad_ids = cand, set()
        if bad:
            bad_ids = {cand[i] for i in bad}
            by_id = {row["candidate_id"]: row for row in rows.pick("candidate_id", bad_ids)}  # only the bad rows
            rejections += [invalid_rejection(by_id[cand[i]], bad[i]) for i in sorted(bad)]
            matrix, good_ids = matrix[good_index], [cand[i] for i in good_index]
        # Slim rows (the columns selection reads) in candidate order; select reads the kept clips' whole rows.
        good_rows = (row for row in slim_rows(rows) if row["candidate_id"] not in bad_ids)
        run.full_rows = rows.without("embedding")
    else:
        good = reject_invalid(sorted(rows, key=lambda r: r["candidate_id"]), rejections)
        good_ids = [r["candidate_id"] for r in good]
        matrix = np.array([r["embedding"] for r in good], dtype=np.float64)
        good_rows = ({k: v for k, v in row.items() if k != "embedding"} for row in good)
    identified = []
    if good_ids:
        ids, scores = assign_identities_columns(good_ids, matrix, threshold)
        del matrix
        for i, row in enumerate(good_rows):
            if row["candidate_id"] != good_ids[i]:
                raise RuntimeError(f"cluster: row {i} is {row['candidate_id']!r}, expected {good_ids[i]!r}")
            identified.append({**row, "identity_id": ids[i], "identity_score": float(scores[i])})  # no embedding
        # Grouped by identity (then candidate), the order select_stream reads them in.
        identified.sort(key=lambda r: (r["identity_id"], r["candidate_id"]))
    return identified, rejections, {"identities": len({r["identity_id"] for r in identified}),
                            "threshold_x1000": int(round(threshold * 1000))}


def _cluster_note(summary: dict) -> str:
    counters = summary["steps"][0].get("counters", {}) if summary.get("steps") else {}
    return (f"identity clustering: {counters.get('identities', '?')} identities from {summary['rows_in']} candidates, "
            f"average linkage cut at cosine distance {counters.get('threshold_x1000', 0) / 1000:.3f}")


# Global stages read their input in chunks of this many rows (select holds one identity, split one chunk).
STAGE_CHUNK_ROWS = 100_000


def _chunks(rows, size: int = STAGE_CHUNK_ROWS):
    """Lists of ``size`` rows from any iterable (a list, or an executor stage's lazy ``MergedRows``)."""
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def _select(run: Run, rows: list[dict]):
    """``select.select_stream`` over the cluster stage's rows (grouped by identity): the rows and rejections
    ``select_clips`` gives, one identity at a time."""
    from .select import select_stream

    # cluster hands them on in this order already (a linear pass then); a stage inserted in between may not
    rows = sorted(rows, key=lambda r: (r["identity_id"], r["candidate_id"]))
    selected, rejections = [], []
    for chosen, rejected in select_stream(_chunks(rows), run.config.select):
        selected += chosen
        rejections += rejected
    full = getattr(run, "full_rows", None)
    if full is not None:  # cluster handed on slim rows: the kept clips' whole rows, with their identity
        whole = {r["candidate_id"]: r for r in full.pick("candidate_id", {r["candidate_id"] for r in selected})}
        selected = [{**whole[r["candidate_id"]], "identity_id": r["identity_id"],
                     "identity_score": r["identity_score"]} for r in selected]
    return selected, rejections, {"identities": len({r["identity_id"] for r in selected})}


def _with_clip_ids(run: Run, rows: list[dict]) -> list[dict]:
    for row in rows:
        row["clip_id"] = clip_id_for(row, run.config_hash)
    return sorted(rows, key=lambda r: r["clip_id"])


def _export_steps(run: Run) -> list[Step]:
    from .upper_body import export_step_for

    return [export_step_for(run.config, run.config.acquire.audio_rate)]  # square, or 2:3 under the upper-body profile


def _split(run: Run, rows: list[dict]):
    """``split.split_stream``: one chunk at a time once the identity ids are known (same rows as assign_split)."""
    from .split import split_stream

    ids = {r["identity_id"] for r in rows}
    return [r for chunk in split_stream(_chunks(rows), ids, run.config.split) for r in chunk], [], {}


def _write_clips(run: Run, rows: list[dict]) -> list[dict]:
    clips = sorted((clip_row(r, run.config_hash) for r in rows), key=lambda r: r["clip_id"])
    write_manifest(clips, run.out_dir / "clips.parquet", "clips")
    return clips


GiB = 2**30

STAGES: list[Stage] = [
    Stage("acquire", steps=_acquire_steps, finish=_write_videos,
          resume=lambda run: {"acquire": run.config.hash("acquire"), "pipeline_version": PIPELINE_VERSION},
          resources={"num_cpus": 1, "memory": GiB // 2}),
    Stage("scenes", steps=_scene_steps, prepare=lambda run, videos: segment_rows(videos, run.out_dir),
          resume=lambda run: {"scenes": run.cfg["scenes"], "min_duration": run.cfg["filters"]["min_duration"]},
          key=("source_id", "segment_index", "shot_index"), funnel=("segments", "shots"),
          resources={"num_cpus": 1, "memory": GiB}),
    Stage("faces", steps=_face_steps, resume=lambda run: {"faces": run.cfg["faces"]},
          key=("candidate_id",), funnel=(None, "tracks"), resources={"num_cpus": 1, "memory": 2 * GiB}),
    Stage("filters", steps=_filter_steps, resume=_filter_resume,
          key=("candidate_id",), funnel=(None, "passed filters"),
          resources={"num_cpus": 1, "memory": 2 * GiB}),
    Stage("identity", steps=_embed_steps, funnel=(None, "embedded"), key=("candidate_id",),
          columns=("embedding", *SELECT_COLUMNS),
          resume=lambda run: {"identity": run.cfg["identity"], "backend": run.identity_backend},
          resources={"num_cpus": 1, "memory": GiB}),
    Stage("cluster", apply=_cluster, note=_cluster_note),
    Stage("select", apply=_select, finish=_with_clip_ids, funnel=(None, "selected")),
    Stage("export", steps=_export_steps, key=("clip_id",),
          resume=lambda run: {"export": run.cfg["export"], "config_hash": run.config_hash},
          resources={"num_cpus": 1, "memory": GiB}),
    Stage("split", apply=_split, finish=_write_clips),
]


def stage_names() -> list[str]:
    return [stage.name for stage in STAGES]


def write_summary(stats_dir: Path, name: str, rows_in: int, rows_out: int, dropped: dict, counters: dict) -> dict:
    """Stats of an in-process stage in the executor's summary.json format, for the report's funnel."""
    summary = {"ranks": 0, "rows_in": rows_in, "rows_out": rows_out,
               "steps": [{"name": name, "rows_in": rows_in, "rows_out": rows_out, "seconds": 0.0,
                          "dropped": dict(sorted(dropped.items())), "counters": dict(sorted(counters.items()))}]}
    atomic_write_text(stats_dir / name / "summary.json", json.dumps(summary, indent=1, sort_keys=True))
    return summary


def run_stage(stage: Stage, run: Run, rows: list[dict]) -> list[dict]:
    """Run one stage on the previous stage's rows; its rejections join ``run.rejections``."""
    if stage.prepare is not None:
        rows = stage.prepare(run, rows)
    if stage.steps is not None:
        result = run.executor.run(stage.steps(run), rows, run.stats / stage.name,
                                  config=stage.resume(run) if stage.resume else None, description=stage.name,
                                  resources=stage.resources, key=stage.key, columns=stage.columns)
        out, rejections = result.rows, result.rejections
    else:
        out, rejections, counters = stage.apply(run, rows)
        dropped: dict[str, int] = {}
        for r in rejections:
            dropped[r["reason"]] = dropped.get(r["reason"], 0) + 1
        write_summary(run.stats, stage.name, len(rows), len(out), dropped, counters)
    run.rejections += rejections
    if stage.finish is not None:
        out = stage.finish(run, out)
    if stage.name in run.keep:
        run.outputs[stage.name] = out
    return out
