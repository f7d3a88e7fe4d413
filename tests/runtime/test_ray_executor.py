"""RayExecutor against a real local cluster (`ray start --head` on 127.0.0.1): byte-identical manifests to local."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "curation"))
from acq_media import make_media  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A head node in its own process group, stopped by killing that group (never `ray stop`, which would also
    stop other people's clusters on this machine). Token authentication is off for both sides: ray turns it on
    whenever ~/.ray/auth_token exists, and a loopback test cluster must not depend on that file."""
    pytest.importorskip("ray")
    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_AUTH_MODE", "disabled")
    ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    temp = Path("/tmp") / f"tbray-{os.getpid()}"  # short: ray's socket paths must stay under 107 characters
    log = tmp_path_factory.mktemp("ray") / "head.log"
    with open(log, "w") as handle:
        head = subprocess.Popen([ray_bin, "start", "--head", "--block", "--port", str(port), "--node-ip-address",
                                 "127.0.0.1", "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats",
                                 "--object-store-memory", str(100 * 2**20), "--temp-dir", str(temp)],
                                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and "ray status" not in log.read_text() and head.poll() is None:
        time.sleep(0.2)
    if head.poll() is not None:
        pytest.fail(f"ray start failed:\n{log.read_text()[-2000:]}")
    yield address
    import ray

    ray.shutdown()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            break
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(head.pid, signal.SIGKILL)  # children outlive a terminated `ray start --block`
    except ProcessLookupError:
        pass
    shutil.rmtree(temp, ignore_errors=True)
    mp.undo()


def test_ray_and_local_give_byte_identical_manifests(ray_cluster, tmp_path_factory, tmp_path):
    from talkbench.cli.curate import main as curate
    from talkbench.manifests import io as mio

    media = make_media(str(tmp_path_factory.getbasetemp() / "acq_media"))
    names = ["base", "vfr", "rotated", "noaudio", "notvideo"]
    (tmp_path / "l.csv").write_text("".join(f"{media[n]},0.2,1.4\n" for n in names) + f"{tmp_path}/gone.mp4\n")
    common = ["build-manifest", str(tmp_path / "l.csv"), "--until", "acquire", "--quiet"]
    assert curate(common + ["--out", str(tmp_path / "local"), "--workers", "2"]) == 0
    assert curate(common + ["--out", str(tmp_path / "ray"), "--executor", "ray", "--ray-address", ray_cluster]) == 0
    for name in ("sources.parquet", "videos.parquet", "rejections.parquet"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    videos = mio.read_rows(tmp_path / "ray" / "videos.parquet", "videos")
    assert [v["status"] for v in videos] == ["ok", "failed", "ok", "rejected", "ok", "ok"]
    assert sorted(p.name for p in (tmp_path / "ray" / "stats" / "acquire" / "completions").iterdir()) == [
        f"{r:05d}" for r in range(6)]
    # Rerun through ray: every rank is complete, nothing is resubmitted, nothing changes.
    stamp = (tmp_path / "ray" / "videos.parquet").stat().st_mtime_ns
    assert curate(common + ["--out", str(tmp_path / "ray"), "--executor", "ray", "--ray-address", ray_cluster]) == 0
    assert (tmp_path / "ray" / "videos.parquet").stat().st_mtime_ns == stamp
