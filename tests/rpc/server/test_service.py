"""Service behaviour: bad proposals, banned IPs, ThreadLimit, handshake timeout, loading, reactor."""

from __future__ import annotations

import select
import socket
import threading

import pytest

from seproxy.errors import ConfigError
from seproxy.returnvalues import S_ERROR, S_OK
from seproxy.rpc.client.base import RPCClient
from seproxy.rpc.server.handler import RequestHandler
from seproxy.rpc.server.reactor import ServiceReactor
from seproxy.rpc.server.service import Service
from seproxy.rpc.wire import codec
from tests.fixtures.services import service_config
from tests.rpc.handlers import RPCTestHandler


def recv_until_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = bytearray()
    while chunk := sock.recv(65536):
        received += chunk
    return bytes(received)


def decoded_frames(data: bytes) -> list[object]:
    """The decoded payloads of the ``<len>:<payload>`` frames in ``data``."""
    values = []
    while data:
        length, _, rest = data.partition(b":")
        values.append(codec.decode(rest[: int(length)]))
        data = rest[int(length):]
    return values


def raw_exchange(port: int, data: bytes) -> tuple[object, bytes]:
    """Send raw bytes, read until the server closes: (first decoded answer or None, rest)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = recv_until_close(sock)
    if not received:
        return None, b""
    length, _, rest = received.partition(b":")
    return codec.decode(rest[: int(length)]), rest[int(length):]


def frame(payload: bytes) -> bytes:
    return b"%d:%s" % (len(payload), payload)


@pytest.fixture(scope="module")
def svc(seproxy_service_module):
    return seproxy_service_module(RPCTestHandler, name="Test/Proposals")


@pytest.mark.parametrize("payload", [
    b"[1, 2]",
    b'{"OK": true, "Value": "garbage"}',
    b'{"OK": false, "Message": "x"}',
    b'{"OK": true, "Value": [["Test/Proposals"], ["RPC", "ping"], ""]}',
    b'{"OK": true, "Value": [["Test/Proposals", "None", "x"], ["RPC", 5], ""]}',
    b'{"OK": true, "Value": [["Test/Proposals", "None", "x"], ["RPC", "ping"], {"a": 1}]}',
    b"not a value at all",
])
def test_malformed_proposals_get_invalid_action_proposal(svc, payload):
    answer, rest = raw_exchange(svc.port, frame(payload))
    assert answer["OK"] is False and answer["Message"] == "Invalid action proposal"
    assert answer["CallStack"] == [] and rest == b""
    assert svc.client().ping()["OK"]


def test_oversized_proposal_is_refused_without_buffering(svc):
    answer, _ = raw_exchange(svc.port, b"99999999:" + b"x" * 20000)
    assert answer["Message"] == "Invalid action proposal"


def test_wrong_service_and_action_messages(svc):
    answer, _ = raw_exchange(svc.port, frame(
        b'{"OK": true, "Value": [["Nope/Nope", "None", "x"], ["RPC", "ping"], "", "9.1.22"]}'))
    assert answer["Message"] == "Nope/Nope is not up in this server"
    answer, _ = raw_exchange(svc.port, frame(
        b'{"OK": true, "Value": [["Test/Proposals", "None", "x"], ["Bogus", "ping"], "", "9.1.22"]}'))
    assert answer["Message"] == "Bogus is not a known action type"


def test_message_action_is_accepted_then_closed(svc):
    answer, rest = raw_exchange(svc.port, frame(
        b'{"OK": true, "Value": [["Test/Proposals", "None", "x"], ["Message", "Note"], "", "9.1.22"]}'))
    assert answer == {"OK": True, "Value": None} and rest == b""


def test_three_element_proposal_is_accepted(svc):
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as sock:
        sock.sendall(frame(b'{"OK": true, "Value": [["Test/Proposals", "None"], ["RPC", "info"], ""]}'))
        sock.sendall(frame(b'{"OK": true, "Value": []}'))
        info = decoded_frames(recv_until_close(sock))[1]["Value"]
    assert info["version"] is None and info["vo"] == "dirac"


def test_banned_ip_is_closed_at_once(seproxy_service):
    svc = seproxy_service(cfg_text="Registry\n{\n  BannedIPs = 127.0.0.1\n}\n")
    answer, _ = raw_exchange(svc.port, frame(b"{}"))
    assert answer is None
    assert svc.service.context.stats["banned"] == 1


class Gate:
    """A listening socket the ``waitOn`` handler method connects to; closing releases it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []

    def wait_entered(self, count: int, timeout: float = 60) -> None:
        while len(self.held) < count:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            assert ready, f"only {len(self.held)} of {count} requests reached the handler"
            self.held.append(self.sock.accept()[0])

    def nobody_waiting(self, within: float) -> bool:
        return not select.select([self.sock], [], [], within)[0]

    def release(self) -> None:
        for conn in self.held:
            conn.close()
        self.held = []

    def open_wide(self) -> threading.Event:
        """From now on release everybody at once (a thread accepts and closes); set the
        returned event to stop."""
        self.release()
        done = threading.Event()

        def run() -> None:
            while not done.is_set():
                try:
                    if select.select([self.sock], [], [], 0.1)[0]:
                        self.sock.accept()[0].close()
                except (OSError, ValueError):  # the gate was closed
                    return

        threading.Thread(target=run, daemon=True).start()
        return done

    def close(self) -> None:
        self.release()
        self.sock.close()


