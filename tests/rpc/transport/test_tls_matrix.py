"""The handshake matrix, for both TLS backends, server and client sides.

Every refusal is checked on both ends (the server's handshake error and the
client's error text), and after each refusal the same server must still serve
a good client.
"""

from __future__ import annotations

import ctypes
import os
import re
import socket
import ssl
import threading

import pytest

from seproxy.errors import SeproxyError
from seproxy.rpc import transport
from tests.rpc.transport.conftest import EchoServer
from tests.rpc.transport.tlshelpers import BACKENDS, roundtrip, tls_cfg

KEY_ORDER_PROXY = ["subject", "issuer", "secondsLeft", "isProxy", "isLimitedProxy", "validDN",
                   "validGroup", "DN", "identity", "group", "VO", "x509Chain"]
KEY_ORDER_CERT = ["subject", "issuer", "secondsLeft", "isProxy", "isLimitedProxy", "validDN",
                  "validGroup", "DN", "x509Chain"]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(scope="module")
def main_server(pki, registry_cfg, backend):
    cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.ca_dir,
                  backend=backend)
    server = EchoServer("dips", cfg)
    server.cfg = cfg
    yield server
    server.close()


def cert_cfg(pki, registry_cfg, backend, cert, key, **kwargs):
    return tls_cfg(registry_cfg, cert=cert, key=key, ca_dir=pki.ca_dir, backend=backend, **kwargs)


def assert_still_serving(server, pki):
    ok, error = roundtrip(server.port, server.cfg, proxy_location=str(pki.proxy()))
    assert ok, error
    assert server.outcome().ok


# -- accepted -----------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["user", "proxy", "proxy_of_proxy", "limited", "host", "no_group"])
def test_accepted_with_credential_dict(case, pki, registry_cfg, backend, main_server):
    kwargs, cfg = {}, main_server.cfg
    if case in ("user", "host"):
        cert, key = (pki.user_cert, pki.user_key) if case == "user" else (pki.host_cert, pki.host_key)
        cfg, kwargs["use_certificates"] = cert_cfg(pki, registry_cfg, backend, cert, key), True
    elif case == "proxy_of_proxy":
        kwargs["proxy_location"] = str(pki.proxy(parent=pki.proxy(group="dirac_admin")))
    else:
        kwargs["proxy_location"] = str(pki.proxy(limited=case == "limited",
                                                 group=None if case == "no_group" else "dirac_user"))
    ok, error = roundtrip(main_server.port, cfg, **kwargs)
    assert ok, error
    outcome = main_server.outcome()
    assert outcome.ok, outcome.error
    creds = outcome.credentials
    if case in ("user", "host"):
        dn = pki.user_dn if case == "user" else pki.host_dn
        assert list(creds) == KEY_ORDER_CERT
        assert (creds["subject"], creds["issuer"], creds["DN"]) == (dn, pki.ca_dn, dn)
        assert creds["isProxy"] is False and creds["isLimitedProxy"] is False
        assert creds["x509Chain"].subject_dn == dn
    else:
        assert list(creds) == KEY_ORDER_PROXY
        assert creds["DN"] == creds["identity"] == pki.user_dn
        depth = 2 if case == "proxy_of_proxy" else 1
        assert re.fullmatch(re.escape(pki.user_dn) + rf"(/CN=\d+){{{depth}}}", creds["subject"])
        assert creds["isProxy"] is True
        assert creds["isLimitedProxy"] is (case == "limited")
        assert creds["group"] == ("dirac_admin" if case == "proxy_of_proxy" else "dirac_user")
        assert creds["VO"] == "dirac"
    assert creds["validDN"] is False and creds["validGroup"] is False
    assert 0 < creds["secondsLeft"] <= 365 * 86400


