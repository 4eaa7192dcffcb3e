"""The Prometheus endpoint: a real scrape, parsed by prometheus_client's text parser,
after a known mix of calls, transfers, HTTP downloads and a failed TLS handshake."""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_for


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.status == 200
        text = answer.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_scrape_after_known_traffic(se_proxy_factory, tmp_path):
    proxy = se_proxy_factory(MetricsPort=0)
    url = proxy.state.metrics_url
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
    before = scrape(url)
    data = os.urandom(100_000)
    (tmp_path / "m.bin").write_bytes(data)
    assert proxy.put(tmp_path / "m.bin", "/dirac/user/m.bin")["OK"]             # FromClient + uploadFile
    assert proxy.get("/dirac/user/m.bin", tmp_path / "back.bin")["OK"]          # prepareFile + ToClient
    assert not proxy.rpc().prepareFile("SE-LOCAL", "/dirac/user/missing.bin")["OK"]
    assert proxy.rpc().whoami()["OK"]
    http = proxy.rpc().prepareFileForHTTP("/dirac/user/m.bin")
    with urllib.request.urlopen(http["HttpURL"].replace("localhost", "127.0.0.1"), timeout=30) as got:
        assert got.read() == data
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{proxy.http_port}/{'x' * 43}", timeout=30)
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    with socket.create_connection(("127.0.0.1", proxy.svc.port), timeout=30) as plain:
        plain.sendall(b"GET / HTTP/1.0\r\n\r\n")  # not TLS: the handshake fails
        plain.recv(1024)
    after = {}

    def settled() -> bool:  # the failed handshake is counted by a worker thread
        after.update(scrape(url))
        return delta(before, after, "seproxy_tls_handshakes_total", result="failed") >= 1

    assert wait_for(settled, timeout=30)
    calls = {m: delta(before, after, "seproxy_calls_total", method=m, result=r)
             for m, r in [("RPC/uploadFile", "ok"), ("RPC/prepareFile", "ok"),
                          ("RPC/prepareFile", "error"), ("RPC/whoami", "ok"),
                          ("FileTransfer/FromClient", "ok"), ("FileTransfer/ToClient", "ok"),
                          ("RPC/prepareFileForHTTP", "ok")]} | {
        "prepareFile error": delta(before, after, "seproxy_calls_total", method="RPC/prepareFile",
                                   result="error")}
    assert calls == {"RPC/uploadFile": 1, "RPC/prepareFile": 1, "RPC/whoami": 1,
                     "FileTransfer/FromClient": 1, "FileTransfer/ToClient": 1,
                     "RPC/prepareFileForHTTP": 1, "prepareFile error": 1}
    assert delta(before, after, "seproxy_call_duration_seconds_count", method="RPC/prepareFile") == 2
    for direction in ("in", "out"):  # the service's answer encoding (the schema's default: dencode)
        assert sum(delta(before, after, "seproxy_transfer_bytes_total", direction=direction, encoding=e)
                   for e in ("json", "dencode")) == len(data)
    assert after[("seproxy_transfers_in_flight", (("direction", "in"),))] == 0
    assert delta(before, after, "seproxy_http_downloads_total", status="200") == 1
    assert delta(before, after, "seproxy_http_downloads_total", status="401") == 1
    assert delta(before, after, "seproxy_tls_handshakes_total", result="ok") == 7  # one per call
    assert sum(delta(before, after, "seproxy_tls_handshake_failures_total", reason=r)
               for r in ("not TLS", "protocol", "other", "peer closed")) >= 1
    assert ("seproxy_pool_queue_depth", (("service", "DataManagement/StorageElementProxy"),)) in after
    from seproxy import __version__
    from seproxy.rpc.version import DIRAC_VERSION
    assert after[("seproxy_build_info", (("dirac_version", DIRAC_VERSION),
                                         ("version", __version__)))] == 1
    staged = sum(p.stat().st_size for p in (proxy.base / "ns").rglob("*") if p.is_file())
    assert after[("seproxy_cache_bytes", ())] == staged


def test_metrics_off_unless_configured(se_proxy):
    assert se_proxy.state.metrics_server is None and se_proxy.state.metrics_url == ""
