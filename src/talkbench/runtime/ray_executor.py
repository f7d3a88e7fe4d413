"""RayExecutor: the only module that imports ray. Same rank function, same files, same merged output.

Resources: each rank is one Ray task whose options come from the stage's declared resources (``stages.STAGES``:
``num_cpus``, ``num_gpus``, ``memory`` in bytes; any other key is a custom Ray resource) and each step's own
``Step.resources``, the larger value per key. A stage that needs more of a resource than the whole cluster has
stops with one line instead of waiting forever.

Retries: a rank whose worker process dies (killed, out of memory, node lost) is retried up to ``max_retries`` times
(default ``DEFAULT_MAX_RETRIES`` = 3, Ray's own default for tasks). A rank is safe to rerun: it writes its output and
stats atomically and its completion marker last. An exception raised by a step is not retried: it comes from the
rank's input, happens again on every try, and is reported at once.
"""

from __future__ import annotations

from ..errors import ConfigError, MissingDependencyError, require
from .executor import Executor, run_rank

DEFAULT_MAX_RETRIES = 3
_OPTION_KEYS = ("num_cpus", "num_gpus", "memory")
_CLUSTER_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}


def task_options(resource_sets, max_retries: int) -> dict:
    """Ray ``.options`` for one rank: the largest value of each resource over ``resource_sets`` (dicts or None)."""
    needs: dict[str, float] = {}
    for resources in resource_sets:
        for key, value in (resources or {}).items():
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"resource {key!r} must be a number ≥ 0, found {value!r}")
            needs[key] = max(needs.get(key, 0), value)
    options = {"num_cpus": needs.pop("num_cpus", 1), "num_gpus": needs.pop("num_gpus", 0),
               "max_retries": int(max_retries), "retry_exceptions": False}
    if needs.get("memory"):
        options["memory"] = int(needs.pop("memory"))
    needs.pop("memory", None)
    if needs:
        options["resources"] = needs
    return options


def check_feasible(options: dict, cluster: dict, description: str) -> None:
    """One line when a task asks for more of a resource than the cluster has in total (it would never start)."""
    wanted = {key: options.get(key, 0) for key in _OPTION_KEYS}
    wanted.update(options.get("resources") or {})
    for key, value in wanted.items():
        name = _CLUSTER_NAMES.get(key, key)
        have = cluster.get(name, 0)
        if value and value > have:
            unit = (lambda v: f"{v / 2**30:.2f} GiB") if key == "memory" else (lambda v: f"{v:g}")
            raise ConfigError(f"stage {description!r} needs {unit(value)} {name} per task but the ray cluster has "
                              f"{unit(have)} in total; add nodes or lower the stage's resources")


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, workers: int = 1, tasks: int | None = None, quiet: bool = False, address: str | None = None,
                 max_retries: int = DEFAULT_MAX_RETRIES):
        super().__init__(workers=workers, tasks=tasks, quiet=quiet)
        if int(max_retries) < 0:
            raise ConfigError(f"max_retries must be ≥ 0, found {max_retries}")
        self.address = address
        self.max_retries = int(max_retries)
        require("ray", "pip install 'talkbench[ray]'")

    def run_ranks(self, steps, shards, world_size, logging_dir, description, resources=None, key=None, columns=()):
        import ray

        if not ray.is_initialized():
            try:
                if self.address:
                    ray.init(address=self.address, log_to_driver=False, logging_level="ERROR")
                else:
                    # address="local": always a fresh cluster, even when another one runs on this machine.
                    ray.init(address="local", num_cpus=self.workers, log_to_driver=False, logging_level="ERROR",
                             include_dashboard=False)
            except ConnectionError as exc:
                raise MissingDependencyError(
                    f"cannot reach a ray cluster at {self.address!r} ({exc}); start one with: ray start --head"
                ) from exc
        options = task_options([resources, *(step.resources for step in steps)], self.max_retries)
        check_feasible(options, ray.cluster_resources(), description)
        remote = ray.remote(run_rank).options(**options)
        steps_ref = ray.put(list(steps))
        refs = [remote.remote(steps_ref, shard, rank, world_size, str(logging_dir), key, columns)
                for rank, shard in shards.items()]
        with self.progress(len(refs), description) as bar:
            pending = refs
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                ray.get(done)  # re-raises the first failing rank (after its retries)
                bar.advance()
