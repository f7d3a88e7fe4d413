"""A Ray cluster run survives a SIGKILLed worker, by retry or by rerun, and equals a clean local run byte for byte.

The cluster is a head node started by the test (`ray start --head` on 127.0.0.1, 2 CPUs, its own temp dir and
process group); a per-video stage of 6 ranks runs through RayExecutor; while rank 2 is running, the test SIGKILLs
the Ray worker process executing it (its pid is the one the task itself reports).
- With ``max_retries=0`` the first run fails; the rerun on the same folder skips the finished ranks, runs the rest,
  and every output file equals the local run's.
- With the default retries, Ray reruns rank 2 on a new worker and the same single run completes, equal to local.
The stage's declared resources reach Ray's task options (each rank records what Ray assigned it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from talkbench.manifests.stream import write_table_chunks
from talkbench.runtime.step import Step

pytestmark = [pytest.mark.slow, pytest.mark.ray]


class SlowVideoStep(Step):
    """A stand-in per-video stage: reports its worker pid, takes ``seconds`` per row, rejects odd videos."""

    def __init__(self, pid_dir: str, seconds: float):
        self.pid_dir, self.seconds = pid_dir, seconds

    @property
    def name(self) -> str:
        return "slow_video"

    def run(self, rows, rank=0, world_size=1):
        Path(self.pid_dir).mkdir(parents=True, exist_ok=True)
        (Path(self.pid_dir) / f"{rank:05d}.pid").write_text(str(os.getpid()))
        try:
            import ray

            assigned = ray.get_runtime_context().get_assigned_resources() if ray.is_initialized() else {}
        except ImportError:
            assigned = {}
        (Path(self.pid_dir) / f"{rank:05d}.resources").write_text(json.dumps(assigned, sort_keys=True))
        for row in rows:
            time.sleep(self.seconds)
            if row["index"] % 2:
                self.ctx.reject(row["source_id"], "odd_video", source_id=row["source_id"], value=row["index"])
                continue
            yield {**row, "frames": row["index"] * 25}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    pytest.importorskip("ray")
    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_AUTH_MODE", "disabled")
    ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    temp = Path("/tmp") / f"tbkill-{os.getpid()}"
    log = tmp_path_factory.mktemp("raykill") / "head.log"
    with open(log, "w") as handle:
        head = subprocess.Popen([ray_bin, "start", "--head", "--block", "--port", str(port), "--node-ip-address",
                                 "127.0.0.1", "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats",
                                 "--object-store-memory", str(100 * 2**20), "--temp-dir", str(temp)],
                                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and "ray status" not in log.read_text() and head.poll() is None:
        time.sleep(0.2)
    if head.poll() is not None:
        pytest.fail(f"ray start failed:\n{log.read_text()[-2000:]}")
    yield f"127.0.0.1:{port}"
    import ray

    ray.shutdown()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(head.pid, sig)
            head.wait(timeout=5)
            break
        except ProcessLookupError:
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(head.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    shutil.rmtree(temp, ignore_errors=True)
    mp.undo()


def _rows():
    return [{"source_id": f"vid{i:03d}", "index": i} for i in range(6)]


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and (p.parent.name in ("output", "completions") or p.suffix == ".parquet")}


def test_killed_worker_then_rerun_equals_a_clean_local_run(ray_head, tmp_path):
    import ray
    from ray import cloudpickle

    from talkbench.runtime import make_executor
    from talkbench.runtime.ray_executor import RayExecutor

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module

    def stage(executor, folder, seconds):
        res = executor.run([SlowVideoStep(str(tmp_path / "pids" / folder.name), seconds)], _rows(), folder / "stage",
                           config={"stage": "slow_video"}, description="slow")
        write_table_chunks([res.rejections], folder / "rejections.parquet", "rejections")
        return res

    local = stage(make_executor("local", workers=1, quiet=True), tmp_path / "local", 0.0)

    ray_dir = tmp_path / "ray"
    executor = RayExecutor(workers=2, quiet=True, address=ray_head, max_retries=0)
    victim = tmp_path / "pids" / "ray" / "00002.pid"
    killed = {}

    def kill_rank_2():
        deadline = time.monotonic() + 60
        while not victim.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        pid = int(victim.read_text())
        killed["pid"] = pid
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_rank_2)
    killer.start()
    with pytest.raises(Exception) as failure:
        stage(executor, ray_dir, 1.5)
    killer.join()
    assert "pid" in killed, f"rank 2 never started: {failure.value!r}"[:3000]
    assert killed["pid"] != os.getpid()
    assert "ray" in type(failure.value).__module__ or "died" in str(failure.value).lower()
    assert not (ray_dir / "stage" / "completions" / "00002").exists()
    assert not (ray_dir / "rejections.parquet").exists()  # nothing is written after a failed stage
    # Let the ranks still in flight from the first attempt finish or die before the rerun counts completions.
    time.sleep(2.0)

    rerun = stage(executor, ray_dir, 0.1)
    assert 0 < rerun.skipped_ranks < 6
    assert rerun.rows == local.rows and rerun.rejections == local.rejections
    assert [r["source_id"] for r in rerun.rows] == ["vid000", "vid002", "vid004"]
    assert _outputs(ray_dir) == _outputs(tmp_path / "local")
    ray.shutdown()


def _kill_when_started(victim: Path, killed: dict) -> threading.Thread:
    def kill():
        deadline = time.monotonic() + 60
        while not victim.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        killed["pid"] = int(victim.read_text())
        os.kill(killed["pid"], signal.SIGKILL)

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


def test_killed_worker_is_retried_and_one_run_equals_a_clean_local_run(ray_head, tmp_path):
    import ray
    from ray import cloudpickle

    from talkbench.runtime import make_executor
    from talkbench.runtime.ray_executor import DEFAULT_MAX_RETRIES, RayExecutor

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    need = {"num_cpus": 1, "memory": 64 * 2**20}

    def stage(executor, folder, seconds):
        res = executor.run([SlowVideoStep(str(tmp_path / "pids" / folder.name), seconds)], _rows(), folder / "stage",
                           config={"stage": "slow_video"}, description="slow", resources=need)
        write_table_chunks([res.rejections], folder / "rejections.parquet", "rejections")
        return res

    local = stage(make_executor("local", workers=1, quiet=True), tmp_path / "local", 0.0)
    executor = make_executor("ray", workers=2, quiet=True, ray_address=ray_head)
    assert isinstance(executor, RayExecutor) and executor.max_retries == DEFAULT_MAX_RETRIES >= 1
    killed: dict = {}
    killer = _kill_when_started(tmp_path / "pids" / "ray" / "00002.pid", killed)
    result = stage(executor, tmp_path / "ray", 1.0)  # no exception: rank 2 was retried on a new worker
    killer.join()
    assert "pid" in killed and killed["pid"] != os.getpid()
    retried_pid = int((tmp_path / "pids" / "ray" / "00002.pid").read_text())
    assert retried_pid != killed["pid"]  # the retry ran in another worker process
    assert result.skipped_ranks == 0
    assert result.rows == local.rows and result.rejections == local.rejections
    assert _outputs(tmp_path / "ray") == _outputs(tmp_path / "local")
    # Ray assigned each rank what the stage declared (memory in bytes, one CPU).
    assigned = json.loads((tmp_path / "pids" / "ray" / "00000.resources").read_text())
    assert assigned.get("CPU") == 1 and assigned.get("memory") == need["memory"]
    ray.shutdown()


def test_a_stage_asking_for_more_than_the_cluster_has_stops_with_one_line(ray_head, tmp_path):
    import ray

    from talkbench.errors import ConfigError
    from talkbench.runtime.ray_executor import RayExecutor

    executor = RayExecutor(workers=2, quiet=True, address=ray_head)
    with pytest.raises(ConfigError, match=r"needs 1 GPU per task but the ray cluster has 0 in total"):
        executor.run([SlowVideoStep(str(tmp_path / "pids"), 0.0)], _rows(), tmp_path / "stage",
                     config={"stage": "slow_video"}, description="slow", resources={"num_gpus": 1})
    assert not (tmp_path / "stage" / "completions").exists()
    ray.shutdown()