# -- refused by the server ------------------------------------------------------------------
REFUSED = {
    # case: (server-side error, client-side error)
    "other_ca": ("unable to get local issuer certificate", "unknown ca"),
    "expired": ("certificate has expired", "certificate expired"),
    "not_yet_valid": ("certificate is not yet valid", "alert"),
    "bad_proxy_subject": ("proxy subject name violation", "alert"),
    "legacy_proxy": ("invalid CA certificate", "unknown ca"),
    "expired_proxy": ("certificate has expired", "certificate expired"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_client_credentials(case, pki, registry_cfg, backend, main_server):
    cfg, kwargs = main_server.cfg, {}
    certs = {"other_ca": (pki.other_user_cert, pki.other_user_key),
             "expired": (pki.expired_cert, pki.expired_key),
             "not_yet_valid": (pki.notyet_cert, pki.notyet_key)}
    proxies = {"bad_proxy_subject": pki.bad_subject_proxy, "legacy_proxy": pki.legacy_proxy,
               "expired_proxy": pki.expired_proxy}
    if case in certs:
        cfg = cert_cfg(pki, registry_cfg, backend, *certs[case])
        kwargs["use_certificates"] = True
    else:
        kwargs["proxy_location"] = str(proxies[case])
    ok, client_error = roundtrip(main_server.port, cfg, **kwargs)
    outcome = main_server.outcome()
    server_error, client_text = REFUSED[case]
    assert not ok and not outcome.ok
    assert "TLS handshake with" in outcome.error and server_error in outcome.error
    assert re.search(client_text, client_error, re.IGNORECASE), client_error
    assert_still_serving(main_server, pki)


pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")


def _stdlib_client(pki, port, *, cert=True, tls11=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(capath=str(pki.ca_dir))
    if cert:
        ctx.load_cert_chain(str(pki.user_cert), str(pki.user_key))
    if tls11:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with (socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
          ctx.wrap_socket(raw, server_hostname="localhost") as tls):
        tls.sendall(b"4:ping")
        return tls.recv(100)


def test_no_client_certificate_refused(pki, main_server):
    with pytest.raises(ssl.SSLError, match="certificate required"):
        _stdlib_client(pki, main_server.port, cert=False)
    outcome = main_server.outcome()
    assert not outcome.ok and "did not return a certificate" in outcome.error
    assert_still_serving(main_server, pki)


def test_tls11_client_refused(pki, main_server):
    with pytest.raises(ssl.SSLError, match="(?i)protocol version|unsupported protocol|no protocols"):
        _stdlib_client(pki, main_server.port, tls11=True)
    outcome = main_server.outcome()
    assert not outcome.ok and re.search("unsupported protocol|version", outcome.error), outcome.error
    assert_still_serving(main_server, pki)


def test_stdlib_client_with_proxy_is_accepted(pki, main_server):
    """Interop check: a Python ssl client with TLS 1.3 and a DIRAC proxy file."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(capath=str(pki.ca_dir))
    ctx.load_cert_chain(str(pki.proxy()))
    with (socket.create_connection(("127.0.0.1", main_server.port), timeout=5) as raw,
          ctx.wrap_socket(raw, server_hostname="localhost") as tls):
        tls.sendall(b"4:ping")
        assert tls.recv(100) == b"4:ping"
        assert tls.version() == "TLSv1.3"
    assert main_server.outcome().credentials["DN"] == pki.user_dn


# -- CRLs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["yes", "auto", "no"])
def test_revoked_certificate_with_crls(mode, pki, registry_cfg, backend, echo_server):
    cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.crl_ca_dir,
                  backend=backend, check_crls=mode)
    server = echo_server("dips", cfg)
    revoked = tls_cfg(registry_cfg, cert=pki.revoked_cert, key=pki.revoked_key,
                      ca_dir=pki.crl_ca_dir, backend=backend)
    ok, client_error = roundtrip(server.port, revoked, use_certificates=True)
    outcome = server.outcome()
    if mode == "no":  # DIRAC's behaviour: CRLs ignored
        assert ok and outcome.ok
    else:
        assert not ok and "certificate revoked" in outcome.error
        assert re.search("revoked", client_error, re.IGNORECASE), client_error
    for kwargs in ({"proxy_location": str(pki.proxy())}, {"proxy_location": str(pki.proxy(limited=True))}):
        ok, error = roundtrip(server.port, cfg, **kwargs)  # the others still pass (and are served)
        assert ok, error
        assert server.outcome().credentials["DN"] == pki.user_dn


# -- refused by the client --------------------------------------------------------------------
SERVER_CERTS = {
    "wrong_host_name": ("wrong_host_cert", "wrong_host_key", "does not match host name"),
    "untrusted_ca": ("other_host_cert", "other_host_key",
                     "unable to get local issuer certificate|self-signed certificate in certificate chain"),
    "expired_host": ("expired_host_cert", "expired_host_key", "certificate has expired"),
}


@pytest.mark.parametrize("case", sorted(SERVER_CERTS))
def test_client_refuses_bad_server(case, pki, registry_cfg, backend, echo_server):
    cert_attr, key_attr, client_text = SERVER_CERTS[case]
    cfg = tls_cfg(registry_cfg, cert=getattr(pki, cert_attr), key=getattr(pki, key_attr),
                  ca_dir=pki.ca_dir, backend=backend)
    server = echo_server("dips", cfg)
    client = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.ca_dir,
                     backend=backend)
    ok, error = roundtrip(server.port, client, proxy_location=str(pki.proxy()))
    assert not ok and re.search(client_text, error) and "TLS handshake with" in error, error
    outcome = server.outcome()
    assert not outcome.ok and "alert" in outcome.error, outcome.error
    # skip_ca_check skips the chain, never the host name
    ok, error = roundtrip(server.port, client, proxy_location=str(pki.proxy()), skip_ca_check=True)
    assert ok is (case != "wrong_host_name"), error
    server.outcome()


def test_host_names(pki, main_server):
    cfg, proxy = main_server.cfg, str(pki.proxy())
    for host, name in (("localhost", None), ("127.0.0.1", "localhost"), ("127.0.0.1", None)):
        ok, error = roundtrip(main_server.port, cfg, host=host, proxy_location=proxy, server_hostname=name)
        assert ok, (host, name, error)
        assert main_server.outcome().ok
    ok, error = roundtrip(main_server.port, cfg, proxy_location=proxy, server_hostname="evil.example.org")
    assert not ok and "does not match host name 'evil.example.org'" in error
    assert not main_server.outcome().ok
    assert_still_serving(main_server, pki)


def _stdlib_server(pki, *, tls11=False):
    """One-connection stdlib TLS server; returns (port, result dict, thread)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki.host_cert), str(pki.host_key))
    if tls11:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    result = {}

    def remember_sni(_sslobj, name, _ctx):
        result["sni"] = name

    ctx.sni_callback = remember_sni
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        with listener:
            raw, _ = listener.accept()
            raw.settimeout(5)
            try:
                with ctx.wrap_socket(raw, server_side=True) as tls:
                    result["data"] = tls.recv(100)
                    tls.sendall(result["data"])
            except (ssl.SSLError, OSError) as exc:
                result["error"] = str(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], result, thread


def test_tls11_server_refused_by_client(pki, main_server):
    port, result, thread = _stdlib_server(pki, tls11=True)
    with pytest.raises(SeproxyError, match="TLS handshake with .* failed: .*(protocol|version)"):
        transport.connect("dips", "127.0.0.1", port, cfg=main_server.cfg, timeout=5,
                          proxy_location=str(pki.proxy()))
    thread.join(5)
    assert re.search("(?i)protocol|version", result["error"]), result


@pytest.mark.parametrize("host, sni", [("localhost", "localhost"), ("127.0.0.1", None)])
def test_sni_sent_for_names_only(pki, main_server, host, sni):
    port, result, thread = _stdlib_server(pki)
    ok, error = roundtrip(port, main_server.cfg, host=host, proxy_location=str(pki.proxy()))
    thread.join(5)
    assert ok, error
    assert result.get("sni") == sni and result["data"] == b"4:ping"


# -- resumption, socket options, reload ---------------------------------------------------------
def test_session_resumption_keyed_by_credentials(pki, main_server):
    proxy = str(pki.proxy(group="dirac_user"))
    conns = []
    for _ in range(2):
        conn = transport.connect("dips", "127.0.0.1", main_server.port, cfg=main_server.cfg,
                                 timeout=5, proxy_location=proxy)
        conn.send_frame(b"x")
        assert conn.receive_frame() == b"x"
        conns.append(conn)
        conn.close()
        assert main_server.outcome().credentials["group"] == "dirac_user"
    assert conns[0].session_reused is False and conns[1].session_reused is True
    # another proxy must never resume the first one's session (its identity)
    other = str(pki.proxy(group="dirac_admin"))
    ok, error = roundtrip(main_server.port, main_server.cfg, proxy_location=other)
    assert ok, error
    outcome = main_server.outcome()
    assert outcome.credentials["group"] == "dirac_admin" and outcome.session_reused is not True


def test_server_side_resumption_seen_from_pyopenssl(pki, registry_cfg, backend, echo_server):
    """Each backend's server resumes sessions (observed by the pyOpenSSL client)."""
    server_cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.ca_dir,
                         backend=backend)
    server = echo_server("dips", server_cfg)
    client_cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.ca_dir,
                         backend="pyopenssl")
    proxy, reused = str(pki.proxy()), []
    for _ in range(2):
        with transport.connect("dips", "localhost", server.port, cfg=client_cfg, timeout=5,
                               proxy_location=proxy) as conn:
            conn.send_frame(b"x")
            assert conn.receive_frame() == b"x"
            reused.append(conn.session_reused)
        assert server.outcome().credentials["DN"] == pki.user_dn  # chain kept in the session
    assert reused == [False, True]


