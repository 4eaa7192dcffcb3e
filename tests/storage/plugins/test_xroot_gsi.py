"""XROOT with GSI, per call: the identity the xrootd server sees is the call's credential.

The server (``xrootd_gsi``): GSI with our dev CA, grid-map file required, an
authorization database giving usera only ``/a`` and userb only ``/b``; its audit
log names every grant and denial with the authenticated user. Assertions are
made from the server's side (its disk, its audit log) as well as the caller's.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from seproxy.security import pki as devpki
from seproxy.storage import StorageCredentials, StorageElement
from tests.fixtures.servers import GSI_UNKNOWN_USER
from tests.storage.helpers import make_config, se_tree
from tests.storage.plugins import two_users
from tests.storage.plugins.two_users import DIRECTORY, cross_user_grants, interleave


def gsi_se(gsi, directory: str, proxy: Path | None) -> StorageElement:
    tree = se_tree("SE-GSI", {"XROOT": gsi.section(f"/{directory}", Timeout="20")},
                   AccessProtocols="root", WriteProtocols="root")
    creds = StorageCredentials(proxy_path=proxy) if proxy else None
    return StorageElement("SE-GSI", config=make_config(tree), credentials=creds)


def audit(gsi, verdict: str, user: str, path_part: str) -> list[str]:
    return two_users.audit(gsi, "gsi", verdict, user, path_part)


def test_each_user_reaches_only_its_directory(xrootd_gsi, tmp_path: Path) -> None:
    proxy_a = xrootd_gsi.proxy("usera")
    src = tmp_path / "mine.bin"
    data = os.urandom(100_000)
    src.write_bytes(data)
    lfn = "/dirac/own/mine.bin"
    mine = gsi_se(xrootd_gsi, "a", proxy_a)
    assert mine.putFile({lfn: str(src)})["Value"]["Successful"] == {lfn: len(data)}
    assert (xrootd_gsi.root / "a/dirac/own/mine.bin").read_bytes() == data
    out = tmp_path / "out"
    out.mkdir()
    assert mine.getFile(lfn, localPath=str(out))["Value"]["Successful"] == {lfn: len(data)}
    assert (out / "mine.bin").read_bytes() == data
    # the server saw usera (from the proxy's DN through its grid-map file), not anybody else
    assert audit(xrootd_gsi, "grant", "usera", "/a/dirac/own/")

    theirs = gsi_se(xrootd_gsi, "b", proxy_a)
    res = theirs.putFile({lfn: str(src)})["Value"]
    assert lfn in res["Failed"] and not res["Successful"]
    assert "permission denied" in res["Failed"][lfn].lower(), res
    assert not (xrootd_gsi.root / "b/dirac/own").exists()
    assert audit(xrootd_gsi, "deny", "usera", "/b/dirac/own")
    for name in ("X509_USER_PROXY", "XrdSecGSIUSERPROXY", "XrdSecCREDS"):
        assert str(proxy_a) not in os.environ.get(name, "")


def test_two_credentials_never_share_a_connection(xrootd_gsi) -> None:
    proxy_a, proxy_b = xrootd_gsi.proxy("usera"), xrootd_gsi.proxy("userb")
    a1 = gsi_se(xrootd_gsi, "a", proxy_a).storages["XROOT"]
    a2 = gsi_se(xrootd_gsi, "a", proxy_a).storages["XROOT"]
    b = gsi_se(xrootd_gsi, "a", proxy_b).storages["XROOT"]
    # XrdCl's pool key is user@host:port plus the credential parameters of the URL
    assert a1.server == a2.server != b.server
    assert a1._opaque == a2._opaque != b._opaque
    # the same path rewritten with another user's proxy is another credential
    reused = xrootd_gsi.proxies / "reused.pem"
    reused.write_bytes(proxy_a.read_bytes())
    first = gsi_se(xrootd_gsi, "a", reused).storages["XROOT"]
    reused.write_bytes(proxy_b.read_bytes())
    second = gsi_se(xrootd_gsi, "a", reused).storages["XROOT"]
    assert first.server == a1.server and second.server == b.server
    assert str(reused) not in first._opaque + second._opaque  # XRootD gets private copies


def test_parallel_users_get_only_their_own_rights(xrootd_gsi, tmp_path: Path) -> None:
    """usera and userb, 8 calls at a time, 160 operations: each result is what that
    user's rights allow, and the server log shows no cross-user access."""
    wrong = interleave(xrootd_gsi, lambda d, p: gsi_se(xrootd_gsi, d, p), tmp_path, "mix")
    assert wrong == []
    assert cross_user_grants(xrootd_gsi, "gsi") == []
    # server side: every login (one per credential) was only ever one user
    logins = two_users.users_per_login(xrootd_gsi, "gsi")
    assert logins and all(len(users) == 1 for users in logins.values()), logins
    for user, other in (("usera", "b"), ("userb", "a")):
        assert audit(xrootd_gsi, "grant", user, f"/{DIRECTORY[user]}/dirac/mix/")
        assert audit(xrootd_gsi, "deny", user, f"/{other}/dirac/mix/")


