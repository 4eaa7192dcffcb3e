"""A 1 GiB file staged by a real DIRAC client's prepareFileForHTTP and fetched with curl:
bytes identical, and the service process's memory stays flat (RSS growth < 100 MiB)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading

import psutil
import pytest

GIB = 1024 * 1024 * 1024
BLOCK = 1024 * 1024

pytestmark = [pytest.mark.interop, pytest.mark.slow]


class PeakRSS:
    """Samples this process's RSS in a thread until stopped; ``peak`` is the maximum seen."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        return self.peak - self.baseline


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * BLOCK):
            digest.update(chunk)
    return digest.hexdigest()


def test_one_gib_http_download_with_flat_memory(se_proxy, dirac9_client, tmp_path):
    source = se_proxy.storage / "dirac" / "big" / "one.gib"
    source.parent.mkdir(parents=True)
    pattern = os.urandom(BLOCK)
    with open(source, "wb") as fh:
        for index in range(GIB // BLOCK):
            fh.write(index.to_bytes(8, "big") + pattern[8:])  # every block distinct
    client = dirac9_client.with_(proxy=se_proxy.proxy())
    rss = PeakRSS()
    try:
        res = client.rpc(se_proxy.svc.url, "prepareFileForHTTP", "/dirac/big/one.gib", )
        assert res["OK"], res
        out = tmp_path / "one.gib"
        subprocess.run(["curl", "-sSf", "-o", str(out), res["HttpURL"]], check=True, timeout=300)
    finally:
        growth = rss.stop()
    assert out.stat().st_size == GIB
    assert sha256_file(out) == sha256_file(source)
    assert growth < 100 * 1024 * 1024, f"service RSS grew by {growth / 2**20:.1f} MiB"
