"""HttpThread / ThreadedSocketServer against real sockets on 127.0.0.1."""

from __future__ import annotations

import datetime
import hashlib
import http.client
import io
import os
import secrets
import socket
import ssl
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from seproxy.http.access import INVALID_KEY, content_disposition
from seproxy.http.server import HttpThread
from seproxy.staging.cache import ExpiringRegister, purgeCacheDirectory
from seproxy.staging.keys import key_digest, new_key
from tests.conftest import wait_for


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    root = tmp_path / "httpCache"
    root.mkdir()
    return root


@pytest.fixture
def register():
    reg = ExpiringRegister(purgeCacheDirectory)
    yield reg
    reg.stop_purger()


@pytest.fixture
def server(cache, register):
    thread = HttpThread(0, str(cache), register=register, host="127.0.0.1", purge_interval=0)
    yield thread
    thread.stop()


def stage(cache: Path, register: ExpiringRegister, files: dict[str, bytes], lifetime: float = 60) -> str:
    key = new_key()
    directory = cache / secrets.token_hex(8)
    directory.mkdir()
    for name, data in files.items():
        (directory / name).write_bytes(data)
    register.add(key_digest(key), lifetime, str(directory))
    return key


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


def test_unknown_key_is_401(server):
    resp, body = request(server.port, "GET", "/" + new_key())
    assert resp.status == 401
    assert INVALID_KEY.encode() in body


def test_single_file_is_sent_once_then_401(server, cache, register):
    data = os.urandom(300_000)
    key = stage(cache, register, {"my file.dat": data})
    directory = Path(register.get(key_digest(key)))
    resp, body = request(server.port, "GET", f"/{key}")
    assert resp.status == 200
    assert body == data
    assert resp.getheader("Content-Length") == str(len(data))
    assert resp.getheader("Content-Type") == "application/octet-stream"
    assert resp.getheader("Content-Disposition") == 'attachment; filename="my file.dat"'
    assert len(resp.msg.get_all("Last-Modified")) == 1
    assert resp.getheader("Accept-Ranges") == "bytes"
    assert wait_for(lambda: not directory.exists())  # single use: removed after the send
    resp, _ = request(server.port, "GET", f"/{key}")
    assert resp.status == 401


def test_curl_download_bytes_identical(server, cache, register, tmp_path):
    data = os.urandom(1_000_003)
    key = stage(cache, register, {"blob.bin": data})
    out = tmp_path / "out.bin"
    subprocess.run(["curl", "-sSf", "-o", str(out), f"http://127.0.0.1:{server.port}/{key}"],
                   check=True, timeout=60)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_several_files_are_streamed_as_tar(server, cache, register):
    files = {"a.txt": b"alpha" * 100, "b.bin": os.urandom(5000), "c": b""}
    key = stage(cache, register, files)
    resp, body = request(server.port, "GET", f"/{key}")
    assert resp.status == 200
    disposition = resp.getheader("Content-Disposition")
    assert disposition.startswith('attachment; filename="dirac_data_') and disposition.endswith('.tar"')
    assert int(resp.getheader("Content-Length")) == len(body)
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert got == files


def test_head_does_not_use_up_the_key(server, cache, register):
    key = stage(cache, register, {"f": b"x" * 1234})
    resp, body = request(server.port, "HEAD", f"/{key}")
    assert resp.status == 200 and body == b""
    assert resp.getheader("Content-Length") == "1234"
    resp, body = request(server.port, "GET", f"/{key}")
    assert resp.status == 200 and body == b"x" * 1234


def test_range_resume_then_key_used_up(server, cache, register):
    data = os.urandom(100_000)
    key = stage(cache, register, {"f": data})
    resp, body = request(server.port, "GET", f"/{key}", {"Range": "bytes=0-999"})
    assert resp.status == 206
    assert resp.getheader("Content-Range") == f"bytes 0-999/{len(data)}"
    assert body == data[:1000]
    etag = resp.getheader("ETag")
    resp, body = request(server.port, "GET", f"/{key}", {"Range": "bytes=1000-", "If-Range": etag})
    assert resp.status == 206 and body == data[1000:]
    assert wait_for(lambda: not register.exists(key_digest(key)))
    resp, _ = request(server.port, "GET", f"/{key}")
    assert resp.status == 401


def test_suffix_range_inside_tar_and_416(server, cache, register):
    files = {"a": os.urandom(700), "b": os.urandom(1300)}
    key = stage(cache, register, files)
    resp, whole = request(server.port, "HEAD", f"/{key}")
    size = int(resp.getheader("Content-Length"))
    resp, body = request(server.port, "GET", f"/{key}", {"Range": "bytes=100-2100"})
    assert resp.status == 206
    full_resp, full = request(server.port, "GET", f"/{key}", {"Range": "bytes=0-"})
    assert full_resp.status == 206 and len(full) == size
    assert body == full[100:2101]
    assert wait_for(lambda: not register.exists(key_digest(key)))  # last byte sent: used up


