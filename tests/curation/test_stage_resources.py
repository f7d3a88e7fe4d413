"""Every executor stage declares its per-rank resources, and run_stage hands them to the executor."""

from __future__ import annotations

from talkbench.curation.config import CurationConfig
from talkbench.curation.stages import STAGES, Run, run_stage
from talkbench.runtime.executor import Executor, StageResult


class CapturingExecutor(Executor):
    name = "capture"

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, dict | None]] = []

    def run(self, steps, rows, logging_dir, *, config=None, description="", resources=None, key=(), columns=()):
        self.seen.append((description, resources))
        return StageResult([], [], {})


def test_executor_stages_declare_cpu_and_memory_and_no_gpu():
    executor_stages = [s for s in STAGES if s.steps is not None]
    assert [s.name for s in executor_stages] == ["acquire", "scenes", "faces", "filters", "identity", "export"]
    for stage in executor_stages:
        assert stage.resources["num_cpus"] == 1, stage.name
        assert 2**28 <= stage.resources["memory"] <= 4 * 2**30, stage.name  # bytes, not GiB
        assert stage.resources.get("num_gpus", 0) == 0, stage.name  # no curation stage runs on a GPU today
    assert all(not s.resources for s in STAGES if s.steps is None)  # in-process stages run in the driver


def test_run_stage_passes_the_stage_resources_to_the_executor(tmp_path):
    executor = CapturingExecutor()
    run = Run(tmp_path, CurationConfig(), executor)
    scenes = next(s for s in STAGES if s.name == "scenes")
    assert run_stage(scenes, run, []) == []
    assert executor.seen == [("scenes", scenes.resources)]
