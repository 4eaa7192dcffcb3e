"""Connection reuse (seproxy extension, docs/PROTOCOL-EXTENSIONS.md): many calls, one connection."""

from __future__ import annotations

import socket
import threading

import pytest

from seproxy.rpc.client import reuse
from seproxy.rpc.wire import codec
from tests.conftest import wait_for
from tests.rpc.handlers import RPCTestHandler


@pytest.fixture(scope="module")
def svc(seproxy_service_module):
    return seproxy_service_module(RPCTestHandler, name="Test/Reuse", protocol="dips")


def accepted(svc) -> int:
    """TCP connections the service accepted so far."""
    return svc.service.context.stats["accepted"]


@pytest.mark.parametrize("encoding", ["json", "dencode"])
def test_many_calls_one_connection(svc, encoding):
    client = svc.client(reuseConnection=True, encoding=encoding)
    client.close()
    before = accepted(svc)
    for index in range(50):
        assert client.add(index, 1)["Value"] == index + 1
    assert client.echo("x")["rpcStub"][1:] == ["echo", ["x"]]
    assert accepted(svc) - before == 1, "one connection for all the calls"
    client.close()


def test_each_call_is_authorised_on_its_own(svc, pki):
    user = svc.client(reuseConnection=True)
    denied = user.admin()
    assert denied["OK"] is False and denied["Errno"] == 1111 and "CallStack" not in denied
    assert user.whoami()["Value"]["group"] == "dirac_user"  # same session, still usable
    admin = svc.client(reuseConnection=True, proxyLocation=str(pki.proxy(group="dirac_admin")))
    assert admin.admin()["Value"] == ["CSAdministrator"]
    assert admin.whoami()["Value"]["properties"] == ["CSAdministrator", "NormalUser"]
    assert user.whoami()["Value"]["username"] == "testuser"


def test_configuration_change_reauthorises_calls_of_an_open_session(seproxy_service):
    """A session remembers allowed methods per configuration generation: after a change
    the same connection's next call is checked again (and may now be refused)."""
    svc = seproxy_service(RPCTestHandler, name="Test/Regen", protocol="dips")
    rule = "/Systems/Test/Services/Regen/Authorization/add"
    client = svc.client(reuseConnection=True)
    client.close()
    before = accepted(svc)
    assert client.add(1, 2)["Value"] == 3
    assert client.add(2, 2)["Value"] == 4  # from the session's cache
    svc.cfg.setOption(rule, "CSAdministrator")
    denied = client.add(3, 2)
    assert denied["OK"] is False and denied["Errno"] == 1111, denied
    svc.cfg.setOption(rule, "authenticated")
    assert client.add(4, 2)["Value"] == 6
    assert accepted(svc) - before == 1, "all calls went over the one session"
    client.close()


def test_callers_changing_their_credentials_dict_do_not_leak_into_the_next_call(svc):
    """Each call of a session gets a fresh copy of the credentials (lists included)."""
    client = svc.client(reuseConnection=True)
    first = client.mutateCredentials()
    assert first["OK"], first
    second = client.mutateCredentials()
    assert second["Value"] == first["Value"], "the second call saw the first call's changes"
    client.close()


def test_errors_inside_a_session_keep_it_usable(svc):
    client = svc.client(reuseConnection=True)
    assert client.boom()["Message"] == "Server error while serving boom: kaboom"
    assert client.nope()["Message"] == "Unknown method nope"
    assert client.echo(1)["Message"].startswith("Type mismatch in parameter 0")
    assert client.echo("fine")["Value"] == "fine"


def test_concurrent_reuse(svc):
    errors: list = []

    def work(offset: int) -> None:
        client = svc.client(reuseConnection=True)
        for index in range(30):
            result = client.add(offset, index)
            if result.get("Value") != offset + index:
                errors.append(result)

    threads = [threading.Thread(target=work, args=(n * 1000,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert svc.client().ping()["OK"]


def test_dirac_like_server_refuses_and_client_falls_back(seproxy_service):
    plain = seproxy_service(RPCTestHandler, name="Test/NoReuse", options={"EnableSessions": False})
    before = accepted(plain)
    client = plain.client(reuseConnection=True)
    assert [client.add(i, i)["Value"] for i in range(3)] == [0, 2, 4]
    assert plain.url in reuse.POOL.unsupported
    assert accepted(plain) - before == 4  # the refused session proposal + one connection per call


def test_refusal_is_dirac_unknown_action_type(seproxy_service):
    plain = seproxy_service(name="Test/NoReuse2", options={"EnableSessions": False})
    proposal = codec.encode({"OK": True, "Value": [["Test/NoReuse2", "None", "dirac"], ["Session", "RPC"],
                                                   "", "9.1.22"]}, "json")
    with socket.create_connection(("127.0.0.1", plain.port), timeout=10) as sock:
        sock.sendall(b"%d:%s" % (len(proposal), proposal))
        data = sock.recv(65536)
    answer = codec.decode(data.partition(b":")[2])
    assert answer["Message"] == "Session is not a known action type"


def test_idle_sessions_are_closed_by_the_server(seproxy_service):
    svc = seproxy_service(options={"SessionIdleTimeout": 0.3})
    client = svc.client(reuseConnection=True)
    assert client.echo("a")["OK"]
    service = svc.service
    assert wait_for(lambda: not (service._parked_count or service.context.connections)), \
        "idle session never closed"
    assert client.echo("b")["Value"] == "b"  # the client notices and opens a new session


@pytest.mark.interop
def test_real_dirac_server_refuses_cleanly(dirac9_service, pki):
    from seproxy.config import Config
    from seproxy.rpc.client.base import RPCClient
    cfg = Config.from_text(f"DIRAC\n{{\n  Security\n  {{\n    CALocation = {pki.ca_dir}\n  }}\n}}\n",
                           use_default=False)
    client = RPCClient(dirac9_service.url, config=cfg, proxyLocation=str(pki.proxy()), reuseConnection=True)
    first = client.echoValue({"k": 1})
    assert first["OK"] and first["Value"] == {"k": 1}
    assert dirac9_service.url in reuse.POOL.unsupported
    assert client.echoValue("again")["Value"] == "again"
