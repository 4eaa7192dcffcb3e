"""HTTPS/WebDAV plugin against XrdHttp with X509 client certificates (proxies) and the
per-user authorization of the ``xrootd_gsi`` server: usera may use only /a, userb /b."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest

from seproxy.storage import StorageCredentials, StorageElement
from tests.fixtures.servers import GSI_UNKNOWN_USER
from tests.storage.helpers import make_config, se_tree
from tests.storage.plugins import two_users
from tests.storage.plugins.test_xroot_gsi import expired_proxy, foreign_proxy
from tests.storage.plugins.two_users import DIRECTORY, cross_user_grants, interleave


def https_se(gsi, directory: str, proxy: Path | None, protocol: str = "https",
             token: str | None = None) -> StorageElement:
    tree = se_tree("SE-DAV", {"DAV": gsi.https_section(f"/{directory}", protocol, Timeout="20")},
                   AccessProtocols=protocol, WriteProtocols=protocol)
    creds = StorageCredentials(proxy_path=proxy, bearer_token=token) if proxy or token else None
    return StorageElement("SE-DAV", config=make_config(tree), credentials=creds)


def adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def audit(gsi, verdict: str, user: str, path_part: str) -> list[str]:
    return two_users.audit(gsi, "https", verdict, user, path_part)


@pytest.mark.parametrize("protocol", ["https", "davs"])
def test_round_trip_and_metadata(xrootd_gsi, tmp_path: Path, protocol: str) -> None:
    se = https_se(xrootd_gsi, "a", xrootd_gsi.proxy("usera"), protocol)
    data = os.urandom(3 * 1024 * 1024 + 5)
    src = tmp_path / "d.bin"
    src.write_bytes(data)
    lfn = f"/dirac/{protocol}/sub/d.bin"
    url = se.getURL(lfn, protocol)["Value"]["Successful"][lfn]
    assert url == f"{protocol}://localhost:{xrootd_gsi.http_port}/a/dirac/{protocol}/sub/d.bin"
    assert se.putFile({lfn: str(src)})["Value"]["Successful"] == {lfn: len(data)}
    stored = xrootd_gsi.root / "a" / lfn.lstrip("/")
    assert stored.read_bytes() == data  # on the server's disk, under the final name only
    assert [p.name for p in stored.parent.iterdir()] == ["d.bin"]
    meta = se.getFileMetadata(lfn)["Value"]["Successful"][lfn]
    assert meta["Size"] == len(data) and meta["Checksum"] == adler(data) and meta["File"]
    assert se.exists(lfn)["Value"]["Successful"] == {lfn: True}
    assert se.isFile(lfn)["Value"]["Successful"] == {lfn: True}
    assert se.getFileSize(lfn)["Value"]["Successful"] == {lfn: len(data)}
    folder = f"/dirac/{protocol}/sub"
    assert se.isDirectory(folder)["Value"]["Successful"] == {folder: True}
    listing = se.listDirectory(folder)["Value"]["Successful"][folder]
    assert list(listing["Files"]) == [f"/dirac/{protocol}/sub/d.bin"]
    assert listing["Files"][lfn]["Checksum"] == adler(data)
    out = tmp_path / "out"
    out.mkdir()
    assert se.getFile(lfn, localPath=str(out))["Value"]["Successful"] == {lfn: len(data)}
    assert (out / "d.bin").read_bytes() == data
    assert se.createDirectory(f"/dirac/{protocol}/new/deeper")["Value"]["Successful"]
    assert (xrootd_gsi.root / "a" / "dirac" / protocol / "new" / "deeper").is_dir()
    assert se.removeFile(lfn)["Value"]["Successful"] == {lfn: True}
    assert not stored.exists()
    assert se.exists(lfn)["Value"]["Successful"] == {lfn: False}
    removed = se.removeDirectory(f"/dirac/{protocol}", recursive=True)["Value"]["Successful"]
    assert removed == {f"/dirac/{protocol}": {"FilesRemoved": 0, "SizeRemoved": 0}}
    assert not (xrootd_gsi.root / "a" / "dirac" / protocol).exists()
    assert audit(xrootd_gsi, "grant", "usera", f"/a/dirac/{protocol}/")


def test_interrupted_download_resumes_with_range(xrootd_gsi, tmp_path: Path, monkeypatch) -> None:
    import requests

    se = https_se(xrootd_gsi, "a", xrootd_gsi.proxy("usera"))
    data = os.urandom(5 * 1024 * 1024)
    src = tmp_path / "r.bin"
    src.write_bytes(data)
    lfn = "/dirac/resume/r.bin"
    assert se.putFile({lfn: str(src)})["OK"]
    plugin = se.storages["DAV"]
    plugin.block_size = 1024 * 1024
    sent: list[dict] = []
    original = plugin.session.request

    def request(method, url, **kwargs):
        response = original(method, url, **kwargs)
        if method == "GET":
            sent.append(dict(kwargs.get("headers", {})))
            if len(sent) == 1:  # the first body breaks after two blocks
                chunks = response.iter_content

                def broken(size, _chunks=chunks):
                    for index, chunk in enumerate(_chunks(size)):
                        if index == 2:
                            raise requests.exceptions.ChunkedEncodingError("connection cut")
                        yield chunk

                response.iter_content = broken
            else:
                assert response.status_code == 206
        return response

    monkeypatch.setattr(plugin.session, "request", request)
    out = tmp_path / "out"
    out.mkdir()
    got = se.getFile(lfn, localPath=str(out))["Value"]
    assert got["Successful"] == {lfn: len(data)}, got
    assert (out / "r.bin").read_bytes() == data
    assert len(sent) == 2 and "Range" not in sent[0]
    assert sent[1]["Range"] == f"bytes={2 * 1024 * 1024}-{len(data) - 1}"


def test_corrupted_upload_is_refused_and_removed(xrootd_gsi, tmp_path: Path) -> None:
    from seproxy.localfs import LocalSource

    se = https_se(xrootd_gsi, "a", xrootd_gsi.proxy("usera"))
    src = tmp_path / "c.bin"
    src.write_bytes(b"content" * 1000)
    lfn = "/dirac/corrupt/c.bin"
    res = se.putFile({lfn: LocalSource(str(src), "0badc0de")})["Value"]
    assert "Checksum mismatch" in res["Failed"][lfn], res
    folder = xrootd_gsi.root / "a/dirac/corrupt"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_users_reach_only_their_directory_in_parallel(xrootd_gsi, tmp_path: Path) -> None:
    wrong = interleave(xrootd_gsi, lambda d, p: https_se(xrootd_gsi, d, p), tmp_path, "dmix")
    assert wrong == []
    assert cross_user_grants(xrootd_gsi, "https") == []
    for user, other in (("usera", "b"), ("userb", "a")):
        assert audit(xrootd_gsi, "grant", user, f"/{DIRECTORY[user]}/dirac/dmix/")
        assert audit(xrootd_gsi, "deny", user, f"/{other}/dirac/dmix/")


def test_refused_credentials_are_per_file_failures(xrootd_gsi, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"refused")
    lfn = "/dirac/drefused/f.bin"
    prefix = xrootd_gsi.pki.user_dn.rsplit("/CN=", 1)[0]
    cases = {
        "expired proxy": (expired_proxy(xrootd_gsi, "usera", tmp_path), f"{prefix}/CN=usera"),
        "unknown CA": (foreign_proxy(xrootd_gsi, tmp_path), xrootd_gsi.pki.user_dn),
        "unknown user": (xrootd_gsi.proxy(GSI_UNKNOWN_USER), f"{prefix}/CN={GSI_UNKNOWN_USER}"),
        "no credential": (None, None),
    }
    for case, (proxy, dn) in cases.items():
        se = https_se(xrootd_gsi, "a", proxy)
        res = se.putFile({lfn: str(src)})
        assert res["OK"], (case, res)
        reason = res["Value"]["Failed"].get(lfn, "")
        who = f"the credential of {dn}" if dn else "no credential"
        assert not res["Value"]["Successful"], (case, res)
        # refused in the TLS handshake (the certificate) or by the server's authorization
        assert f"refused {who}: 403" in reason or f"TLS handshake failed for {who}" in reason, \
            (case, res)
    assert not (xrootd_gsi.root / "a/dirac/drefused").exists()


def test_bearer_token_is_the_credential(xrootd_gsi, tmp_path: Path) -> None:
    """A macaroon XrdHttp issued to usera for /a: the token alone (no client certificate)
    writes and reads /a, is refused /b; a forged token is refused; the token's calls never
    share a connection pool with a proxy's."""
    token = xrootd_gsi.macaroon("usera", "/a/")
    src = tmp_path / "t.bin"
    data = os.urandom(70_000)
    src.write_bytes(data)
    lfn = "/dirac/token/t.bin"
    mine = https_se(xrootd_gsi, "a", None, token=token)
    assert mine.putFile({lfn: str(src)})["Value"]["Successful"] == {lfn: len(data)}
    assert (xrootd_gsi.root / "a" / lfn.lstrip("/")).read_bytes() == data
    assert mine.getFileMetadata(lfn)["Value"]["Successful"][lfn]["Checksum"] == adler(data)
    out = tmp_path / "out"
    out.mkdir()
    assert mine.getFile(lfn, localPath=str(out))["Value"]["Successful"] == {lfn: len(data)}
    assert (out / "t.bin").read_bytes() == data
    theirs = https_se(xrootd_gsi, "b", None, token=token).putFile({lfn: str(src)})["Value"]
    assert "refused the credential of a bearer token: 403" in theirs["Failed"][lfn], theirs
    forged = https_se(xrootd_gsi, "a", None, token=token[:-8] + "AAAAAAAA")
    res = forged.getFileMetadata(lfn)["Value"]
    assert "refused the credential of a bearer token: 403" in res["Failed"][lfn], res
    with_proxy = https_se(xrootd_gsi, "a", xrootd_gsi.proxy("usera")).storages["DAV"].session
    assert mine.storages["DAV"].session is not with_proxy is not forged.storages["DAV"].session


def test_unreadable_credential_fails_each_item_never_anonymous(xrootd_gsi, tmp_path: Path) -> None:
    from tests.storage.plugins.test_xroot_gsi import gsi_se

    missing = tmp_path / "no-such-proxy.pem"
    src = tmp_path / "f.bin"
    src.write_bytes(b"x")
    for se in (https_se(xrootd_gsi, "a", missing), gsi_se(xrootd_gsi, "a", missing)):
        lfns = ["/dirac/unreadable/f1", "/dirac/unreadable/f2"]
        res = se.exists(lfns)["Value"]
        assert set(res["Failed"]) == set(lfns) and not res["Successful"], res
        assert all(f"Cannot read the proxy {missing}" in reason for reason in res["Failed"].values())
        assert se.putFile({lfns[0]: str(src)})["Value"]["Failed"]
    assert not (xrootd_gsi.root / "a/dirac/unreadable").exists()
