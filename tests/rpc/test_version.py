"""``DIRACVersion``: which DIRAC release a service's framework answers look like (rpc.version)."""

from __future__ import annotations

import pytest

from seproxy.config import Config
from seproxy.errors import ConfigError
from seproxy.rpc import version
from seproxy.rpc.wire import codec
from tests.rpc import handframed

SECTION = "/Systems/Test/Services/Mine"
SETUP = "DIRAC\n{\n  Setup = Prod\n  Setups\n  {\n    Prod\n    {\n      Test = Production\n    }\n  }\n}\n"
KEYS_80 = ["version", "time", "host uptime", "service start time", "service uptime", "load",
           "name", "cpu times"]
KEYS_91 = [*KEYS_80[:7], "URL", "cpu times"]


def compat(text: str) -> version.DiracCompat:
    return version.service_compat(Config.from_text(text, use_default=False), SECTION)


NO_SETUP = "DIRAC\n{\n  NoSetup = yes\n  Setup = Prod\n}\n"
DIRAC_80 = "DIRAC\n{\n  DIRACVersion = 8.0\n}\n"
SETUP_91 = SETUP.replace("  Setup = Prod\n", "  Setup = Prod\n  DIRACVersion = 9.1\n")
SERVICE_80 = ("Systems\n{\n  Test\n  {\n    Services\n    {\n      Mine\n      {\n"
              "        DIRACVersion = 8.0\n      }\n    }\n  }\n}\nDIRAC\n{\n  DIRACVersion = 9.1\n}\n")


@pytest.mark.parametrize(("text", "expected"), [
    ("", "9.1"),              # 9.x layout: 9.1
    (SETUP, "8.0"),           # a Setup: 8.0
    (NO_SETUP, "9.1"),
    (DIRAC_80, "8.0"),        # /DIRAC
    (SETUP_91, "9.1"),
    (SERVICE_80, "8.0"),      # the service section first
])
def test_setting_and_default(text, expected):
    assert compat(text).version == expected


def test_unknown_version_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^invalid value '8\.1' for /DIRAC/DIRACVersion in configuration text: "
                       r"expected one of 8\.0, 9\.1$"):
        compat("DIRAC\n{\n  DIRACVersion = 8.1\n}\n")


def test_credentials_without_vo_in_80():
    creds = {"DN": "/CN=u", "group": "g", "VO": "v", "x509Chain": None}
    assert list(version.DIRAC_8_0.credentials(dict(creds))) == ["DN", "group", "x509Chain"]
    assert version.DIRAC_9_1.credentials(dict(creds)) == creds


@pytest.mark.parametrize(("value", "unset", "expected"), [
    (None, "dencode", "dencode"), (None, "json", "json"), ("yes", "dencode", "json"),
    ("TRUE", "dencode", "json"), ("no", "json", "dencode"), ("anything", "json", "dencode")])
def test_default_encoding_per_release(monkeypatch, value, unset, expected):
    if value is None:
        monkeypatch.delenv(codec.ENV_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(codec.ENV_VARIABLE, value)
    assert codec.default_encoding(unset) == expected


@pytest.mark.parametrize("release", ["8.0", "9.1"])
@pytest.mark.parametrize("client_encoding", ["dencode", "json"])
def test_service_answers_like_the_release(seproxy_service, pki, monkeypatch, release,
                                          client_encoding):
    """Keys of ping and whoami, and the answer's encoding (first byte on the wire)."""
    monkeypatch.delenv(codec.ENV_VARIABLE, raising=False)
    svc = seproxy_service(protocol="dips", options={"DIRACVersion": release})
    answers = {}
    for method in ("ping", "whoami"):
        accepted, raw = handframed.call(svc.port, svc.name, method, [], proxy=pki.proxy(),
                                        ca_dir=pki.ca_dir, encoding=client_encoding)
        assert raw[:1] == accepted[:1] == (b"d" if release == "8.0" else b"{")
        answers[method] = codec.decode(raw)["Value"]
    assert list(answers["ping"]) == (KEYS_80 if release == "8.0" else KEYS_91)
    assert answers["ping"]["version"] == ("8.0.86" if release == "8.0" else "9.1.22")
    assert ("VO" in answers["whoami"]) is (release == "9.1")
    assert answers["whoami"]["username"] == "testuser"
    # DIRAC_USE_JSON_ENCODE is read at every answer, as DIRAC reads it
    monkeypatch.setenv(codec.ENV_VARIABLE, "yes" if release == "8.0" else "no")
    _, raw = handframed.call(svc.port, svc.name, "ping", [], proxy=pki.proxy(), ca_dir=pki.ca_dir,
                             encoding=client_encoding)
    assert raw[:1] == (b"{" if release == "8.0" else b"d")


def test_dencode_only_client_against_80(seproxy_service, pki, monkeypatch):
    """An old tool that frames DEncode by hand and cannot read JSON works with 8.0."""
    monkeypatch.delenv(codec.ENV_VARIABLE, raising=False)
    svc = seproxy_service(protocol="dips", cfg_text=SETUP)  # 8.0 by default: a Setup
    assert svc.service.compat.version == "8.0"
    accepted, raw = handframed.call(svc.port, svc.name, "echo", ["old tool"], proxy=pki.proxy(),
                                    ca_dir=pki.ca_dir, setup="Prod")
    assert handframed.decode_dencode_only(accepted) == {"OK": True, "Value": None}
    assert handframed.decode_dencode_only(raw) == {"OK": True, "Value": "old tool"}
