"""RayExecutor: the only module that imports ray. Same rank function, same files, same merged output."""

from __future__ import annotations

from ..errors import MissingDependencyError, require
from .executor import Executor, run_rank


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, workers: int = 1, tasks: int | None = None, quiet: bool = False, address: str | None = None):
        super().__init__(workers=workers, tasks=tasks, quiet=quiet)
        self.address = address
        require("ray", "pip install 'talkbench[ray]'")

    def run_ranks(self, steps, shards, world_size, logging_dir, description):
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
        needs = {}
        for step in steps:
            for key, value in (step.resources or {}).items():
                needs[key] = max(needs.get(key, 0), value)
        remote = ray.remote(num_cpus=needs.pop("num_cpus", 1), num_gpus=needs.pop("num_gpus", 0),
                            resources=needs or None, max_retries=0)(run_rank)
        steps_ref = ray.put(list(steps))
        refs = [remote.remote(steps_ref, shard, rank, world_size, str(logging_dir)) for rank, shard in shards.items()]
        with self.progress(len(refs), description) as bar:
            pending = refs
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                ray.get(done)  # re-raises the first failing rank
                bar.advance()
