"""``DIRACVersion``: seproxy's framework answers equal the real release's, on the wire.

For each release, a seproxy service in that mode and a real DIRAC service of that
release (both at their defaults: no ``Encoding`` option, ``DIRAC_USE_JSON_ENCODE``
unset) get the same hand-framed ``ping`` and ``whoami`` from a DEncode and a JSON
client (``tests.rpc.handframed``): the first byte of every answer (``d``: DEncode,
``{``: JSON) and the keys of ping and of the credential dict must be equal.
seproxy's 8.0 mode comes from its default (a ``/DIRAC/Setup``), 9.1 from the 9.x layout.
"""

from __future__ import annotations

import pytest

from seproxy.errors import ProtocolError
from seproxy.rpc.wire import codec
from tests.interop.InteropHandler import InteropHandler
from tests.interop.peer_services import SETUP_8
from tests.rpc import handframed

pytestmark = pytest.mark.interop

SETUP_CFG = (f"DIRAC\n{{\n  Setup = {SETUP_8}\n  Setups\n  {{\n    {SETUP_8}\n    {{\n      Test = Tests\n"
             "    }\n  }\n}\n")


@pytest.fixture(scope="module")
def no_encoding_variable():
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(codec.ENV_VARIABLE, raising=False)
        yield


@pytest.fixture(scope="module", params=["8.0", "9.1"])
def pair(request, no_encoding_variable, seproxy_service_module, dirac_services, tmp_path_factory):
    release = request.param
    ours = seproxy_service_module(
        InteropHandler, name="Test/Interop", protocol="dips",
        options={"StoragePath": str(tmp_path_factory.mktemp(f"store-{release}"))},
        authorization={"Default": "authenticated"},
        cfg_text=SETUP_CFG if release == "8.0" else "")
    assert ours.service.compat.version == release
    theirs = dirac_services.interop(encoding=None, version=8 if release == "8.0" else 9)
    return release, ours.port, theirs.port


@pytest.mark.parametrize("client_encoding", ["dencode", "json"])
def test_first_byte_and_keys_equal_the_real_release(pair, pki, client_encoding):
    release, ours, theirs = pair
    setup = SETUP_8 if release == "8.0" else "None"
    seen = {}
    for side, port in (("seproxy", ours), ("dirac", theirs)):
        for method in ("ping", "whoami"):
            accepted, raw = handframed.call(port, "Test/Interop", method, [], proxy=pki.proxy(),
                                            ca_dir=pki.ca_dir, encoding=client_encoding, setup=setup)
            answer = codec.decode(raw)
            assert answer["OK"], (side, method, answer)
            seen[side, method] = (accepted[:1], raw[:1], list(answer["Value"]))
    for method in ("ping", "whoami"):
        assert seen["seproxy", method] == seen["dirac", method], (method, seen)
    first = b"d" if release == "8.0" else b"{"
    assert seen["dirac", "ping"][:2] == (first, first)
    assert ("URL" in seen["dirac", "ping"][2]) is (release == "9.1")
    assert ("VO" in seen["dirac", "whoami"][2]) is (release == "9.1")


def test_dencode_only_client_as_with_the_real_release(pair, pki):
    """An old DEncode-only tool: reads both 8.0 servers' answers, fails alike on both 9.1 ones."""
    release, ours, theirs = pair
    setup = SETUP_8 if release == "8.0" else "None"
    for port in (ours, theirs):
        accepted, raw = handframed.call(port, "Test/Interop", "echo", ["old tool"],
                                        proxy=pki.proxy(), ca_dir=pki.ca_dir, setup=setup)
        if release == "8.0":
            assert handframed.decode_dencode_only(accepted)["OK"] is True
            assert handframed.decode_dencode_only(raw)["Value"] == "old tool"
        else:
            with pytest.raises(ProtocolError):
                handframed.decode_dencode_only(raw)