def test_unsatisfiable_range_is_416(server, cache, register):
    key = stage(cache, register, {"f": b"abc"})
    resp, _ = request(server.port, "GET", f"/{key}", {"Range": "bytes=10-20"})
    assert resp.status == 416
    assert resp.getheader("Content-Range") == "bytes */3"


def test_expired_key_is_401_and_purged_in_background(cache, register):
    thread = HttpThread(0, str(cache), register=register, host="127.0.0.1", purge_interval=0.05)
    try:
        key = stage(cache, register, {"f": b"data"}, lifetime=0.3)
        directory = Path(register.get(key_digest(key)))
        assert wait_for(lambda: not directory.exists()), "the purger did not remove the directory"
        resp, body = request(thread.port, "GET", f"/{key}")
        assert resp.status == 401 and INVALID_KEY.encode() in body
    finally:
        thread.stop()


def test_brute_force_keys_get_nothing(server, cache, register):
    key = stage(cache, register, {"secret": b"top secret"})
    guesses = [new_key() for _ in range(100)] + [key[:-1], key + "A", key.upper(), "0", "",
                                                  "../" + key, key[:20], "%2e%2e/etc/passwd"]
    for guess in guesses:
        if guess == key:
            continue
        resp, body = request(server.port, "GET", "/" + guess)
        assert resp.status == 401, guess
        assert b"top secret" not in body
    resp, body = request(server.port, "GET", f"/{key}")
    assert body == b"top secret"


def test_query_string_is_ignored(server, cache, register):
    key = stage(cache, register, {"f": b"q"})
    resp, body = request(server.port, "GET", f"/{key}?download=1")
    assert resp.status == 200 and body == b"q"