def test_thread_limit_per_method(seproxy_service):
    svc = seproxy_service(RPCTestHandler, options={"MaxThreads": 4, "ThreadLimit": {"RPC": {"waitOn": 1}}})
    gate = Gate()
    results: list = []
    callers = [threading.Thread(target=lambda: results.append(svc.client().waitOn(gate.port))) for _ in range(2)]
    try:
        for caller in callers:
            caller.start()
        gate.wait_entered(1)
        assert gate.nobody_waiting(0.5)  # the second call waits for the method's semaphore
        assert svc.client().echo("other methods still run")["OK"]
        gate.release()
        gate.wait_entered(1)
        gate.release()
        for caller in callers:
            caller.join(30)
    finally:
        gate.close()
    assert [r["Value"] for r in results] == ["released", "released"]


def test_silent_client_cannot_hold_a_worker(seproxy_service):
    svc = seproxy_service(protocol="dips", options={"MaxThreads": 1, "HandshakeTimeout": 1})
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10):
        result = svc.client().echo("served after the silent client timed out")
    assert result["OK"], result


def test_handler_loaded_from_handler_path_and_dirac_convention(tmp_path, monkeypatch):
    from pathlib import Path
    handlers = Path(__file__).parent.parent / "handlers.py"
    cfg = service_config("Test/Loaded", options={"HandlerPath": str(handlers)})
    with Service(cfg, "Test/Loaded") as service:
        assert service.handler_class.__name__ == "RPCTestHandler"
        client = RPCClient(service.url.replace(service.url.split("/")[2], f"127.0.0.1:{service.port}"), config=cfg)
        assert client.add(2, 3)["Value"] == 5
    package = tmp_path / "MySystem" / "Service"
    package.mkdir(parents=True)
    (tmp_path / "MySystem" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "ThingHandler.py").write_text(
        "from seproxy.returnvalues import S_OK\nfrom seproxy.rpc.server.handler import RequestHandler\n"
        "class ThingHandler(RequestHandler):\n    types_thing = []\n"
        "    def export_thing(self):\n        return S_OK('thing')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = service_config("My/Thing")
    with Service(cfg, "My/Thing") as service:
        client = RPCClient(f"dip://127.0.0.1:{service.port}/My/Thing", config=cfg)
        assert client.thing()["Value"] == "thing"


def test_failing_initializer_stops_the_service():
    class Broken(RequestHandler):
        @classmethod
        def initializeHandler(cls, serviceInfo):
            return S_ERROR("no database")

    with pytest.raises(ConfigError, match="Error while initializing Test/Broken: no database"):
        Service(service_config("Test/Broken"), "Test/Broken", handler_class=Broken).start()

    class NotDict(RequestHandler):
        @classmethod
        def initializeHandler(cls, serviceInfo):
            return None

    with pytest.raises(ConfigError, match="must return S_OK/S_ERROR"):
        Service(service_config("Test/Broken"), "Test/Broken", handler_class=NotDict).start()


def test_several_services_in_one_process():
    cfg = service_config("Test/One")
    cfg.merge_text(service_config("Test/Two").serialize())

    class Two(RequestHandler):
        types_two = []

        def export_two(self):
            return S_OK(2)

    handlers = {"Test/One": RequestHandler, "Test/Two": Two}
    with ServiceReactor(cfg, ["Test/One", "Test/Two"], handler_classes=handlers) as reactor:
        one, two = reactor.services
        assert one.port != two.port
        assert RPCClient(f"dip://127.0.0.1:{one.port}/Test/One", config=cfg).ping()["Value"]["name"] == "Test/One"
        assert RPCClient(f"dip://127.0.0.1:{two.port}/Test/Two", config=cfg).two()["Value"] == 2
        assert RPCClient(f"dip://127.0.0.1:{one.port}/Test/One", config=cfg).two()["Message"] == "Unknown method two"


def test_ipv6_loopback(seproxy_service):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    svc = seproxy_service(options={"BindAddress": "::1"})
    client = RPCClient(f"dip://[::1]:{svc.port}/{svc.name}", config=svc.cfg)
    info = client.whoami()
    assert info["OK"], info
    assert client.echo("v6")["Value"] == "v6"


def test_client_retry_rules(svc):
    """A refused proposal is proposed again 3 more times; ``Unauthorized query`` at once."""
    stats = svc.service.context.stats
    before = stats["accepted"]
    wrong = RPCClient(f"dip://127.0.0.1:{svc.port}/Wrong/Name", config=svc.cfg, retryDelay=0.01)
    result = wrong.ping()
    assert result["Message"] == "Wrong/Name is not up in this server" and "CallStack" not in result
    assert stats["accepted"] - before == 4
    before = stats["accepted"]
    assert svc.client().admin()["Errno"] == 1111
    assert stats["accepted"] - before == 1


def test_action_table_comes_from_whoever_builds_the_service():
    """The framework serves no FileTransfer of its own: without a server in ``actions`` the
    type is refused like an unknown one; with one, the server gets the accepted action."""
    from seproxy.rpc.client.base import BaseClient

    cfg = service_config("Test/Actions", authorization={"Default": "all"})
    with Service(cfg, "Test/Actions", handler_class=RequestHandler) as bare:
        client = BaseClient(f"dip://127.0.0.1:{bare.port}/Test/Actions", config=cfg, retryDelay=0)
        result, transport = client._connect_and_propose("FileTransfer", "FromClient")
        assert transport is None
        assert result["Message"] == "FileTransfer is not a known action type"
    served = []

    def serve(handler, name, connection, encoding):
        served.append((type(handler).__name__, name, encoding))
        return S_OK("served")

    with Service(cfg, "Test/Actions", handler_class=RequestHandler, actions={"FileTransfer": serve}) as svc:
        client = BaseClient(f"dip://127.0.0.1:{svc.port}/Test/Actions", config=cfg)
        result, transport = client._connect_and_propose("FileTransfer", "FromClient")
        assert result["OK"], result
        try:
            answer = transport.receive_data()
        finally:
            transport.close()
    assert answer == {"OK": True, "Value": "served"}
    assert served == [("RequestHandler", "FromClient", svc.encoding)]


def test_builtin_handlers_are_given_by_whoever_builds_the_service():
    class Mine(RequestHandler):
        types_mine = []

        def export_mine(self):
            return S_OK("mine")

    cfg = service_config("Some/Builtin")
    with Service(cfg, "Some/Builtin", handlers={"Some/Builtin": Mine}) as service:
        assert RPCClient(f"dip://127.0.0.1:{service.port}/Some/Builtin", config=cfg).mine()["Value"] == "mine"
    with pytest.raises(ConfigError, match="Cannot import handler module SomeSystem.Service.BuiltinHandler"):
        Service(cfg, "Some/Builtin").start()
