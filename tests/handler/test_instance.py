"""The instance guard (one process per BasePath + InstanceName) and the staged-file purger
of a running service (CacheArea.purge_stale itself: tests/staging/test_cache.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from seproxy.handler.instance import InstanceLock, InstanceRunning, refuse_if_running
from tests.conftest import wait_for

HOLD = """
import sys, time
from seproxy.handler.instance import InstanceLock
lock = InstanceLock(sys.argv[1], sys.argv[2]); lock.record("dips://example:9139/X")
print("held", flush=True); sys.stdin.readline()
"""


def test_second_process_refused_naming_the_first(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "node1"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(InstanceRunning) as refused:
            InstanceLock(tmp_path, "node1")
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and "dips://example:9139/X" in message
        assert "'node1' is already running" in message
        InstanceLock(tmp_path, "node2").release()  # another instance name is free
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    refuse_if_running(tmp_path, "node1")  # freed when its process ended


def test_same_process_shares_the_lock_and_only_the_first_cleans(tmp_path):
    first = InstanceLock(tmp_path, "a")
    second = InstanceLock(tmp_path, "a")
    assert first.first and not second.first
    first.release()
    code = f"from seproxy.handler.instance import InstanceLock; InstanceLock({str(tmp_path)!r}, 'a')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "InstanceRunning" in done.stderr  # still held by `second`
    second.release()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_unfetched_staged_copy_is_purged_by_the_service(se_proxy_factory):
    """A get interrupted between prepareFile and the download (Ctrl-C) leaves a staged copy:
    the purger removes it after StagedFileLifetime, with CacheHighWatermark = 0."""
    proxy = se_proxy_factory(StagedFileLifetime=1, HttpPurgeInterval=0.05)
    (proxy.storage / "dirac/user").mkdir(parents=True)
    (proxy.storage / "dirac/user/f.txt").write_bytes(b"data")
    assert proxy.rpc().prepareFile("SE-LOCAL", "/dirac/user/f.txt")["OK"]
    staged = list((proxy.base / "ns").rglob("f.txt"))
    assert len(staged) == 1
    assert wait_for(lambda: not staged[0].exists(), timeout=30)


def test_http_port_in_use_removes_nothing(se_proxy_factory):
    """Start-up clean-up runs only once both ports are bound; a failed start frees its lock."""
    import socket

    from seproxy.errors import ConfigError

    first = se_proxy_factory(InstanceName="one")
    partial = first.state.cache.tmp_root / "two" / "upload.part"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"partial")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        with pytest.raises(ConfigError, match="Cannot listen for HTTP"):
            se_proxy_factory(InstanceName="two", HttpPort=busy.getsockname()[1])
    finally:
        busy.close()
    assert partial.read_bytes() == b"partial"
    refuse_if_running(first.base, "two")