def test_resumed_session_keeps_the_verified_chain(pki, main_server):
    """A resumed connection yields the credential dict of the full handshake: the same
    chain (not only the leaf a stateless ticket carries), so a proxy of a proxy keeps
    the identity DN and the group of the proxy above it (not the leaf's own group)."""
    proxy = pki.proxy(parent=pki.proxy(group="dirac_admin"), group="dirac_user")
    seen = []
    for _ in range(3):
        with transport.connect("dips", "127.0.0.1", main_server.port, cfg=main_server.cfg,
                               timeout=5, proxy_location=str(proxy)) as conn:
            conn.send_frame(b"x")
            assert conn.receive_frame() == b"x"
        outcome = main_server.outcome()
        assert outcome.ok, outcome.error
        creds = outcome.credentials
        chain = creds.pop("x509Chain")
        seen.append((outcome.session_reused, creds.pop("secondsLeft"), creds,
                     [c.subject for c in chain.certificates]))
    assert [s[0] for s in seen] == [False, True, True]
    full = seen[0]
    assert full[2]["DN"] == pki.user_dn and full[2]["group"] == "dirac_admin"
    assert len(full[3]) == 3  # proxy, proxy, user certificate
    for resumed in seen[1:]:
        assert resumed[2] == full[2] and resumed[3] == full[3]
        assert 0 <= full[1] - resumed[1] <= 5


