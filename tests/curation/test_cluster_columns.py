"""The cluster stage builds its embedding matrix from two columns of the identity stage's parts, never from the row
dicts, and gives exactly what the row-dict path gives (ids, scores, order, NaN/zero rejections)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest

from talkbench.curation import stages
from talkbench.curation.config import CurationConfig
from talkbench.errors import MediaError
from talkbench.runtime import Step, make_executor
from talkbench.runtime import parts


class Embed(Step):
    """Candidate rows with a mixture embedding (3 people), bulky other fields, one NaN and one all-zero embedding."""

    def __init__(self, dim: int = 16):
        self.dim = dim

    def run(self, rows, rank=0, world_size=1):
        centres = np.random.default_rng(1).normal(size=(3, self.dim))
        for row in rows:
            i = row["i"]
            v = centres[i % 3] + 0.05 * np.random.default_rng(100 + i).normal(size=self.dim)
            v = v / np.linalg.norm(v)
            if i == 7:
                v[2] = np.nan
            if i == 11:
                v = np.zeros(self.dim)
            yield {"candidate_id": f"src{i % 5}/c{i:03d}", "source_id": f"src{i % 5}",
                   "samples": [{"frame": f, "box": [f, f + 1, f + 2, f + 3]} for f in range(20)],
                   "embedding": [float(x) for x in v], "identity_backend": "dlib", "start_s": 0.5 * (i % 4),
                   "end_s": 4.0 + i % 5, "yaw_max": float(i % 30), "pitch_max": 3.0, "roll_max": 2.5,
                   "sharpness": None if i % 9 == 0 else 100.0 + i}


def _identity_output(tmp_path, n=40, dim=16):
    executor = make_executor("local", quiet=True, tasks=6)
    identity = next(s for s in stages.STAGES if s.name == "identity")  # the stage's own key and columns
    return executor.run([Embed(dim)], [{"i": i} for i in range(n)], tmp_path / "identity", key=identity.key,
                        columns=identity.columns)


RUN = SimpleNamespace(identity_backend="dlib", config=CurationConfig())


def test_cluster_reads_only_candidate_id_and_embedding(tmp_path, monkeypatch):
    result = _identity_output(tmp_path)
    read_columns, decoded = [], []
    real_read, real_decode = pq.ParquetFile.read, parts._decode

    def spy_read(self, columns=None, **kwargs):
        read_columns.append(columns)
        return real_read(self, columns=columns, **kwargs)

    def spy_decode(*args, **kwargs):
        decoded.append(args[0])
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read", spy_read)
    monkeypatch.setattr(parts, "_decode", spy_decode)
    ids, matrix = stages.embedding_columns(result.rows)
    assert read_columns == [["candidate_id", "embedding"]] * 6 and decoded == []  # no row was decoded

    rows = sorted(list(result.rows), key=lambda r: r["candidate_id"])
    assert ids == [r["candidate_id"] for r in rows]
    assert matrix.dtype == np.float64 and matrix.shape == (40, 16)
    assert np.array_equal(matrix, np.array([r["embedding"] for r in rows]), equal_nan=True)

    # The rows handed on are read without the embedding column.
    groups = []
    real_group = pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", lambda self, i, columns=None, **kw:
                        groups.append(columns) or real_group(self, i, columns, **kw))
    slim = list(result.rows.without("embedding"))
    assert groups and all("embedding" not in columns and "_row" in columns for columns in groups)
    assert slim == [{k: v for k, v in r.items() if k != "embedding"} for r in rows]


def test_cluster_then_select_on_parts_equals_the_row_dict_path(tmp_path, monkeypatch):
    """From the parts, cluster decodes no row's JSON but the two bad ones (for their rejections) and hands on slim
    rows; select then decodes only the kept clips. Ids, scores, selected rows and rejections equal the dict path's."""
    result = _identity_output(tmp_path)
    decoded = []
    real_decode = parts._decode
    monkeypatch.setattr(parts, "_decode", lambda path, table, *a: decoded.append(table.num_rows)
                        or real_decode(path, table, *a))
    on_parts = SimpleNamespace(**vars(RUN))
    identified, rejections, counters = stages._cluster(on_parts, result.rows)
    assert sum(decoded) == 2  # the NaN and the all-zero embedding's rows, for their rejection rows
    assert [(r["item_id"], r["reason"]) for r in rejections] == [("src1/c011", "embedding_zero"),
                                                                 ("src2/c007", "embedding_nan")]
    assert counters["identities"] == 3 and len(identified) == 38
    assert set(identified[0]) == {"candidate_id", *stages.SELECT_COLUMNS, "identity_id", "identity_score"}
    selected, select_rejections, _ = stages._select(on_parts, identified)
    assert sum(decoded) == 2 + len(selected) == 2 + 9  # 3 clips kept per identity, only their rows decoded
    monkeypatch.setattr(parts, "_decode", real_decode)

    on_dicts = SimpleNamespace(**vars(RUN))
    identified_d, rejections_d, counters_d = stages._cluster(on_dicts, list(result.rows))
    assert (rejections, counters) == (rejections_d, counters_d)
    assert [(r["candidate_id"], r["identity_id"], r["identity_score"]) for r in identified] == [
        (r["candidate_id"], r["identity_id"], r["identity_score"]) for r in identified_d]
    # handed on without embeddings: nothing after clustering uses them, and they stay in the parts
    assert all("embedding" not in r and len(r["samples"]) == 20 for r in identified_d)
    assert (selected, select_rejections) == stages._select(on_dicts, identified_d)[:2]
    assert all(len(r["samples"]) == 20 and "embedding" not in r for r in selected)


def test_embeddings_of_different_lengths_stop_the_stage(tmp_path):
    a = make_executor("local", quiet=True, tasks=2).run([Embed(16)], [{"i": i} for i in range(4)], tmp_path / "a",
                                                        key=("candidate_id",), columns=("embedding",))
    b = make_executor("local", quiet=True, tasks=2).run([Embed(8)], [{"i": i} for i in range(4, 8)], tmp_path / "b",
                                                        key=("candidate_id",), columns=("embedding",))
    mixed = parts.MergedRows([*a.rows.paths, *b.rows.paths], key=("candidate_id",))
    with pytest.raises(MediaError, match=r"embeddings of different lengths \[8, 16\]"):
        stages._cluster(SimpleNamespace(**vars(RUN)), mixed)
