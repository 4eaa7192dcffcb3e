"""XROOT with GSI, per call: the identity the xrootd server sees is the call's credential.

The server (``xrootd_gsi``): GSI with our dev CA, grid-map file required, an
authorization database giving usera only ``/a`` and userb only ``/b``; its audit
log names every grant and denial with the authenticated user. Assertions are
made from the server's side (its disk, its audit log) as well as the caller's.
"""

from __future__ import annotations

import datetime
import os
import random
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from seproxy.security import pki as devpki
from seproxy.storage import StorageCredentials, StorageElement
from tests.fixtures.servers import GSI_UNKNOWN_USER
from tests.storage.helpers import make_config, se_tree

DIRECTORY = {"usera": "a", "userb": "b"}


def gsi_se(gsi, directory: str, proxy: Path | None) -> StorageElement:
    tree = se_tree("SE-GSI", {"XROOT": gsi.section(f"/{directory}", Timeout="20")},
                   AccessProtocols="root", WriteProtocols="root")
    creds = StorageCredentials(proxy_path=proxy) if proxy else None
    return StorageElement("SE-GSI", config=make_config(tree), credentials=creds)


def audit(gsi, verdict: str, user: str, path_part: str) -> list[str]:
    pattern = re.compile(rf"acc_Audit: \S+ {verdict} gsi {user}@\S+ \w+ \S*{re.escape(path_part)}")
    return [line for line in gsi.log_text().splitlines() if pattern.search(line)]


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
    assert not (xrootd_gsi.root / "b/dirac").exists()
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
    proxies = {user: xrootd_gsi.proxy(user) for user in DIRECTORY}
    payload = {user: os.urandom(20_000) + user.encode() for user in DIRECTORY}
    sources = {}
    for user, data in payload.items():
        sources[user] = tmp_path / f"{user}.bin"
        sources[user].write_bytes(data)
    rng = random.Random(1234)
    plan = [(i, rng.choice(list(DIRECTORY)), rng.choice(list(DIRECTORY.values())),
             rng.choice(["put", "get", "meta"])) for i in range(160)]
    # every user has one file in its own directory before the mix starts
    for user, directory in DIRECTORY.items():
        seed = gsi_se(xrootd_gsi, directory, proxies[user])
        assert seed.putFile({"/dirac/mix/seed.bin": str(sources[user])})["OK"]
    lock = threading.Lock()
    wrong: list[str] = []

    def operate(step: tuple[int, str, str, str]) -> None:
        index, user, directory, op = step
        se = gsi_se(xrootd_gsi, directory, proxies[user])  # a fresh SE per call, as the service
        allowed = DIRECTORY[user] == directory
        owner = next(u for u, d in DIRECTORY.items() if d == directory)
        if op == "put":
            lfn = f"/dirac/mix/{user}-{index}.bin"
            res = se.putFile({lfn: str(sources[user])})["Value"]
            ok = lfn in res["Successful"]
            stored = xrootd_gsi.root / directory / lfn.lstrip("/")
            if ok and stored.read_bytes() != payload[user]:
                ok = False
        elif op == "get":
            out = tmp_path / f"get-{index}"
            out.mkdir()
            res = se.getFile("/dirac/mix/seed.bin", localPath=str(out))["Value"]
            ok = "/dirac/mix/seed.bin" in res["Successful"]
            if ok and (out / "seed.bin").read_bytes() != payload[owner]:
                ok = False
        else:
            res = se.getFileMetadata("/dirac/mix/seed.bin")["Value"]
            ok = "/dirac/mix/seed.bin" in res["Successful"]
        if ok != allowed:
            with lock:
                wrong.append(f"{step}: {res}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(operate, plan))
    assert len(plan) >= 100 and wrong == []
    log = gsi_log_lines = xrootd_gsi.log_text().splitlines()
    assert gsi_log_lines
    cross = [line for line in log if re.search(r"grant gsi usera@\S+ \w+ /b/", line)
             or re.search(r"grant gsi userb@\S+ \w+ /a/", line)]
    assert cross == []
    assert audit(xrootd_gsi, "grant", "usera", "/a/dirac/mix/")
    assert audit(xrootd_gsi, "grant", "userb", "/b/dirac/mix/")
    assert audit(xrootd_gsi, "deny", "usera", "/b/dirac/mix/")
    assert audit(xrootd_gsi, "deny", "userb", "/a/dirac/mix/")


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