def test_session_cache_bounded(pki, registry_cfg, backend, echo_server):
    """SessionCacheSize bounds the server's session cache: set on the context where the
    library allows it (M2Crypto), else the context is rebuilt every size/2 connections."""
    cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.ca_dir,
                  backend=backend, extra="SessionCacheSize = 4")
    server = echo_server("dips", cfg)
    listener = server.listener
    first = listener.context_generation
    proxy = str(pki.proxy())
    for _ in range(5):
        ok, error = roundtrip(server.port, cfg, proxy_location=proxy)
        assert ok, error
        assert server.outcome().ok
    if backend == "m2crypto":
        from seproxy.rpc.transport.tls_m2crypto import _LIBSSL

        ctrl = _LIBSSL.SSL_CTX_ctrl
        ctrl.restype, ctrl.argtypes = ctypes.c_long, [ctypes.c_void_p, ctypes.c_int, ctypes.c_long,
                                                      ctypes.c_void_p]
        ctx = int(listener._context.ctx)
        assert ctrl(ctx, 43, 0, None) == 4  # SSL_CTRL_GET_SESS_CACHE_SIZE
        assert 1 <= ctrl(ctx, 20, 0, None) <= 4  # SSL_CTRL_SESS_NUMBER
        assert listener.context_generation == first
    else:  # pyOpenSSL cannot size the cache: a new context after 2, 4 connections
        assert listener.context_generation == first + 2


def test_nodelay_and_version(pki, main_server):
    with transport.connect("dips", "127.0.0.1", main_server.port, cfg=main_server.cfg, timeout=5,
                           proxy_location=str(pki.proxy())) as conn:
        assert conn._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert conn.tls_version in ("TLSv1.3", "TLSv1.2")
        conn.send_frame(b"x")
        assert conn.receive_frame() == b"x"
    assert main_server.outcome().ok


def test_context_reloaded_after_lifetime(pki, registry_cfg, backend, echo_server):
    cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.ca_dir,
                  backend=backend, extra="ContextLifeTime = 0")
    server = echo_server("dips", cfg)
    first = server.listener.context_generation
    for _ in range(2):
        ok, error = roundtrip(server.port, cfg, proxy_location=str(pki.proxy()))
        assert ok, error
        assert server.outcome().ok
    assert server.listener.context_generation == first + 2


def test_handshake_timeout_is_bounded(pki, main_server, backend, registry_cfg):
    cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.ca_dir,
                  backend=backend)
    listener = transport.listen("dips", "127.0.0.1", 0, cfg=cfg)
    with listener, socket.create_connection(("127.0.0.1", listener.port)):
        conn = listener.accept(timeout=5)  # the client never says hello
        with pytest.raises(SeproxyError, match="timed out after 0.3 s"):
            conn.handshake(0.3)
        assert conn.closed


