"""seproxy.dirac.configuration with scripted servers: order, failover, outage, local copy.

(The same against real DIRAC Configuration Servers: test_dirac_configuration.py.)"""

from __future__ import annotations

import logging
import zlib

import pytest

from seproxy.config import Config, Registry
from seproxy.dirac.configuration import ConfigurationRefresher, configuration_servers
from seproxy.errors import ConfigError

A, B, C = (f"dips://cs{i}.example.org:9135/Configuration/Server" for i in "abc")


def _data(version: str, extra: str = "", users: tuple[str, ...] = ("alice",)) -> str:
    entries = "".join(f"    {u}\n    {{\n      DN = /CN={u}\n    }}\n" for u in users)
    return (f"DIRAC\n{{\n  Configuration\n  {{\n    Version = {version}\n  }}\n}}\n"
            f"Registry\n{{\n  Users\n  {{\n{entries}  }}\n{extra}}}\n")


class Servers:
    """Scripted servers: url -> CFG text (None: down); records the calls."""

    def __init__(self, **texts: str | None) -> None:
        self.texts = {url: texts.get(name) for name, url in zip("abc", (A, B, C), strict=False)}
        self.calls: list[tuple[str, str]] = []

    def __call__(self, url: str, version: str) -> dict:
        self.calls.append((url, version))
        text = self.texts.get(url)
        if text is None:
            return {"OK": False, "Message": "Can't connect"}
        newest = text.split("Version = ", 1)[1].split("\n", 1)[0]
        value = {"newestVersion": newest}
        if version < newest:
            value["data"] = zlib.compress(text.encode())
        return {"OK": True, "Value": value}


def _cfg(servers: str, local: str = "") -> Config:
    cfg = Config.from_text(f"DIRAC\n{{\n  Configuration\n  {{\n    Servers = {servers}\n  }}\n}}\n")
    if local:
        cfg.merge_text(local)
    return cfg


def test_servers_preferred_patterns_first_then_the_rest():
    cfg = _cfg(f"{A}, {B}, {C}", "DIRAC\n{\n  PreferredURLPatterns = .*csc.*\n}\n")
    order = configuration_servers(cfg)
    assert order[0] == C and set(order) == {A, B, C}


def test_gateway_replaces_the_server_list():
    cfg = _cfg(A, "LocalSite\n{\n  Site = LCG.Here.org\n}\nDIRAC\n{\n  Gateways\n  {\n"
               "    LCG.Here.org = dips://gw.example.org:9159\n  }\n}\n")
    assert configuration_servers(cfg) == ["dips://gw.example.org:9159/Configuration/Server"]


def test_initial_fetch_local_files_win_and_version_sent(tmp_path):
    cfg = _cfg(A, "Registry\n{\n  Users\n  {\n    alice\n    {\n      DN = /CN=local-alice\n    }\n  }\n}\n")
    servers = Servers(a=_data("2026-01-01 00:00:00", "  DefaultGroup = users\n"))
    refresher = ConfigurationRefresher(cfg, local_copy=tmp_path / "copy.cfg", query=servers)
    refresher.initial()
    assert servers.calls == [(A, "0")]
    assert cfg.getValue("/Registry/DefaultGroup") == "users"          # from the server
    assert cfg.getValue("/Registry/Users/alice/DN") == "/CN=local-alice"  # local wins
    assert (tmp_path / "copy.cfg").read_text().startswith("DIRAC")
    assert (tmp_path / "copy.cfg").stat().st_mode & 0o077 == 0
    generation = cfg.generation
    assert refresher.refresh()
    assert servers.calls[-1] == (A, "2026-01-01 00:00:00")
    assert cfg.generation == generation  # nothing new, nothing changed


def test_failover_to_the_next_server_and_new_data_taken(tmp_path):
    cfg = _cfg(f"{A}, {B}")
    servers = Servers(a=None, b=_data("v2"))
    refresher = ConfigurationRefresher(cfg, local_copy=tmp_path / "copy.cfg", query=servers)
    refresher.initial()
    assert refresher.source == B and refresher.version == "v2"
    servers.texts[B] = _data("v3", users=("alice", "bob"))
    assert refresher.refresh()
    assert Registry(cfg).username_for_dn("/CN=bob") == "bob"


def test_outage_logged_once_and_last_copy_kept(tmp_path, caplog):
    cfg = _cfg(f"{A}, {B}")
    servers = Servers(a=_data("v1"), b=_data("v1"))
    refresher = ConfigurationRefresher(cfg, local_copy=tmp_path / "copy.cfg", query=servers)
    refresher.initial()
    servers.texts = {A: None, B: None}
    with caplog.at_level(logging.WARNING, logger="seproxy.dirac.configuration"):
        results = [refresher.refresh() for _ in range(5)]
        servers.texts[B] = _data("v1")
        assert refresher.refresh()
    assert results == [False] * 5
    assert Registry(cfg).username_for_dn("/CN=alice") == "alice"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("No Configuration Server answers" in m for m in messages) == 1
    assert sum("answers again" in m for m in messages) == 1


def test_bad_data_is_refused_and_the_next_server_asked(tmp_path):
    cfg = _cfg(f"{A}, {B}")

    def query(url: str, version: str) -> dict:
        if url == A:  # announces v9 but sends v1's data
            return {"OK": True, "Value": {"newestVersion": "v9", "data": zlib.compress(_data("v1").encode())}}
        return {"OK": True, "Value": {"newestVersion": "v2", "data": zlib.compress(_data("v2").encode())}}

    for order in ([A, B], [B, A]):
        refresher = ConfigurationRefresher(Config.from_text(cfg.serialize()), query=query)
        refresher.cfg.setOption("/DIRAC/Configuration/Servers", ", ".join(order))
        refresher.initial()
        assert refresher.version == "v2" and refresher.source == B


