"""A service in its own process under overload and on SIGTERM (psutil watches it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from seproxy.rpc.client.base import RPCClient
from tests.conftest import REPO_ROOT, wait_for
from tests.fixtures.services import service_config
from tests.rpc.server.test_service import Gate

HANDLERS = Path(__file__).parent.parent / "handlers.py"
pytestmark = pytest.mark.timeout(300)


class Child:
    def __init__(self, tmp_path: Path, name: str, options: dict) -> None:
        self.name = name
        self.cfg = service_config(name, options={"HandlerPath": str(HANDLERS), **options})
        cfg_file = tmp_path / "service.cfg"
        cfg_file.write_text(self.cfg.serialize())
        port_file = tmp_path / "port"
        self.log = (tmp_path / "service.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.rpc.service_process", str(cfg_file), str(port_file), name],
            cwd=REPO_ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        started = wait_for(lambda: port_file.exists() or self.process.poll() is not None, 60, 0.05)
        assert self.process.poll() is None, "service process died at start"
        assert started, "service did not start"
        self.port = int(port_file.read_text().split()[0])
        self.url = f"dip://127.0.0.1:{self.port}/{name}"
        self.ps = psutil.Process(self.process.pid)

    def client(self, **kwargs) -> RPCClient:
        return RPCClient(self.url, config=self.cfg, retryDelay=0.05, **kwargs)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.log.close()


@pytest.fixture
def child(tmp_path):
    started = []

    def start(name: str, **options) -> Child:
        started.append(Child(tmp_path, name, options))
        return started[-1]

    yield start
    for item in started:
        item.stop()


def test_200_clients_against_15_threads_and_50_waiting(child):
    svc = child("Test/Overload", MaxThreads=15, MaxWaitingPetitions=50)
    assert svc.client().ping()["OK"]
    idle_threads = svc.ps.num_threads()
    idle_rss = svc.ps.memory_info().rss
    gate = Gate()
    results: list = [None] * 200

    def call(index: int) -> None:
        results[index] = svc.client().waitOn(gate.port)

    callers = [threading.Thread(target=call, args=(i,)) for i in range(200)]
    opened = threading.Event()
    try:
        for caller in callers:
            caller.start()
        gate.wait_entered(15)  # every worker is busy inside the handler
        # 50 wait in the queue; the others must get their answer (a rejection) now
        assert wait_for(lambda: sum(r is not None for r in results) >= 200 - 15 - 50, 120, 0.05), \
            "overflowing clients were not rejected"
        opened = gate.open_wide()  # let every queued request through
        for caller in callers:
            caller.join(60)
    finally:
        opened.set()
        gate.close()
    answered = [r for r in results if r and r["OK"]]
    rejected = [r for r in results if r and not r["OK"]]
    assert len(answered) + len(rejected) == 200
    assert all(r["Value"] == "released" for r in answered)
    assert len(answered) >= 65 and rejected
    for result in rejected:
        assert "Test/Overload is overloaded" in result["Message"], result["Message"]
    assert svc.client().ping()["OK"], "service still up"
    assert wait_for(lambda: svc.ps.num_threads() == idle_threads, 30, 0.05), "threads back to idle"
    assert svc.ps.memory_info().rss < idle_rss + 40 * 1024 * 1024


def test_sigterm_finishes_the_running_request(child):
    svc = child("Test/Graceful", MaxThreads=2)
    gate = Gate()
    result: list = []
    caller = threading.Thread(target=lambda: result.append(svc.client().waitOn(gate.port)))
    try:
        caller.start()
        gate.wait_entered(1)
        os.kill(svc.process.pid, signal.SIGTERM)
        assert wait_for(lambda: not any(c.status == psutil.CONN_LISTEN
                                        for c in svc.ps.net_connections("inet")), 30, 0.05), \
            "listener still open after SIGTERM"
        assert svc.process.poll() is None, "exited before the running request finished"
        gate.release()
        caller.join(30)
    finally:
        gate.close()
    assert result and result[0]["Value"] == "released"
    assert svc.process.wait(30) == 0