def expired_proxy(gsi, user: str, directory: Path) -> Path:
    cert, key = gsi.pki.dev.user_paths(user)
    now = devpki.utcnow()
    proxy, proxy_key = devpki.create_proxy_certificate(
        [devpki.load_cert(cert)], devpki.load_key(key), group="dirac_user",
        not_before=now - datetime.timedelta(hours=3), not_after=now - datetime.timedelta(hours=1))
    return devpki.write_private(directory / f"expired-{user}.pem",
                                devpki.proxy_pem(proxy, proxy_key, [devpki.load_cert(cert)]))


def foreign_proxy(gsi, directory: Path) -> Path:
    """A proxy of usera's DN issued under a CA the server does not trust."""
    cert = devpki.load_cert(gsi.pki.other_user_cert)
    key = devpki.load_key(gsi.pki.other_user_key)
    return devpki.write_private(directory / "foreign.pem",
                                devpki.create_proxy(cert, key, group="dirac_user"))


def test_refused_credentials_are_per_file_failures(xrootd_gsi, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"refused")
    lfn = "/dirac/refused/f.bin"
    prefix = xrootd_gsi.pki.user_dn.rsplit("/CN=", 1)[0]
    cases = {  # case: (proxy, the DN the failure names)
        "expired proxy": (expired_proxy(xrootd_gsi, "usera", tmp_path), f"{prefix}/CN=usera"),
        "unknown CA": (foreign_proxy(xrootd_gsi, tmp_path), xrootd_gsi.pki.user_dn),
        "unknown user": (xrootd_gsi.proxy(GSI_UNKNOWN_USER), f"{prefix}/CN={GSI_UNKNOWN_USER}"),
    }
    for case, (proxy, dn) in cases.items():
        se = gsi_se(xrootd_gsi, "a", proxy)
        res = se.putFile({lfn: str(src)})
        assert res["OK"], (case, res)
        reason = res["Value"]["Failed"].get(lfn, "")
        assert not res["Value"]["Successful"] and f"failed for the credential of {dn}: " in reason, (case, res)
        assert "Auth failed" in reason and "gsiusrpxy" not in reason, (case, res)
        meta = se.getFileMetadata(lfn)["Value"]
        assert lfn in meta["Failed"] and dn in meta["Failed"][lfn], (case, meta)
    assert not (xrootd_gsi.root / "a/dirac/refused").exists()


def test_old_bindings_or_overriding_environment_refuse_per_call_credentials(
        xrootd_gsi, tmp_path: Path, monkeypatch) -> None:
    from seproxy.storage.plugins import xroot_gsi

    proxy = xrootd_gsi.proxy("usera")
    monkeypatch.setattr(xroot_gsi, "_bindings_version", lambda: (5, 6, 1))
    res = gsi_se(xrootd_gsi, "a", proxy).exists("/dirac/x")["Value"]
    assert "need the xrootd bindings >= 5.7.1 (installed: 5.6.1)" in res["Failed"]["/dirac/x"]
    monkeypatch.undo()
    monkeypatch.setenv("XrdSecCREDS", "anything")
    res = gsi_se(xrootd_gsi, "a", proxy).exists("/dirac/x")["Value"]
    assert "XrdSecCREDS is set in the environment" in res["Failed"]["/dirac/x"]
