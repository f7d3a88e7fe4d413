"""What a stage declares becomes the Ray task's options (no cluster needed: the translation and the refusal)."""

from __future__ import annotations

import pytest

from talkbench.errors import ConfigError
from talkbench.runtime.ray_executor import DEFAULT_MAX_RETRIES, check_feasible, task_options


def test_stage_and_step_resources_merge_into_task_options():
    opts = task_options([{"num_cpus": 1, "memory": 2 * 2**30}, {"num_gpus": 0.5, "num_cpus": 2, "tpu_slot": 1}, None],
                        max_retries=DEFAULT_MAX_RETRIES)
    assert opts == {"num_cpus": 2, "num_gpus": 0.5, "memory": 2 * 2**30, "resources": {"tpu_slot": 1},
                    "max_retries": 3, "retry_exceptions": False}
    # Nothing declared: one CPU, no GPU, no memory reservation, no retries when asked for none.
    assert task_options([None], max_retries=0) == {"num_cpus": 1, "num_gpus": 0, "max_retries": 0,
                                                   "retry_exceptions": False}


def test_bad_resource_values_and_infeasible_tasks_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"resource 'memory' must be a number ≥ 0, found '2G'"):
        task_options([{"memory": "2G"}], 3)
    cluster = {"CPU": 16.0, "memory": 8 * 2**30}
    check_feasible(task_options([{"num_cpus": 1, "memory": 2**30}], 3), cluster, "faces")  # fits: no error
    with pytest.raises(ConfigError, match=r"stage 'faces' needs 9.00 GiB memory per task but the ray cluster has "
                                          r"8.00 GiB in total"):
        check_feasible(task_options([{"memory": 9 * 2**30}], 3), cluster, "faces")
    with pytest.raises(ConfigError, match=r"needs 1 GPU per task but the ray cluster has 0 in total"):
        check_feasible(task_options([{"num_gpus": 1}], 3), cluster, "export")