def test_oversized_or_garbled_data_is_refused(tmp_path, monkeypatch):
    import seproxy.dirac.configuration as module

    monkeypatch.setattr(module, "MAX_DATA_SIZE", 1000)
    big = _data("v2", "  Note = " + "x" * 5000 + "\n")
    for data, expected in ((zlib.compress(big.encode()), "configuration data larger than 1000 bytes"),
                           (b"not zlib", "undecodable configuration data")):
        def query(url: str, version: str, data=data) -> dict:
            return {"OK": True, "Value": {"newestVersion": "v2", "data": data}}

        refresher = ConfigurationRefresher(_cfg(A), query=query)
        assert not refresher.refresh()
        assert refresher.last_errors[0].startswith(f"{A}: {expected}")
        assert refresher.cfg.remote_text is None


def test_no_server_no_copy_is_one_clear_error(tmp_path):
    cfg = _cfg(f"{A}, {B}")
    refresher = ConfigurationRefresher(cfg, local_copy=tmp_path / "copy.cfg", query=Servers())
    with pytest.raises(ConfigError) as info:
        refresher.initial()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("No Configuration Server answered (") and str(tmp_path / "copy.cfg") in message


def test_start_from_the_local_copy_when_every_server_is_down(tmp_path):
    copy = tmp_path / "copy.cfg"
    first = ConfigurationRefresher(_cfg(A), local_copy=copy, query=Servers(a=_data("v5")))
    first.initial()
    cfg = _cfg(A)
    second = ConfigurationRefresher(cfg, local_copy=copy, query=Servers())
    second.initial()
    assert second.version == "v5" and Registry(cfg).username_for_dn("/CN=alice") == "alice"


def test_reload_runs_a_refresh(tmp_path):
    cfg = _cfg(A)
    servers = Servers(a=_data("v1"))
    refresher = ConfigurationRefresher(cfg, query=servers)
    refresher.initial()
    refresher.cfg.setOption("/DIRAC/Configuration/RefreshTime", "3600")
    refresher.start()
    try:
        servers.texts[A] = _data("v2", "  DefaultGroup = fresh\n")
        cfg.reload()  # what refreshConfiguration does
        assert cfg.getValue("/Registry/DefaultGroup") == "fresh"
        servers.texts[A] = None
        with pytest.raises(ConfigError) as info:
            cfg.reload()
        assert str(info.value) == f"Reason(s):\n\t{A}: Can't connect"  # DIRAC's form
        cfg.setOption("/DIRAC/Configuration/MasterServer", B)
        servers.texts[B] = _data("v3", "  DefaultGroup = master\n")
        cfg.reload(from_master=True)  # refreshConfiguration(fromMaster=True)
        assert servers.calls[-1] == (B, "v2") and cfg.getValue("/Registry/DefaultGroup") == "master"
    finally:
        refresher.stop()


# ----------------------------------------------------------------------------- https://


class _TornadoLikeCS:
    """An HTTPS server answering like DIRAC 9's Tornado Configuration Server (POST form
    ``method`` + JSON ``args``, JSON answer, base64 ``data``); requires a client
    certificate from the test CA. A stand-in: DIRAC's own Tornado server needs
    DIRACGrid's tornado fork, which is not on PyPI."""

    def __init__(self, pki, text: str) -> None:
        import http.server
        import json
        import ssl
        import threading
        import urllib.parse
        from base64 import b64encode

        self.text, self.requests = text, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                form = urllib.parse.parse_qs(body)
                version = json.loads(form["args"][0])[0]
                peer = dict(x[0] for x in self.connection.getpeercert()["subject"])
                outer.requests.append((self.path, form["method"][0], version, peer.get("commonName")))
                newest = outer.text.split("Version = ", 1)[1].split("\n", 1)[0]
                value = {"newestVersion": newest}
                if version < newest:
                    value["data"] = b64encode(zlib.compress(outer.text.encode())).decode()
                payload = json.dumps({"OK": True, "Value": value}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(pki.host_cert), str(pki.host_key))
        context.load_verify_locations(capath=str(pki.ca_dir))
        context.verify_mode = ssl.CERT_REQUIRED
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/Configuration/Server"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_https_server_url_is_asked_like_dirac_tornado(pki, tmp_path):
    server = _TornadoLikeCS(pki, _data("2026-02-02 00:00:00"))
    try:
        cfg = _cfg(server.url)
        cfg.merge_text(f"DIRAC\n{{\n  Security\n  {{\n    CertFile = {pki.host_cert}\n"
                       f"    KeyFile = {pki.host_key}\n    CALocation = {pki.ca_dir}\n  }}\n}}\n")
        refresher = ConfigurationRefresher(cfg, local_copy=tmp_path / "copy.cfg")
        refresher.initial()
        assert refresher.refresh()
    finally:
        server.stop()
    assert Registry(cfg).username_for_dn("/CN=alice") == "alice"
    assert server.requests == [
        ("/Configuration/Server", "getCompressedDataIfNewer", "0", "localhost"),  # host certificate
        ("/Configuration/Server", "getCompressedDataIfNewer", "2026-02-02 00:00:00", "localhost")]
