"""Issue 4 interop: a real DIRAC client against seproxy and against DIRAC 9, same handler.

The same ``InteropHandler`` runs on a seproxy service and on a real DIRAC 9.1.22
DISET service (both dips, both answering in the parametrised server encoding).
A real DIRAC client (and then seproxy's RPCClient) runs the battery of
``battery.py`` against both; every answer must be identical after
``compare.normalise`` (what legitimately varies: URL, CallStack, ping values,
secondsLeft).  Identities: dirac_user proxy (full battery), dirac_admin proxy,
limited proxy, host certificate, and a TrustedHost forwarding a user's identity.
A DIRAC 8.0 client (DEncode, 8.0 proposal with a Setup) runs the full battery too.
Both with ``DIRACVersion = 9.1`` against DIRAC 9.1.22 and with ``DIRACVersion = 8.0``
against a real DIRAC 8.0.86 service (``servers_80``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from seproxy.config import Config
from seproxy.rpc.client.base import RPCClient
from tests.interop import battery
from tests.interop.compare import normalise, seconds_left_close, strict_diff
from tests.interop.InteropHandler import InteropHandler

pytestmark = pytest.mark.interop

ENCODINGS = ["json", "dencode"]


@pytest.fixture(scope="module", params=ENCODINGS, ids=[f"server-{e}" for e in ENCODINGS])
def servers(request, seproxy_service_module, dirac_services, tmp_path_factory) -> dict[str, str]:
    """URLs of a seproxy and a DIRAC 9 service running InteropHandler in one encoding."""
    encoding = request.param
    ours = seproxy_service_module(
        InteropHandler, name="Test/Interop", protocol="dips", encoding=encoding,
        options={"StoragePath": str(tmp_path_factory.mktemp("seproxy-interop-store")),
                 "DIRACVersion": "9.1"},
        authorization={"Default": "authenticated"})
    theirs = dirac_services.interop(encoding=encoding)
    return {"encoding": encoding, "seproxy": ours.url, "dirac": theirs.url}


@pytest.fixture(scope="module", params=ENCODINGS, ids=[f"server80-{e}" for e in ENCODINGS])
def servers_80(request, seproxy_service_module, dirac_services, tmp_path_factory) -> dict[str, str]:
    """seproxy with ``DIRACVersion = 8.0`` and a DIRAC 8.0.86 service, InteropHandler on both."""
    encoding = request.param
    ours = seproxy_service_module(
        InteropHandler, name="Test/Interop", protocol="dips", encoding=encoding,
        options={"StoragePath": str(tmp_path_factory.mktemp("seproxy-interop-store80")),
                 "DIRACVersion": "8.0"},
        authorization={"Default": "authenticated"})
    theirs = dirac_services.interop(encoding=encoding, version=8)
    return {"encoding": encoding, "seproxy": ours.url, "dirac": theirs.url}


def _identities(pki) -> dict[str, dict[str, Any]]:
    """DIRAC client settings per identity: proxy file or host certificate (+ forwarding)."""
    host_cfg = ("DIRAC\n{\n  Security\n  {\n"
                f"    CertFile = {pki.host_cert}\n    KeyFile = {pki.host_key}\n  }}\n}}\n")
    return {
        "user": {"proxy": pki.proxy("dirac_user")},
        "admin": {"proxy": pki.proxy("dirac_admin")},
        "limited": {"proxy": pki.proxy("dirac_user", limited=True)},
        "host": {"proxy": None, "cfg_extra": host_cfg, "client": {"useCertificates": True}},
        "forwarded": {"proxy": None, "cfg_extra": host_cfg,
                      "client": {"useCertificates": True, "delegatedDN": pki.user_dn,
                                 "delegatedGroup": "dirac_admin"}},
    }


@pytest.fixture(scope="module")
def identities(pki) -> dict[str, dict[str, Any]]:
    return _identities(pki)


def dirac_answers(client, identity: dict[str, Any], urls: list[str], calls, encoding: str, *,
                  explicit_proxy: bool = False) -> dict:
    """Run ``calls`` against every URL in ONE DIRAC runner process: {(url, name): answer}.

    ``explicit_proxy``: pass the proxy as ``proxyLocation=`` (as the seproxy client
    does, so that both clients' ``rpcStub`` kwargs match) instead of ``X509_USER_PROXY``.
    """
    client = client.with_(proxy=identity["proxy"], cfg_extra=identity.get("cfg_extra", ""),
                          encoding=encoding)
    kwargs = dict(identity.get("client", {}))
    if explicit_proxy and identity["proxy"] is not None:
        kwargs = {"proxyLocation": str(identity["proxy"]), **kwargs}
    jobs = [(url, name, {"rpc": url, "method": method, "args": args, "client": kwargs})
            for url in urls for name, method, args in calls]
    outcomes = client.run(*(job for _, _, job in jobs))
    return {(url, name): outcome.value if outcome.ok else Raised(outcome.error)
            for (url, name, _), outcome in zip(jobs, outcomes, strict=False)}


class Raised:
    """The client raised instead of answering (e.g. DIRAC's JSON encoder on datetime.time).

    Two ``Raised`` compare equal whatever the exception text (DIRAC's and seproxy's
    client raise different exception types for the same unencodable argument).
    """

    def __init__(self, error: str) -> None:
        self.error = error

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Raised)

    def __repr__(self) -> str:
        return f"Raised({self.error!r})"


def compare_answers(answers_a: Callable[[str], Any], answers_b: Callable[[str], Any], calls,
                    url_a: str, url_b: str) -> list[str]:
    """Every difference between the two sides' normalised answers, one line each."""
    problems = []
    for name, method, _args in calls:
        a, b = answers_a(name), answers_b(name)
        diff = strict_diff(normalise(a, method=method, url=url_a), normalise(b, method=method, url=url_b))
        if diff:
            problems.append(f"{name}: {diff}\n    A: {a!r}\n    B: {b!r}")
        elif isinstance(a, dict) and a.get("OK") and isinstance(a.get("Value"), dict) \
                and "secondsLeft" in a["Value"] and not seconds_left_close(a, b):
            problems.append(f"{name}: secondsLeft {a['Value']['secondsLeft']} vs {b['Value']['secondsLeft']}")
    return problems


@pytest.mark.parametrize("client_encoding", ENCODINGS)
def test_dirac_client_full_battery_same_answers(dirac9_client, identities, servers, client_encoding):
    urls = [servers["seproxy"], servers["dirac"]]
    answers = dirac_answers(dirac9_client, identities["user"], urls, battery.CALLS, client_encoding)
    problems = compare_answers(lambda n: answers[(urls[0], n)], lambda n: answers[(urls[1], n)],
                               battery.CALLS, *urls)
    assert not problems, "seproxy (A) vs DIRAC 9 (B), DIRAC client:\n" + "\n".join(problems)
    # and the answers are the meaningful ones (so that two equally broken servers fail):
    dirac = {name: answers[(urls[1], name)] for name, _, _ in battery.CALLS}
    assert dirac["whoami"]["Value"]["username"] == "testuser"
    assert dirac["echo-str"] == {**dirac["echo-str"], "OK": True, "Value": "plain text"}
    assert dirac["unknown-method"]["OK"] is False
    assert dirac["admin-only"]["OK"] is False


def test_dirac8_client_full_battery_same_answers(dirac8_client, identities, servers):
    """DIRAC 8.0 clients (the StorageElementProxy's users; DEncode, 8.0 proposals) too."""
    urls = [servers["seproxy"], servers["dirac"]]
    answers = dirac_answers(dirac8_client, identities["user"], urls, battery.CALLS, "dencode")
    problems = compare_answers(lambda n: answers[(urls[0], n)], lambda n: answers[(urls[1], n)],
                               battery.CALLS, *urls)
    assert not problems, "seproxy (A) vs DIRAC 9 (B), DIRAC 8.0 client:\n" + "\n".join(problems)
    assert answers[(urls[1], "whoami")]["Value"]["username"] == "testuser"


def test_dirac8_client_battery_in_80_mode(dirac8_client, identities, servers_80):
    """DIRACVersion = 8.0 against a real DIRAC 8.0.86 service: every answer of the battery."""
    urls = [servers_80["seproxy"], servers_80["dirac"]]
    answers = dirac_answers(dirac8_client, identities["user"], urls, battery.CALLS, "dencode")
    problems = compare_answers(lambda n: answers[(urls[0], n)], lambda n: answers[(urls[1], n)],
                               battery.CALLS, *urls)
    assert not problems, "seproxy 8.0 (A) vs DIRAC 8.0.86 (B), DIRAC 8.0 client:\n" + "\n".join(problems)
    dirac = {name: answers[(urls[1], name)] for name, _, _ in battery.CALLS}
    assert "URL" not in dirac["ping"]["Value"] and "VO" not in dirac["whoami"]["Value"]
    assert dirac["whoami"]["Value"]["username"] == "testuser"


@pytest.mark.parametrize("identity", ["admin", "limited", "host", "forwarded"])
def test_dirac8_client_identities_in_80_mode(dirac8_client, identities, servers_80, identity):
    urls = [servers_80["seproxy"], servers_80["dirac"]]
    answers = dirac_answers(dirac8_client, identities[identity], urls, battery.IDENTITY_CALLS,
                            "dencode")
    problems = compare_answers(lambda n: answers[(urls[0], n)], lambda n: answers[(urls[1], n)],
                               battery.IDENTITY_CALLS, *urls)
    assert not problems, f"seproxy 8.0 (A) vs DIRAC 8.0.86 (B) as {identity}:\n" + "\n".join(problems)
    assert answers[(urls[1], "whoami")]["OK"]


@pytest.mark.parametrize("identity", ["admin", "limited", "host", "forwarded"])
def test_dirac_client_identities_same_answers(dirac9_client, identities, servers, identity):
    urls = [servers["seproxy"], servers["dirac"]]
    answers = dirac_answers(dirac9_client, identities[identity], urls, battery.IDENTITY_CALLS,
                            servers["encoding"])
    problems = compare_answers(lambda n: answers[(urls[0], n)], lambda n: answers[(urls[1], n)],
                               battery.IDENTITY_CALLS, *urls)
    assert not problems, f"seproxy (A) vs DIRAC 9 (B) as {identity}:\n" + "\n".join(problems)
    whoami = answers[(urls[1], "whoami")]
    assert whoami["OK"], whoami


# ----------------------------------------------------------------------------- seproxy client


def seproxy_client_config(pki, identity: dict[str, Any]) -> Config:
    text = f"DIRAC\n{{\n  VirtualOrganization = dirac\n  Security\n  {{\n    CALocation = {pki.ca_dir}\n"
    if identity["proxy"] is None:
        text += f"    CertFile = {pki.host_cert}\n    KeyFile = {pki.host_key}\n"
    return Config.from_text(text + "  }\n}\n", use_default=False)


def seproxy_answers(pki, identity: dict[str, Any], url: str, calls, encoding: str) -> dict[str, Any]:
    kwargs = dict(identity.get("client", {}))
    if identity["proxy"] is not None:
        kwargs["proxyLocation"] = str(identity["proxy"])
    client = RPCClient(url, config=seproxy_client_config(pki, identity), encoding=encoding, **kwargs)
    answers = {}
    for name, method, args in calls:
        try:
            answers[name] = getattr(client, method)(*args)
        except Exception as exc:  # noqa: BLE001 - compared with DIRAC's client raising on the same call
            answers[name] = Raised(f"{type(exc).__name__}: {exc}")
    return answers


@pytest.mark.parametrize("client_encoding", ENCODINGS)
def test_seproxy_client_against_dirac9_same_as_dirac_client(dirac9_client, identities, servers, pki,
                                                            client_encoding):
    url = servers["dirac"]
    theirs = dirac_answers(dirac9_client, identities["user"], [url], battery.CALLS, client_encoding,
                           explicit_proxy=True)
    ours = seproxy_answers(pki, identities["user"], url, battery.CALLS, client_encoding)
    problems = compare_answers(lambda n: ours[n], lambda n: theirs[(url, n)], battery.CALLS, url, url)
    assert not problems, "seproxy RPCClient (A) vs DIRAC client (B) on DIRAC 9:\n" + "\n".join(problems)
    assert ours["whoami"]["Value"]["username"] == "testuser"


@pytest.mark.parametrize("identity", ["admin", "limited", "host", "forwarded"])
def test_seproxy_client_identities_against_dirac9(dirac9_client, identities, servers, pki, identity):
    url = servers["dirac"]
    theirs = dirac_answers(dirac9_client, identities[identity], [url], battery.IDENTITY_CALLS,
                           servers["encoding"], explicit_proxy=True)
    ours = seproxy_answers(pki, identities[identity], url, battery.IDENTITY_CALLS, servers["encoding"])
    problems = compare_answers(lambda n: ours[n], lambda n: theirs[(url, n)], battery.IDENTITY_CALLS, url, url)
    assert not problems, f"seproxy RPCClient (A) vs DIRAC client (B) on DIRAC 9 as {identity}:\n" \
        + "\n".join(problems)
