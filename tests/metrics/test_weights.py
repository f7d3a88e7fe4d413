"""Weights registry: official containers accepted, corrupted / renamed / reshaped / wrong-hash files refused,
resumable download over loopback HTTP, offline lpips install, and the CLI as a user types it."""

from __future__ import annotations

import http.server
import shutil
import threading
from functools import partial
from pathlib import Path

import pytest
import torch

from talkbench.cli.main import main
from talkbench.errors import MissingWeightsError, WeightsError
from talkbench import weights
from talkbench.metrics import random_weights

ENTRIES = weights.all_entries()
ALL = sorted(ENTRIES)
STATE_DICTS = [n for n in ALL if ENTRIES[n].container == "legacy-pickle"]
OFFICIAL_LPIPS_SHA = {
    "lpips-alex": "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    "lpips-vgg": "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
}


def test_registry_entries_are_complete():
    assert set(ALL) == {"alexnet", "vgg16", "vgg19", "lpips-alex", "lpips-vgg", "fid-inception", "clean-fid-inception",
                        "i3d", "syncnet", "buffalo_l", "dwpose"}
    for entry in ENTRIES.values():
        assert entry.urls and entry.licence and entry.filename and callable(entry.build) and callable(entry.check)
        assert entry.hash_kind in ("sha256", "prefix", "unpinned")
        assert (entry.hash_kind == "unpinned") == (entry.sha256 == "")
    for name, sha in OFFICIAL_LPIPS_SHA.items():
        assert ENTRIES[name].sha256 == sha


@pytest.mark.parametrize("name", ALL)
def test_official_container_is_accepted(name, fake_files, home):
    path = fake_files[name]
    entry = ENTRIES[name]
    if entry.container == "legacy-pickle":
        import zipfile

        assert not zipfile.is_zipfile(path)  # the old (pre-1.6) pickle container, like the official files
    pinned = entry.hash_kind != "unpinned"
    record = weights.install_file(name, path, unverified=pinned)
    assert weights.is_installed(name)
    assert weights.installed_sha256(name) == weights.sha256_file(path) == record["sha256"]
    assert record["official"] is (False if pinned else None)
    assert weights.is_standard(name) is (not pinned)
    if entry.container == "legacy-pickle":
        state = weights.load_state_dict(name)
        required, _ = weights.expected_state_dict(name)
        assert set(required) <= set(state)
    elif entry.container == "torchscript":
        assert isinstance(weights.load_torchscript(name), torch.jit.ScriptModule)


@pytest.mark.parametrize("name", ALL)
def test_corrupted_copy_is_refused(name, fake_files, home, tmp_path):
    data = fake_files[name].read_bytes()
    bad = tmp_path / "corrupt.bin"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(WeightsError):
        weights.install_file(name, bad, unverified=True)
    assert not weights.is_installed(name)


