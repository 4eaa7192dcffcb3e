"""RequestHandler dispatch over a real service: DIRAC's checks and exact messages (PROTOCOL 5.2, 7.8)."""

from __future__ import annotations

import datetime
import os

import pytest

from tests.conftest import wait_for
from tests.rpc.handlers import RPCTestHandler

PING_KEYS = ["version", "time", "host uptime", "service start time", "service uptime", "load", "name",
             "URL", "cpu times"]


@pytest.fixture(scope="module", params=["json", "dencode"])
def svc(request, seproxy_service_module):
    return seproxy_service_module(RPCTestHandler, name="Test/Handler", encoding=request.param,
                                  options={"Colour": "blue"})


@pytest.fixture(params=["json", "dencode"])
def client(request, svc):
    return svc.client(encoding=request.param)


def test_ping_has_dirac_keys_in_order(client):
    result = client.ping()
    assert result["OK"], result
    value = result["Value"]
    assert list(value) == PING_KEYS
    assert value["name"] == "Test/Handler"
    assert isinstance(value["time"], datetime.datetime)
    assert list(value["cpu times"]) == ["user time", "system time", "children user time",
                                        "children system time", "elapsed real time"]
    assert len(value["load"].split(" ")) == 3


def test_ping_clock_values_change_between_calls(client):
    """Only the clocks of a ping change between calls (the rest may be cached)."""
    first = client.ping()["Value"]

    def utcnow() -> datetime.datetime:
        return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)

    assert wait_for(lambda: utcnow() > first["time"], 5, 0.05)
    second = client.ping()["Value"]
    assert second["time"] > first["time"]
    assert second["service start time"] == first["service start time"]
    assert second["service uptime"] >= first["service uptime"]
    assert second["cpu times"]["elapsed real time"] > first["cpu times"]["elapsed real time"]
    assert all(isinstance(v, float) for v in second["cpu times"].values())
    assert isinstance(second["host uptime"], int) and second["host uptime"] >= first["host uptime"]
    assert [first[k] for k in ("version", "name", "URL")] == [second[k] for k in ("version", "name", "URL")]


def test_ping_load_text_is_the_current_load():
    """The load text is rebuilt when the kernel's averages change, reused otherwise."""
    from seproxy.rpc.server import handler

    before = " ".join(str(x) for x in os.getloadavg())
    text = handler._load_text()
    after = " ".join(str(x) for x in os.getloadavg())
    assert text in (before, after)
    assert len(text.split(" ")) == 3 and all(float(x) >= 0 for x in text.split(" "))
    stale = handler._LoadText()
    stale.cache = ((-1.0, -1.0, -1.0), "stale")  # averages the kernel never reports
    assert stale() != "stale" and len(stale().split(" ")) == 3
    again = stale()
    assert stale() is again or stale.cache[0] != os.getloadavg()  # reused while unchanged


def test_echo_and_whoami_over_dip(client):
    assert client.echo("hello")["Value"] == "hello"
    assert client.whoami() == {"OK": True, "Value": {"properties": []}, "rpcStub": client.whoami()["rpcStub"]}


@pytest.mark.parametrize("method,args,message", [
    ("echo", [5], "Type mismatch in parameter 0 (starting with param 0) Received <class 'int'>, "
                  "expected <class 'str'>"),
    ("echo", [], "Function echo expects at least 1 arguments"),
    ("echo", ["a", "b"], "Server error while serving echo: RequestHandler.export_echo() takes 1 positional "
                         "argument but 2 were given"),
    ("noSuchMethod", [], "Unknown method noSuchMethod"),
    ("boom", [], "Server error while serving boom: kaboom"),
    ("notDict", [], "Method notDict for action RPC does not return a S_OK/S_ERROR!"),
    ("noTypes", [], "Handler error for server Test/Handler while processing method noTypes"),
    ("anyOf", [1, 2], "Type mismatch in parameter 0 (starting with param 0) Received <class 'int'>, "
                      "expected (<class 'str'>, <class 'list'>)"),
    ("add", [1, 2.5], "Type mismatch in parameter 1 (starting with param 0) Received <class 'float'>, "
                      "expected <class 'int'>"),
    ("refreshConfiguration", [True], "Unauthorized query ( 1111 : Unauthorized query)"),
])
def test_errors_have_dirac_messages(client, method, args, message):
    result = client.executeRPC(method, *args)
    assert result["OK"] is False
    assert result["Message"] == message
    assert "CallStack" not in result


def test_malformed_types_entry(client):
    result = client.badTypes(1)
    assert result["Message"].startswith("Error in parameter check: ")


def test_results_are_stripped_of_local_diagnostics(client):
    result = client.withStack()
    assert result["Message"] == "failed here" and "CallStack" not in result and "ExecInfo" not in result


def test_type_rules(client):
    assert client.add(True, 2)["Value"] == 3  # bool passes for int, like isinstance
    assert client.anyOf(["x"], None)["Value"] == [["x"], None]
    assert client.anyOf("s", {"any": "thing"})["Value"] == ["s", {"any": "thing"}]


def test_unencodable_result_closes_like_dirac(client, caplog):
    result = client.unencodable()
    assert result["OK"] is False and "Peer closed connection" in result["Message"]
    assert "Cannot encode the answer of unencodable" in caplog.text
    assert client.echo("still up")["OK"]


def test_srv_api(client, svc):
    info = client.info()["Value"]
    assert info["setup"] == "None" and info["vo"] == "dirac" and info["version"] == "9.1.22"
    assert info["action"] == ["RPC", "info"] and info["name"] == "Test/Handler"
    assert info["url"] == svc.service.url and info["initialized"] is True
    assert info["formatted"].startswith("(127.0.0.1:") and info["trid"].startswith(f"127.0.0.1:{svc.port}->")
    assert client.option("Colour")["Value"] == "blue"
    assert client.option("Missing")["Value"] == "absent"


def test_initializers_ran_once(svc):
    assert svc.service.handler_class.init_calls.count("Test/Handler") >= 1
    assert RPCTestHandler.module_init == "Test/Handler"


def test_unencodable_arguments_raise_like_dirac_client(client):
    with pytest.raises(Exception):  # noqa: B017 - DIRAC's client raises whatever its encoder raises
        client.echo({1, 2})
    assert client.echo("fine")["Value"] == "fine"


def test_rpc_stub_keeps_dirac_kwargs_only(svc):
    stub = svc.client(encoding="json", timeout=30).echo("x")["rpcStub"]
    assert stub == [[svc.url, {"timeout": 120, "skipCACheck": False, "keepAliveLapse": 150}], "echo", ["x"]]
