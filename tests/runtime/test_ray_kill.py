"""A Ray cluster run survives a SIGKILLed worker: the rerun resumes and equals a clean local run byte for byte.

The cluster is a head node started by the test (`ray start --head` on 127.0.0.1, 2 CPUs, its own temp dir and
process group); a per-video stage of 6 ranks runs through RayExecutor; while rank 2 is running, the test SIGKILLs
the Ray worker process executing it (its pid is the one the task itself reports). The first run then fails; the
rerun on the same folder skips the finished ranks, runs the rest, and every output file equals the local run's.
"""

from __future__ import annotations

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
    executor = RayExecutor(workers=2, quiet=True, address=ray_head)
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