@pytest.mark.parametrize("name", STATE_DICTS)
def test_renamed_or_reshaped_key_is_refused(name, home, tmp_path):
    state = random_weights.random_state_dict(name, compact=True)
    key = sorted(state)[0]
    renamed = dict(state)
    renamed[key.replace("weight", "weights").replace("bias", "biases")] = renamed.pop(key)
    torch.save(renamed, tmp_path / "renamed.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(WeightsError, match="missing key") as err:
        weights.install_file(name, tmp_path / "renamed.pth", unverified=True)
    assert repr(key) in str(err.value)
    reshaped = dict(state)
    reshaped[key] = torch.zeros(tuple(s + 1 for s in state[key].shape))
    torch.save(reshaped, tmp_path / "reshaped.pth")  # the zip container is accepted too; the shape is not
    with pytest.raises(WeightsError, match="has shape") as err:
        weights.install_file(name, tmp_path / "reshaped.pth", unverified=True)
    assert repr(key) in str(err.value)


@pytest.mark.parametrize("name", ["lpips-alex", "fid-inception", "alexnet"])
def test_wrong_hash_is_refused_without_unverified(name, fake_files, home):
    with pytest.raises(WeightsError, match="does not match the official"):
        weights.install_file(name, fake_files[name])
    assert not weights.is_installed(name)


def test_missing_weights_error_names_the_install_command(home):
    with pytest.raises(MissingWeightsError) as err:
        weights.weights_path("syncnet")
    message = str(err.value)
    assert "'syncnet'" in message and "talkbench weights fetch syncnet" in message and "\n" not in message
    with pytest.raises(MissingWeightsError):
        weights.load_state_dict("fid-inception")
    assert weights.installed_sha256("syncnet") is None


def test_fetch_lpips_offline_from_torchmetrics(home):
    for name, sha in OFFICIAL_LPIPS_SHA.items():
        record = weights.fetch(name)
        assert record["sha256"] == sha and record["official"] is True
        assert record["source"].startswith("local:torchmetrics")
        state = weights.load_state_dict(name)
        assert state["lin0.model.1.weight"].shape == (1, 64, 1, 1)
    assert [r["status"] for r in weights.verify(list(OFFICIAL_LPIPS_SHA))] == ["ok", "ok"]


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with Range support; the first full GET is cut short to force a resume."""

    cut = {"done": False}

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        data = path.read_bytes()
        start = 0
        header = self.headers.get("Range")
        if header:
            start = int(header.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not header and not self.cut["done"]:
            self.cut["done"] = True
            self.wfile.write(body[: len(body) // 2])  # connection drops mid-file
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_RangeHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _RangeHandler.cut["done"] = False
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_fetch_resumes_over_http_and_checks(server, fake_files, home):
    root, base = server
    shutil.copy(fake_files["syncnet"], root / "syncnet_v2.model")
    with pytest.raises(WeightsError, match="resume"):
        weights.fetch("syncnet", url=f"{base}/syncnet_v2.model")  # first try is cut mid-file
    part = weights.weights_home() / ".download-syncnet_v2.model.part"
    assert 0 < part.stat().st_size < fake_files["syncnet"].stat().st_size
    record = weights.fetch("syncnet", url=f"{base}/syncnet_v2.model")  # resumes with a Range request
    assert record["sha256"] == weights.sha256_file(fake_files["syncnet"])
    assert not part.exists()
    # A served file with the right name but the wrong hash is refused after download.
    shutil.copy(fake_files["lpips-alex"], root / "alex.pth")
    _RangeHandler.cut["done"] = True
    with pytest.raises(WeightsError, match="does not match the official"):
        weights.fetch("lpips-alex", url=f"{base}/alex.pth")


def test_cli_weights_commands(fake_files, home, capsys):
    assert main(["weights", "list"]) == 0
    assert "lpips-alex" in capsys.readouterr().out
    assert main(["weights", "fetch", "lpips-vgg"]) == 0
    assert main(["weights", "import", str(fake_files["syncnet"]), "--as", "syncnet"]) == 0
    assert main(["weights", "import", str(fake_files["lpips-alex"]), "--as", "lpips-alex"]) == 1
    err = capsys.readouterr().err
    assert "does not match the official" in err and "Traceback" not in err
    assert main(["weights", "import", str(fake_files["lpips-alex"]), "--as", "lpips-alex", "--unverified"]) == 0
    assert main(["weights", "verify"]) == 0
    out = capsys.readouterr().out
    assert "unverified" in out and "ok-unpinned" in out
    # A file changed after install is caught by verify.
    weights.weights_path("syncnet").write_bytes(b"tampered")
    assert main(["weights", "verify", "syncnet"]) == 1
    for group in (["weights"], ["weights", "fetch"], ["weights", "import"], ["weights", "verify"], ["weights", "list"]):
        assert main([*group, "--help"]) == 0


def test_protocol_hashes_equal_the_registry():
    from talkbench.manifests.protocols import get_protocol

    for pid in ("talkbench-v1-256", "talkbench-v1-512", "talkbench-v1-256-dwpose"):
        protocol = get_protocol(pid)
        assert protocol.fps == 25.0 and protocol.audio_rate == 16000
        for metric, net in protocol.feature_nets:
            assert net.sha256 == ENTRIES[net.weights].sha256, (pid, metric)
    assert get_protocol("talkbench-v1-256-dwpose").hkc_detector == "dwpose"


def test_unverified_import_of_an_unpinned_entry_is_non_standard(fake_files, home):
    # syncnet_v2.model publishes no hash, so only the user's --unverified (a re-trained SyncNet, say) can tell;
    # results made with it must carry a non-standard protocol id.
    record = weights.install_file("syncnet", fake_files["syncnet"], unverified=True)
    assert ENTRIES["syncnet"].hash_kind == "unpinned"
    assert record["official"] is False and weights.is_standard("syncnet") is False
    record = weights.install_file("syncnet", fake_files["syncnet"])  # the same file imported as official again
    assert record["official"] is None and weights.is_standard("syncnet") is True