def test_symlink_in_key_directory_is_not_followed(server, cache, register, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("must not leak")
    key = stage(cache, register, {})
    directory = Path(register.get(key_digest(key)))
    (directory / "link").symlink_to(outside)
    resp, body = request(server.port, "GET", f"/{key}")
    assert resp.status == 404
    assert b"must not leak" not in body
    assert outside.exists()


def test_multi_use_keys(cache, register):
    thread = HttpThread(0, str(cache), register=register, host="127.0.0.1", multi_use=True,
                        purge_interval=0)
    try:
        key = stage(cache, register, {"f": b"again"})
        for _ in range(3):
            resp, body = request(thread.port, "GET", f"/{key}")
            assert resp.status == 200 and body == b"again"
    finally:
        thread.stop()


def test_interrupted_download_keeps_the_key(server, cache, register):
    data = os.urandom(48 * 1024 * 1024)
    key = stage(cache, register, {"big": data})
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET /{key} HTTP/1.0\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.0 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    answers = []  # 409 until the server has noticed the reset and released its claim
    assert wait_for(lambda: answers.append(request(server.port, "GET", f"/{key}"))
                    or answers[-1][0].status != 409, 20, 0.05)
    resp, body = answers[-1]
    assert resp.status == 200 and body == data


def test_other_methods_are_501(server, cache, register):
    key = stage(cache, register, {"f": b"x"})
    resp, _ = request(server.port, "POST", f"/{key}")
    assert resp.status == 501


def stalled_download(port: int, key: str) -> socket.socket:
    """A GET whose client reads nothing: its response holds a connection slot."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"GET /{key} HTTP/1.0\r\n\r\n".encode())
    assert sock.recv(12).startswith(b"HTTP/1.0 200")
    return sock  # the entity is larger than the socket buffers: the sender blocks


def test_connection_bound_gives_503(cache, register):
    thread = HttpThread(0, str(cache), register=register, host="127.0.0.1", max_connections=1,
                        purge_interval=0, multi_use=True)
    try:
        big = stage(cache, register, {"big": os.urandom(32 * 1024 * 1024)})
        with stalled_download(thread.port, big) as holder:
            reply = request(thread.port, "GET", "/" + new_key())
            assert reply[0].status == 503
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        key = stage(cache, register, {"f": b"free again"})
        answers = []  # the slot comes back once the stalled download's handler finishes
        wait_for(lambda: answers.append(request(thread.port, "GET", f"/{key}"))
                 or answers[-1][0].status != 503, 20, 0.05)
        resp, body = answers[-1]
        assert resp.status == 200 and body == b"free again"
    finally:
        thread.stop()


def test_slow_loris_does_not_starve_others(cache, register):
    """64 sockets with unfinished request headers hold no connection slot (issue 17 item 7)."""
    thread = HttpThread(0, str(cache), register=register, host="127.0.0.1", max_connections=4,
                        purge_interval=0, header_timeout=30)
    slow = []
    try:
        for _ in range(64):
            sock = socket.create_connection(("127.0.0.1", thread.port), timeout=30)
            sock.sendall(b"GET /")
            slow.append(sock)
        for _ in range(8):
            key = stage(cache, register, {"f": b"served"})
            resp, body = request(thread.port, "GET", f"/{key}")
            assert resp.status == 200 and body == b"served"
    finally:
        for sock in slow:
            sock.close()
        thread.stop()


def test_request_header_deadline_is_for_the_whole_header(cache, register):
    """One byte at a time, each well within any per-read timeout: cut at the deadline."""
    thread = HttpThread(0, str(cache), register=register, host="127.0.0.1", purge_interval=0,
                        header_timeout=1.0)
    stop = threading.Event()
    closed = threading.Event()
    sock = socket.create_connection(("127.0.0.1", thread.port), timeout=30)

    def drip() -> None:
        try:
            for byte in b"GET /" + b"x" * 10_000:
                sock.sendall(bytes([byte]))
                if stop.wait(0.1):
                    return
        except OSError:
            closed.set()

    def reader() -> None:
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass
        closed.set()

    threads = [threading.Thread(target=drip), threading.Thread(target=reader)]
    try:
        for t in threads:
            t.start()
        assert closed.wait(15), "the dripping client was not cut off at the header deadline"
    finally:
        stop.set()
        sock.close()
        for t in threads:
            t.join(timeout=10)
        thread.stop()


def test_unsatisfiable_open_range_is_416_and_key_kept(server, cache, register):
    data = b"0123456789"
    key = stage(cache, register, {"f": data})
    for header in ("bytes=10-", "bytes=11-", "bytes=10-20", "bytes=99999999999999999999-"):
        resp, body = request(server.port, "GET", f"/{key}", {"Range": header})
        assert resp.status == 416, header
        assert resp.getheader("Content-Range") == "bytes */10" and body == b""
    resp, body = request(server.port, "GET", f"/{key}")
    assert resp.status == 200 and body == data


def test_unsatisfiable_range_in_a_tar_is_416(server, cache, register):
    key = stage(cache, register, {"a": b"x" * 10, "b": b"y" * 10})
    resp, _ = request(server.port, "HEAD", f"/{key}")
    size = int(resp.getheader("Content-Length"))
    resp, body = request(server.port, "GET", f"/{key}", {"Range": f"bytes={size}-"})
    assert resp.status == 416 and body == b""


def test_concurrent_get_on_a_single_use_key(server, cache, register):
    """While one GET is sending, a second GET on the same key gets 409 (or 401), never data."""
    data = os.urandom(32 * 1024 * 1024)
    key = stage(cache, register, {"big": data})
    with stalled_download(server.port, key) as first:
        for _ in range(3):
            resp, body = request(server.port, "GET", f"/{key}")
            assert resp.status in (401, 409), resp.status
            assert data[:1000] not in body
        received = bytearray()
        while chunk := first.recv(1 << 20):
            received.extend(chunk)
    assert received.endswith(data[-100_000:])
    assert wait_for(lambda: not register.exists(key_digest(key)))
    resp, _ = request(server.port, "GET", f"/{key}")
    assert resp.status == 401


def test_parallel_gets_on_a_single_use_key(server, cache, register):
    data = os.urandom(4 * 1024 * 1024)
    key = stage(cache, register, {"f": data})
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def get() -> None:
        barrier.wait(timeout=30)
        resp, body = request(server.port, "GET", f"/{key}")
        statuses.append(resp.status)
        if resp.status == 200:
            assert body == data

    threads = [threading.Thread(target=get) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(statuses) == 8
    assert statuses.count(200) == 1, statuses
    assert all(s in (200, 401, 409) for s in statuses), statuses


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "host.pem", tmp_path / "hostkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_access(cache, register, tmp_path):
    cert, key_file = _self_signed(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key_file)
    thread = HttpThread(0, str(cache), register=register, host="127.0.0.1", ssl_context=ctx,
                        purge_interval=0)
    try:
        data = os.urandom(200_000)
        key = stage(cache, register, {"f.bin": data})
        client_ctx = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("127.0.0.1", thread.port, context=client_ctx, timeout=30)
        conn.request("GET", f"/{key}")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == data
        conn.close()
        # a plain-HTTP client gets no data from the HTTPS port (TLS alert or reset)
        key = stage(cache, register, {"f.bin": data})
        with socket.create_connection(("127.0.0.1", thread.port), timeout=30) as sock:
            sock.sendall(f"GET /{key} HTTP/1.0\r\n\r\n".encode())
            try:
                reply = sock.recv(65536)
            except ConnectionResetError:
                reply = b""
            assert data[:100] not in reply and not reply.startswith(b"HTTP/1.0 200")
    finally:
        thread.stop()


@pytest.mark.parametrize("name, expected", [
    ("plain.txt", 'attachment; filename="plain.txt"'),
    ('we"ird\\name%.txt', 'attachment; filename="we_ird_name_.txt"; '
                          "filename*=UTF-8''we%22ird%5Cname%25.txt"),
    ("été.dat", "attachment; filename=\"_t_.dat\"; filename*=UTF-8''%C3%A9t%C3%A9.dat"),
])
def test_content_disposition_quoting(name, expected):
    assert content_disposition(name) == expected