def early_answer_exchange(pki, cfg):
    """A server that answers and closes while the client still writes (DIRAC does that on
    errors): the client's write fails with PeerClosed, and the answer can still be read."""
    with transport.listen("dips", "127.0.0.1", 0, cfg=cfg) as listener:
        def serve():
            conn = listener.accept(timeout=10)
            conn.handshake(5)
            conn.receive_frame()
            conn.send_frame(b"stop: too big")
            conn.close()  # unread data: the kernel resets the connection

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with transport.connect("dips", "127.0.0.1", listener.port, cfg=cfg, timeout=5,
                               proxy_location=str(pki.proxy())) as conn:
            conn.settimeout(10)
            conn.expect_early_answers(True)  # what a DIRAC-mode stream sender sets
            with pytest.raises(SeproxyError, match="Connection closed by peer"):
                for _ in range(200):
                    conn.send_frame(bytes(1024 * 1024))
            assert conn.receive_frame() == b"stop: too big"
        thread.join(5)


def test_early_answer_readable_after_failed_write(pki, registry_cfg, backend):
    early_answer_exchange(pki, tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key,
                                       ca_dir=pki.ca_dir, backend=backend))


def test_guarded_writes_on_any_openssl(pki, registry_cfg, echo_server, monkeypatch):
    """pyOpenSSL's guarded writes (records encrypted into memory and written by the
    transport: the early-answer path on OpenSSL >= 4.0) also on the OpenSSL this runs
    on: frames of every size arrive intact, and the early answer stays readable."""
    from seproxy.rpc.transport.tls_openssl import OpenSSLTransport

    monkeypatch.setattr(OpenSSLTransport, "write_failure_is_fatal", True)
    cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.ca_dir,
                  backend="pyopenssl")
    server = echo_server("dips", cfg)
    payloads = [b"x", bytes(range(256)) * 300, os.urandom(3 * 1024 * 1024 + 5), b"end"]
    with transport.connect("dips", "127.0.0.1", server.port, cfg=cfg, timeout=5,
                           proxy_location=str(pki.proxy())) as conn:
        conn.expect_early_answers(True)
        assert conn._guarded
        for payload in payloads:
            conn.send_frame(payload)
            assert conn.receive_frame() == payload
            assert not conn._unsent
        conn.expect_early_answers(False)
        assert not conn._guarded
        conn.send_frame(b"unguarded")
        assert conn.receive_frame() == b"unguarded"
    assert server.outcome().ok
    early_answer_exchange(pki, cfg)


def test_failed_context_reload_keeps_serving(pki, registry_cfg, backend, echo_server, tmp_path):
    cert, key = tmp_path / "hostcert.pem", tmp_path / "hostkey.pem"
    cert.write_bytes(pki.host_cert.read_bytes())
    key.write_bytes(pki.host_key.read_bytes())
    cfg = tls_cfg(registry_cfg, cert=cert, key=key, ca_dir=pki.ca_dir, backend=backend,
                  extra="ContextLifeTime = 0")
    server = echo_server("dips", cfg)
    generation = server.listener.context_generation
    cert.unlink()  # the reload before the next connection fails: the old context stays
    ok, error = roundtrip(server.port, cfg, proxy_location=str(pki.proxy()))
    assert ok, error
    assert server.outcome().ok
    assert server.listener.context_generation == generation


def test_no_frame_before_the_handshake(pki, main_server, backend):
    """Both send paths (one joined write for a small frame, views for a large one) refuse
    to write before the TLS handshake; the connection is still usable afterwards."""
    from seproxy.rpc.transport import tlsbase

    conn = tlsbase.open_client(transport.tls_backend(main_server.cfg).BACKEND, "127.0.0.1",
                               main_server.port, cfg=main_server.cfg, timeout=5,
                               proxy_location=str(pki.proxy()))
    try:
        for payload in (b"ping", b"x" * (1 << 20)):
            with pytest.raises(SeproxyError, match="TLS handshake not done"):
                conn.send_frame(payload)
        conn.handshake(5)
        conn.send_frame(b"ping")
        assert conn.receive_frame() == b"ping"
    finally:
        conn.close()
    assert main_server.outcome().ok
