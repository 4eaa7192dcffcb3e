"""Whose identity reaches the storage, asserted from the storage's side, for every
``CredentialSource`` (host, proxydir, delegation): the StorageElementProxy uploads a
caller's file to a File SE (the file's owner), an S3 SE (the access key in the requests
moto recorded), an XRootD SE with GSI and a WebDAV SE on XrdHttp (the server's audit log
names the user it authenticated and authorized)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from seproxy.handler.storage_element_proxy import StorageElementProxyHandler
from tests.fixtures.cfgtext import cfg_text
from tests.fixtures.servers import GSI_HOST_USER, GSI_USERS, signing_key
from tests.handler.conftest import NAME, REGISTRY, ProxyUnderTest
from tests.storage.helpers import file_section
from tests.storage.plugins.test_xroot_gsi import expired_proxy

#: what each source presents: (login the grid-map gives it, its directory on the server)
EXPECTED = {"host": GSI_HOST_USER, "proxydir": ("testuser", GSI_USERS["testuser"]),
            "delegation": ("testuser", GSI_USERS["testuser"])}


def se_config(storage: Path, gsi, s3=None, bucket: str = "") -> str:
    def se(protocol: str, section: dict) -> dict:
        return {"AccessProtocols": protocol, "WriteProtocols": protocol, "Main": section}

    ses = {"SE-FILE": se("file", file_section(str(storage)))}
    if s3 is not None:
        ses["SE-S3"] = se("s3", s3.section(bucket, Timeout="20"))
    for source, (_login, directory) in EXPECTED.items():
        ses[f"SE-XRD-{source}"] = se("root", gsi.section(f"/{directory}", Timeout="20"))
        ses[f"SE-DAV-{source}"] = se("davs", gsi.https_section(f"/{directory}", "davs",
                                                               Timeout="20"))
    return cfg_text({"Resources": {"StorageElements": ses}})


@pytest.fixture
def service_with(seproxy_service, pki, tmp_path, xrootd_gsi, moto_s3):
    bucket = moto_s3.create_bucket(f"id{os.urandom(6).hex()}")

    def start(source: str, **options) -> ProxyUnderTest:
        storage = tmp_path / "storage"
        storage.mkdir(exist_ok=True)
        opts = {"BasePath": str(tmp_path / "cache"), "HttpAccess": False, "MaxThreads": 4,
                "CredentialSource": source, **options}
        svc = seproxy_service(StorageElementProxyHandler, name=NAME, protocol="dips",
                              options=opts, registry=REGISTRY,
                              authorization={"Default": "authenticated",
                                             "FileTransfer/Default": "authenticated"},
                              cfg_text=se_config(storage, xrootd_gsi, moto_s3, bucket))
        running = ProxyUnderTest(svc, pki, storage, Path(opts["BasePath"]))
        running.bucket = bucket
        return running

    return start


def upload(proxy: ProxyUnderTest, src: Path, se: str, lfn: str) -> dict:
    sent = proxy.transfer().sendFile(str(src), f"putFile/{os.path.basename(lfn)}")
    assert sent["OK"], sent
    return proxy.rpc().uploadFile(se, lfn)


def granted(gsi, protocol: str, login: str, path: str) -> bool:
    pattern = re.compile(rf"acc_Audit: \S+ grant {protocol} {re.escape(login)}@\S+ \w+ "
                         rf"{re.escape(path)}")
    return any(pattern.search(line) for line in gsi.log_text().splitlines())


@pytest.mark.parametrize("source", list(EXPECTED))
def test_the_storage_sees_the_credential_source(service_with, xrootd_gsi, moto_s3, tmp_path,
                                                source):
    options = {}
    if source == "proxydir":
        proxies = tmp_path / "proxies"
        proxies.mkdir()
        options["ProxyDir"] = str(proxies)
    proxy = service_with(source, **options)
    state = proxy.state
    if source == "proxydir":
        shutil.copy(proxy.proxy(), proxies / "testuser-dirac_user")
        os.chmod(proxies / "testuser-dirac_user", 0o600)
    src = tmp_path / "payload.bin"
    src.write_bytes(os.urandom(50_000))
    login, directory = EXPECTED[source]
    for kind, protocol in (("XRD", "gsi"), ("DAV", "https")):
        lfn = f"/dirac/id/{source}-{kind}.bin"
        res = upload(proxy, src, f"SE-{kind}-{source}", lfn)
        assert res["OK"], (kind, res)
        stored = xrootd_gsi.root / directory / lfn.lstrip("/")
        assert stored.read_bytes() == src.read_bytes()
        # the server authenticated and authorized exactly this login for this file
        assert granted(xrootd_gsi, protocol, login, f"/{directory}/dirac/id/"), (kind, login)
    res = upload(proxy, src, "SE-FILE", f"/dirac/id/{source}.bin")
    assert res["OK"], res
    # a File SE sees the service's own account, whatever the caller
    assert (proxy.storage / f"dirac/id/{source}.bin").stat().st_uid == os.getuid()
    # an S3 SE sees the access key of its section (recorded by the server), whatever the caller
    with moto_s3.recording() as recorded:
        res = upload(proxy, src, "SE-S3", f"/dirac/id/{source}-s3.bin")
        assert res["OK"], res
    keys = {signing_key(entry) for entry in recorded() if f"/{proxy.bucket}/" in entry["url"]}
    assert keys == {moto_s3.access_key}
    assert state.credentials.kind == source


def test_a_refused_credential_is_a_clear_failure(service_with, xrootd_gsi, tmp_path):
    proxies = tmp_path / "proxies"
    proxies.mkdir()
    proxy = service_with("proxydir", ProxyDir=str(proxies))
    expired = expired_proxy(xrootd_gsi, "testuser", tmp_path)
    shutil.copy(expired, proxies / "testuser-dirac_user")
    os.chmod(proxies / "testuser-dirac_user", 0o600)
    src = tmp_path / "payload.bin"
    src.write_bytes(b"refused")
    dn = proxy.pki.user_dn
    for kind in ("XRD", "DAV"):
        res = upload(proxy, src, f"SE-{kind}-proxydir", f"/dirac/refused/{kind}.bin")
        assert not res["OK"], res
        assert dn in res["Message"] and ("Auth failed" in res["Message"]
                                         or "TLS handshake failed" in res["Message"]), res
    assert not (xrootd_gsi.root / "t/dirac/refused").exists()


def test_proxymanager_source_reaches_the_storage_in_memory(xrootd_gsi, pki, tmp_path):
    """CredentialSource = ProxyManager (a scripted ProxyManager signing with testuser's
    stored proxy, as tests/dirac/test_proxymanager.py): the XROOT-GSI and HTTPS servers
    authorize testuser, and the proxy never had to be written to the scratch directory."""
    from seproxy.config import Config
    from seproxy.dirac.proxymanager import ProxyManagerSource
    from seproxy.handler.credentials import CredentialSource
    from seproxy.storage import StorageElement
    from tests.dirac.test_proxymanager import FakeProxyManager

    cfg = Config.from_text(cfg_text({"DIRAC": {"Security": {"CALocation": str(pki.ca_dir)}}}))
    stored = {pki.user_dn: pki.proxy(group=None, lifetime=86400)}
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    source = CredentialSource("ProxyManager", scratch_dir=scratch,
                              proxy_manager=ProxyManagerSource(cfg, call=FakeProxyManager(stored)))
    se_cfg = Config.from_text(se_config(tmp_path / "storage", xrootd_gsi))
    src = tmp_path / "pm.bin"
    src.write_bytes(os.urandom(30_000))
    caller = {"DN": pki.user_dn, "group": "dirac_user", "username": "testuser"}
    for kind, protocol in (("XRD", "gsi"), ("DAV", "https")):
        lfn = f"/dirac/id/proxymanager-{kind}.bin"
        with source.for_caller(caller, "dirac") as creds:
            se = StorageElement(f"SE-{kind}-proxydir", vo="dirac", config=se_cfg, credentials=creds)
            res = se.putFile({lfn: str(src)})
            assert list(scratch.iterdir()) == []  # used from memory
        assert res["OK"] and lfn in res["Value"]["Successful"], (kind, res)
        assert (xrootd_gsi.root / "t" / lfn.lstrip("/")).read_bytes() == src.read_bytes()
        assert granted(xrootd_gsi, protocol, "testuser", "/t/dirac/id/proxymanager"), kind


@pytest.mark.interop
def test_dirac9_client_upload_reaches_the_storage_as_its_user(service_with, xrootd_gsi, tmp_path,
                                                              dirac9_client):
    """A real DIRAC 9 client (it delegates its proxy) uploads through the service into the
    XROOT-GSI and HTTPS SEs: the servers authorize testuser."""
    proxy = service_with("delegation")
    client = dirac9_client.with_(proxy=proxy.proxy(), encoding="json")
    url = proxy.svc.url
    local = tmp_path / "dirac9.bin"
    local.write_bytes(os.urandom(40_000))
    for kind, protocol in (("XRD", "gsi"), ("DAV", "https")):
        lfn = f"/dirac/id/dirac9-{kind}.bin"
        outs = client.run(
            {"transfer": url, "method": "sendFile", "args": [str(local), f"putFile/dirac9-{kind}.bin"]},
            {"rpc": url, "method": "uploadFile", "args": [f"SE-{kind}-delegation", lfn]},
        )
        sent, uploaded = (o.unwrap() for o in outs)
        assert sent["OK"], sent
        assert uploaded["OK"] and uploaded["Value"] == 40_000, (kind, uploaded)
        assert (xrootd_gsi.root / "t" / lfn.lstrip("/")).read_bytes() == local.read_bytes()
        assert granted(xrootd_gsi, protocol, "testuser", "/t/dirac/id/dirac9"), kind
    assert proxy.state.credentials.delegations == 1  # one delegated proxy for both uploads
