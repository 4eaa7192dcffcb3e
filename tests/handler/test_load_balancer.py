"""Three ``seproxy serve`` instances behind HAProxy, one killed -9 in the middle of a run.

The instances share one data directory (BasePath, key secret, File SE, development PKI)
and a MariaDB state database; HAProxy runs ``config/haproxy.cfg.example`` unchanged
(its addresses come from the environment): TCP mode for dips, HTTP mode for downloads.
seproxy clients (threads of this process) and a real DIRAC 9 client (its own process)
go through the balancer only. Each client operation is a whole DIRAC Proxy-plugin flow
(``sendFile`` + ``uploadFile``, ``prepareFile`` + ``receiveFile``,
``prepareFileForHTTP`` + GET); a flow that fails is reported as a client-visible error
and run again, as a job would. In the middle of the run one instance is killed with
SIGKILL, while it also serves a 48 MiB download the test holds open. Then: every flow
finished, every stored file has its exact bytes, no partial file is in the storage or
under a final name in the cache, the survivors serve every key issued before the kill
(also those the dead instance issued) and, once its claim lapsed (``HttpClaimTimeout``),
the key of the download the kill cut.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import signal
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from seproxy.cli.common import load_config
from seproxy.localfs import is_temp_name
from seproxy.rpc.client.base import RPCClient
from seproxy.transfer.client import TransferClient
from tests.conftest import free_port, wait_for
from tests.fixtures.servers import stop_process, wait_for_port
from tests.fixtures.services import REPO_ROOT, SEPROXY_SECTION, start_serve, stop_serve

pytestmark = pytest.mark.slow

SERVICE = "DataManagement/StorageElementProxy"
SE = "SE-LOCAL"
HAPROXY_CFG = REPO_ROOT / "config" / "haproxy.cfg.example"
WORKERS, ROUNDS = 3, 8
KILL_AFTER = 12  # flows finished before the kill
ATTEMPTS = 6


@dataclass
class Node:
    name: str
    dips: int
    http: int
    proc: subprocess.Popen | None = None


@dataclass
class Cluster:
    data: Path
    nodes: list[Node]
    lb_dips: int
    lb_http: int
    haproxy: subprocess.Popen

    @property
    def url(self) -> str:
        return f"dips://127.0.0.1:{self.lb_dips}/{SERVICE}"

    def node_url(self, node: Node) -> str:
        return f"dips://127.0.0.1:{node.dips}/{SERVICE}"

    def clients(self, url: str | None = None) -> tuple[RPCClient, TransferClient]:
        cfg = load_config(argparse.Namespace(data_dir=str(self.data)))
        kwargs = {"config": cfg, "proxyLocation": str(self.data / "proxy.pem"),
                  "useCertificates": False, "encoding": "dencode", "timeout": 60}
        return RPCClient(url or self.url, **kwargs), TransferClient(url or self.url, **kwargs)


def _serve(data: Path, node: Node, database: str, lb_http: int) -> subprocess.Popen:
    opts = {"InstanceName": node.name, "Port": node.dips, "HttpPort": node.http,
            "HttpURLHost": "127.0.0.1", "HttpURLPort": lb_http, "Database": database,
            "HttpClaimTimeout": 5, "HttpPurgeInterval": 2, "MaxThreads": 8}
    args = [arg for key, value in opts.items() for arg in ("-o", f"{SEPROXY_SECTION}/{key}={value}")]
    proc, _lines = start_serve(data, *args)
    wait_for_port("127.0.0.1", node.http, proc)
    return proc


@pytest.fixture
def cluster(tmp_path, mariadb_url):
    data = tmp_path / "site"
    nodes = [Node(f"node{i}", free_port(), free_port()) for i in (1, 2, 3)]
    lb_dips, lb_http = free_port(), free_port()
    haproxy = None
    try:
        for node in nodes:  # one after the other: the first creates the development site
            node.proc = _serve(data, node, mariadb_url, lb_http)
        env = {**os.environ, "SEPROXY_LB_DIPS": f"127.0.0.1:{lb_dips}",
               "SEPROXY_LB_HTTP": f"127.0.0.1:{lb_http}"}
        for index, node in enumerate(nodes, 1):
            env[f"SEPROXY_NODE{index}_DIPS"] = f"127.0.0.1:{node.dips}"
            env[f"SEPROXY_NODE{index}_HTTP"] = f"127.0.0.1:{node.http}"
        haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(HAPROXY_CFG)], env=env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", lb_dips, haproxy)
        wait_for_port("127.0.0.1", lb_http, haproxy)
        yield Cluster(data, nodes, lb_dips, lb_http, haproxy)
    finally:
        if haproxy is not None:
            stop_process(haproxy)
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                stop_serve(node.proc)


class Serving:
    """True once the same client connection to the node's DISET port is established in two
    polls in a row: a call in progress (DIRAC opens one connection per call), not one of
    HAProxy's short health checks. (HTTP is not watched: HAProxy keeps idle connections to
    the HTTP port open for reuse.)"""

    def __init__(self, node: Node) -> None:
        self.node, self.seen = node, set()

    def __call__(self) -> bool:
        now = {conn.raddr.port
               for conn in psutil.Process(self.node.proc.pid).net_connections("tcp")
               if conn.status == psutil.CONN_ESTABLISHED and conn.laddr and conn.raddr
               and conn.laddr.port == self.node.dips}
        lasting, self.seen = now & self.seen, now
        return bool(lasting)


def http_get(port: int, key: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/" + key)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@dataclass
class Run:
    flows: Counter = field(default_factory=Counter)       # finished flows by kind
    errors: list[str] = field(default_factory=list)       # client-visible errors, one line each
    stored: dict[str, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def done(self) -> int:
        with self.lock:
            return sum(self.flows.values())

    def error(self, what: str) -> None:
        with self.lock:
            self.errors.append(" ".join(what.split())[:200])


def _attempt(run: Run, kind: str, flow) -> None:
    for _ in range(ATTEMPTS):
        try:
            problem = flow()
        except Exception as exc:  # noqa: BLE001 - whatever the client raised is what it saw
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            with run.lock:
                run.flows[kind] += 1
            return
        run.error(f"{kind}: {problem}")
    raise AssertionError(f"{kind} failed {ATTEMPTS} times: {run.errors[-3:]}")


def _put(cluster: Cluster, local: Path, lfn: str) -> str | None:
    rpc, transfer = cluster.clients()
    sent = transfer.sendFile(str(local), f"putFile/{local.name}")
    if not sent["OK"]:
        return f"sendFile: {sent['Message']}"
    uploaded = rpc.uploadFile(SE, lfn)
    return None if uploaded["OK"] else f"uploadFile: {uploaded['Message']}"


def _get(cluster: Cluster, lfn: str, out: Path, data: bytes) -> str | None:
    rpc, transfer = cluster.clients()
    prepared = rpc.prepareFile(SE, lfn)
    if not prepared["OK"]:
        return f"prepareFile: {prepared['Message']}"
    received = transfer.receiveFile(str(out), f"getFile/{Path(lfn).name}")
    if not received["OK"]:
        return f"receiveFile: {received['Message']}"
    return None if out.read_bytes() == data else "receiveFile: wrong bytes"


def _via_http(cluster: Cluster, lfn: str, data: bytes) -> str | None:
    rpc, _ = cluster.clients()
    prepared = rpc.prepareFileForHTTP(lfn)
    if not prepared["OK"]:
        return f"prepareFileForHTTP: {prepared['Message']}"
    status, body = http_get(cluster.lb_http, prepared["HttpKey"])
    if status != 200:
        return f"GET: HTTP {status}"
    return None if body == data else "GET: wrong bytes"


def _seproxy_worker(cluster: Cluster, run: Run, worker: int, tmp: Path) -> None:
    for rnd in range(ROUNDS):
        data = os.urandom(1_500_000 + 50_000 * worker + rnd)
        name = f"w{worker}-r{rnd}.bin"
        lfn, local = f"/dirac/lb/{name}", tmp / name
        local.write_bytes(data)
        _attempt(run, "put", functools.partial(_put, cluster, local, lfn))
        with run.lock:
            run.stored[lfn] = data
        _attempt(run, "get", functools.partial(_get, cluster, lfn, tmp / f"{name}.back", data))
        _attempt(run, "http", functools.partial(_via_http, cluster, lfn, data))


def _dirac_flow(cluster: Cluster, client, local: Path, lfn: str, data: bytes,
                outcomes: list) -> str | None:
    back = local.with_name(local.name + ".back")
    back.unlink(missing_ok=True)
    name = local.name
    results = client.run(
        {"transfer": cluster.url, "method": "sendFile", "args": [str(local), f"putFile/{name}"]},
        {"rpc": cluster.url, "method": "uploadFile", "args": [SE, lfn]},
        {"rpc": cluster.url, "method": "prepareFile", "args": [SE, lfn]},
        {"transfer": cluster.url, "method": "receiveFile", "args": [str(back), f"getFile/{name}"]})
    for step, outcome in zip(("sendFile", "uploadFile", "prepareFile", "receiveFile"), results, strict=False):
        if not outcome.ok:
            return f"DIRAC {step}: {outcome.error}"
        outcomes.append((step, outcome.value.get("OK")))
        if not outcome.value.get("OK"):
            return f"DIRAC {step}: {outcome.value.get('Message')}"
    return None if back.read_bytes() == data else "DIRAC receiveFile: wrong bytes"


def _dirac_worker(cluster: Cluster, run: Run, client, tmp: Path, outcomes: list) -> None:
    for rnd in range(4):
        name = f"dirac-{rnd}.bin"
        data = os.urandom(300_000 + rnd)
        lfn, local = f"/dirac/lb/{name}", tmp / name
        local.write_bytes(data)
        _attempt(run, "dirac", functools.partial(_dirac_flow, cluster, client, local, lfn, data, outcomes))
        with run.lock:
            run.stored[lfn] = data


def test_three_instances_behind_haproxy_one_killed(cluster, dirac9_client, tmp_path):
    run = Run()
    # keys issued before the kill: by the instance that will die (its own port) and via the LB
    victim = cluster.nodes[1]
    outstanding: dict[str, bytes] = {}
    for index in range(6):
        data = os.urandom(100_000 + index)
        name = f"key-{index}.bin"
        (tmp_path / name).write_bytes(data)
        rpc, transfer = cluster.clients(cluster.node_url(victim) if index < 4 else None)
        assert transfer.sendFile(str(tmp_path / name), f"putFile/{name}")["OK"]
        assert rpc.uploadFile(SE, f"/dirac/keys/{name}")["OK"]
        prepared = rpc.prepareFileForHTTP(f"/dirac/keys/{name}")
        assert prepared["OK"], prepared
        assert prepared["HttpURL"] == f"http://127.0.0.1:{cluster.lb_http}/{prepared['HttpKey']}"
        outstanding[prepared["HttpKey"]] = data

    # a download the victim is serving when it dies: its claim lapses, a survivor serves the key
    big = os.urandom(48 << 20)  # more than the socket buffers hold: the victim's send blocks
    (cluster.data / "storage" / "dirac" / "keys").mkdir(parents=True, exist_ok=True)
    (cluster.data / "storage" / "dirac" / "keys" / "big.bin").write_bytes(big)
    rpc, _ = cluster.clients(cluster.node_url(victim))
    held_key = rpc.prepareFileForHTTP("/dirac/keys/big.bin")["HttpKey"]
    held = http.client.HTTPConnection("127.0.0.1", victim.http, timeout=60)
    held.request("GET", "/" + held_key)
    held_response = held.getresponse()
    assert held_response.status == 200  # claimed by the victim, body pending

    client = dirac9_client.with_(proxy=cluster.data / "proxy.pem",
                                 cert_dir=cluster.data / "pki" / "certificates")
    dirac_outcomes: list = []
    failures: list[BaseException] = []

    def guarded(target, *args) -> None:
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    threads = [threading.Thread(target=guarded, args=(_seproxy_worker, cluster, run, w, tmp_path),
                                daemon=True) for w in range(WORKERS)]
    threads.append(threading.Thread(target=guarded, daemon=True,
                                    args=(_dirac_worker, cluster, run, client, tmp_path, dirac_outcomes)))
    for thread in threads:
        thread.start()
    assert wait_for(lambda: run.done() >= KILL_AFTER or failures, 300, 0.05), "no progress"
    # kill while the victim is serving: a client connection to it is open
    assert wait_for(Serving(victim), 60, 0.02), "the victim never got a call"
    os.kill(victim.proc.pid, signal.SIGKILL)
    killed_at = run.done()
    victim.proc.wait(timeout=30)
    for thread in threads:
        thread.join(timeout=600)
    assert not failures, failures
    assert not any(thread.is_alive() for thread in threads)

    # every key issued before the kill is served by a survivor, once
    held_response.close()
    held.close()  # the download cut by the kill: after HttpClaimTimeout a survivor serves it
    taken_over = wait_for(lambda: http_get(cluster.lb_http, held_key) == (200, big), 60, 0.1)
    assert taken_over
    assert http_get(cluster.lb_http, held_key)[0] == 401
    served = 0
    for key, data in outstanding.items():
        status, body = http_get(cluster.lb_http, key)
        assert (status, body == data) == (200, True), status
        served += 1
        assert http_get(cluster.lb_http, key)[0] == 401

    # no file lost or partial: the storage holds exactly the stored bytes, nothing else
    storage = cluster.data / "storage"
    for lfn, data in run.stored.items():
        assert (storage / lfn.lstrip("/")).read_bytes() == data, lfn
    listed = {str(p.relative_to(storage)) for p in storage.rglob("*") if p.is_file()}
    temporaries = {name for name in listed if is_temp_name(Path(name).name)}
    expected = ({lfn.lstrip("/") for lfn in run.stored} | {f"dirac/keys/key-{i}.bin" for i in range(6)}
                | {"dirac/keys/big.bin"})
    # a put into the File SE cut by the kill leaves at most its hidden temporary, never a file
    # under an LFN (removed by the storage orphan clean-up when that instance starts again)
    assert listed - temporaries - {"dirac/user/hello.txt"} == expected
    # staged files left in the cache (flows cut by the kill) are complete copies
    sources = {Path(lfn).name: data for lfn, data in run.stored.items()}
    for staged in (cluster.data / "cache" / "ns").rglob("*"):
        if staged.is_file():
            assert staged.read_bytes() == sources[staged.name], staged

    survivors_ok = all(node.proc.poll() is None for node in cluster.nodes if node is not victim)
    assert survivors_ok
    figures = {"flows": dict(run.flows), "flows_before_kill": killed_at,
               "client_visible_errors": len(run.errors), "errors": run.errors,
               "files_verified": len(run.stored), "outstanding_keys_served": served,
               "cut_download_served_by_survivor": taken_over,
               "storage_temporaries_left": len(temporaries),
               "dirac_calls": len(dirac_outcomes)}
    print("FAILOVER " + json.dumps(figures))
    assert sum(run.flows.values()) == WORKERS * ROUNDS * 3 + 4
