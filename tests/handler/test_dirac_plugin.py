"""DIRAC users through seproxy: unmodified DIRAC 9.1.22 and 8.0.86 ``StorageElement`` with
``UseProxy = True``, with this checkout ``pip install``-ed into (a copy of) their venv, so
that DIRAC loads ``Resources.Storage.ProxyStorage`` from the seproxy extension.

Every result through the proxy equals a direct File-plugin access by the same DIRAC, in
both encodings; error cases give DIRAC's per-file ``Failed`` entries and no exception.
Nothing of DIRAC is patched on the proxy path; DIRAC 9's ResourceStatus client is stood in
for in-process (every SE Active), as no ResourceStatus service runs here.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest

from seproxy.storage import StorageElement
from tests.conftest import free_port
from tests.fixtures.cfgtext import cfg_text
from tests.fixtures.dirac import INSTANCE_8, merge_cfg
from tests.handler.conftest import REGISTRY, SE, se_cfg
from tests.interop.peer_venv import (
    FREEZE_AFTER,
    FREEZE_BEFORE,
    InteropSetupError,
    ensure_seproxy_venv,
    parse_freeze,
)
from tests.storage.helpers import make_config, se_tree
from tests.storage.test_dirac_compare import RSS_CS_FALLBACK

pytestmark = pytest.mark.interop

MiB = 1024 * 1024
D = "/dirac/user/t"
MISSING = f"{D}/missing.bin"


def proxy_cfg(major: int, urls: str, failover: str = "", *, se: str = SE) -> str:
    """UseProxy for ``se`` and the proxy URLs, in the layout of DIRAC ``major``."""
    section: dict[str, Any] = {"URLs": {"StorageElementProxy": urls}}
    if failover:
        section["FailoverURLs"] = {"StorageElementProxy": failover}
    system = {INSTANCE_8: section} if major < 9 else section
    return cfg_text({"LocalSite": {"StorageElements": {se: {"UseProxy": "True"}}},
                     "Systems": {"DataManagement": system}})


def client_for(request: pytest.FixtureRequest, major: int, encoding: str, storage: Path,
               proxy: str, extra: str = "") -> Any:
    client = request.getfixturevalue(f"dirac{major}_seproxy_client")
    return client.with_(cfg_extra=merge_cfg(REGISTRY, se_cfg(storage), extra), proxy=proxy,
                        encoding=encoding)


def run_se(client: Any, major: int, *calls: tuple) -> list[Any]:
    """StorageElement calls in one DIRAC process; each returns DIRAC's result (never raises)."""
    prelude = [{"exec": RSS_CS_FALLBACK}] if major >= 9 else []
    outs = client.run(*prelude, *({"se": se, "method": m, "args": list(a), "kwargs": k}
                                  for se, m, a, k in calls))
    return [o.unwrap() for o in outs[len(prelude):]]


def se_call(method: str, *args: Any, se: str = SE, **kwargs: Any) -> tuple:
    return (se, method, args, kwargs)


def write_files(folder: Path, sizes: list[int]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for size in sizes:
        path = folder / f"f{size}.bin"
        with path.open("wb") as out:
            left = size
            while left:
                out.write(os.urandom(min(left, 4 * MiB)))
                left -= min(left, 4 * MiB)
        files[f"{D}/{path.name}"] = path
    return files


def leaf_differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two nested results differ (for failure messages)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in a.keys() | b.keys()
                for d in leaf_differences(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{where}/{k}")]
    return [] if (type(a), a) == (type(b), b) else [f"{where}: {a!r} != {b!r}"]


READS = ("exists", "isFile", "getFileSize", "getFileMetadata")


def roundtrip(request: pytest.FixtureRequest, se_proxy: Any, tmp_path: Path, major: int,
              encoding: str, sizes: list[int]) -> None:
    files = write_files(tmp_path / "up", sizes)
    lfns = [*files, MISSING]
    down = tmp_path / "down"
    down.mkdir()
    via = client_for(request, major, encoding, se_proxy.storage, se_proxy.proxy(),
                     proxy_cfg(major, se_proxy.svc.url))
    put, *reads, listing, is_dir, dir_size, dir_meta, get = run_se(
        via, major, se_call("putFile", {lfn: str(p) for lfn, p in files.items()}),
        *(se_call(m, lfns) for m in READS), se_call("listDirectory", [D, f"{D}/nodir"]),
        se_call("isDirectory", [D, MISSING]), se_call("getDirectorySize", D),
        se_call("getDirectoryMetadata", D), se_call("getFile", lfns, localPath=str(down)))
    sizes_by_lfn = {lfn: p.stat().st_size for lfn, p in files.items()}
    assert put == {"OK": True, "Value": {"Failed": {}, "Successful": sizes_by_lfn}}, put
    for lfn, path in files.items():
        assert (se_proxy.storage / lfn.lstrip("/")).read_bytes() == path.read_bytes()
        assert (down / path.name).read_bytes() == path.read_bytes()
    assert get["OK"] and get["Value"]["Successful"] == sizes_by_lfn, get
    assert set(get["Value"]["Failed"]) == {MISSING}
    assert not (down / "missing.bin").exists()

    direct = client_for(request, major, encoding, se_proxy.storage, se_proxy.proxy())
    down2 = tmp_path / "down-direct"
    down2.mkdir()
    *d_reads, d_listing, d_is_dir, d_dir_size, d_dir_meta, d_get = run_se(
        direct, major, *(se_call(m, lfns) for m in READS), se_call("listDirectory", [D, f"{D}/nodir"]),
        se_call("isDirectory", [D, MISSING]), se_call("getDirectorySize", D),
        se_call("getDirectoryMetadata", D), se_call("getFile", lfns, localPath=str(down2)))
    pairs = [*zip(reads, d_reads, strict=False), (listing, d_listing), (is_dir, d_is_dir), (dir_size, d_dir_size),
             (dir_meta, d_dir_meta)]
    for proxied, plain in pairs:
        assert proxied == plain, leaf_differences(proxied, plain)
    assert reads[0]["Value"]["Successful"] == {**{lfn: True for lfn in files}, MISSING: False}
    assert get == d_get  # the same sizes and the same message for the missing file

    removed, gone = run_se(via, major, se_call("removeFile", list(files)), se_call("exists", list(files)))
    assert removed == {"OK": True, "Value": {"Failed": {}, "Successful": {lfn: True for lfn in files}}}
    assert gone["Value"]["Successful"] == {lfn: False for lfn in files}
    assert not any((se_proxy.storage / lfn.lstrip("/")).exists() for lfn in files)


@pytest.mark.parametrize("encoding", ["json", "dencode"])
@pytest.mark.parametrize("major", [9, 8])
def test_storage_element_through_the_proxy_equals_direct(request, se_proxy, tmp_path, major, encoding):
    roundtrip(request, se_proxy, tmp_path, major, encoding, [0, 1, MiB + 5, 9 * MiB])


@pytest.mark.slow
@pytest.mark.parametrize("major", [9, 8])
def test_300_mib_through_the_proxy(request, se_proxy, tmp_path, major):
    roundtrip(request, se_proxy, tmp_path, major, "json" if major >= 9 else "dencode", [300 * MiB])


def assert_install_changed_nothing(venv_path: Path) -> None:
    before = parse_freeze((venv_path / FREEZE_BEFORE).read_text())
    after = parse_freeze((venv_path / FREEZE_AFTER).read_text())
    assert "dirac" in before and "m2crypto" in before and "seproxy" not in before
    assert {name: after.get(name) for name in before} == before
    assert "seproxy" in after


def test_pip_install_changes_no_dirac_package(dirac9_seproxy_client, dirac8_seproxy_client):
    for client in (dirac9_seproxy_client, dirac8_seproxy_client):
        assert_install_changed_nothing(client.venv.path)


#: what a full `pip install DIRAC==9.1.22` has and the minimal peer venv lacks (issue 14)
DIRAC9_CRYPTOGRAPHY = "cryptography==51.0.1"


@pytest.mark.xfail(strict=True, reason="pyOpenSSL (26.4.0, the newest) requires cryptography < 51, so "
                   "installing seproxy downgrades a DIRAC 9.1 environment's cryptography 51.0.1 to 50.0.2")
def test_pip_install_keeps_dirac9s_newest_cryptography(dirac9_venv):
    try:
        venv = ensure_seproxy_venv(dirac9_venv, preinstall=(DIRAC9_CRYPTOGRAPHY,))
    except InteropSetupError as exc:
        pytest.fail(str(exc), pytrace=False)
    assert_install_changed_nothing(venv.path)


def test_dirac_loads_seproxys_module_and_keeps_its_own_rank(request, dirac9_seproxy_client,
                                                           dirac8_seproxy_client):
    probe = ("from DIRAC.Core.Utilities.ObjectLoader import ObjectLoader\n"
             "from DIRAC.Core.Utilities.Extensions import extensionsByPriority\n"
             "from DIRAC.Core.Utilities.Version import getCurrentVersion, getVersion\n"
             "import DIRAC\n"
             "res = ObjectLoader().loadObject('Resources.Storage.ProxyStorage')\n"
             "result = [res['OK'] and res['Value'].__module__, extensionsByPriority(),\n"
             "          getCurrentVersion()['Value'] == DIRAC.version,\n"
             "          sorted(getVersion()['Value']['Extensions'])]\n")
    for client in (dirac9_seproxy_client, dirac8_seproxy_client):
        module, ranked, version_is_dirac, versions = client.run({"exec": probe})[0].unwrap()
        assert module == "seproxy.Resources.Storage.ProxyStorage"
        assert ranked == ["DIRAC", "seproxy"]
        assert version_is_dirac
        assert versions == ["DIRAC", "seproxy"]


# ----------------------------------------------------------------------------- errors


def dead_url() -> str:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"dips://127.0.0.1:{port}/DataManagement/StorageElementProxy"


@pytest.mark.parametrize("major", [9, 8])
def test_first_url_dead_second_alive(request, se_proxy, tmp_path, major):
    files = write_files(tmp_path / "up", [1000])
    (lfn, path), = files.items()
    via = client_for(request, major, None, se_proxy.storage, se_proxy.proxy(),
                     proxy_cfg(major, dead_url(), failover=se_proxy.svc.url))
    put, size, get = run_se(via, major, se_call("putFile", {lfn: str(path)}), se_call("getFileSize", lfn),
                            se_call("getFile", lfn, localPath=str(tmp_path)))
    assert put["Value"] == {"Failed": {}, "Successful": {lfn: 1000}}, put
    assert size["Value"] == {"Failed": {}, "Successful": {lfn: 1000}}
    assert get["Value"] == {"Failed": {}, "Successful": {lfn: 1000}}


@pytest.mark.parametrize("major", [9, 8])
def test_errors_are_per_file_failures(request, se_proxy_factory, tmp_path, major):
    se_proxy = se_proxy_factory(MaxFileSize=5000)
    files = write_files(tmp_path / "up", [100, 6000])
    small, big = files
    unknown = "SE-NOT-AT-PROXY"
    extra = merge_cfg(proxy_cfg(major, se_proxy.svc.url), proxy_cfg(major, se_proxy.svc.url, se=unknown),
                      se_cfg(tmp_path / "elsewhere", unknown))
    via = client_for(request, major, None, se_proxy.storage, se_proxy.proxy(), extra)
    put, missing, other_se, down = run_se(
        via, major, se_call("putFile", {lfn: str(p) for lfn, p in files.items()}),
        se_call("getFile", MISSING, localPath=str(tmp_path)),
        se_call("exists", small, se=unknown), se_call("exists", small))
    assert put["OK"] and put["Value"]["Successful"] == {small: 100}, put
    assert "File too large: 6000 bytes, MaxFileSize is 5000" in put["Value"]["Failed"][big]
    assert missing["OK"] and missing["Value"]["Successful"] == {}
    assert MISSING in missing["Value"]["Failed"]
    assert other_se["OK"] and other_se["Value"]["Successful"] == {}
    assert other_se["Value"]["Failed"][small]
    # local sources that cannot be read, and a wrong sourceSize: the File plugin's words
    bad = {f"{D}/nofile": str(tmp_path / "nofile"), f"{D}/adir": str(tmp_path)}
    calls = (se_call("putFile", bad), se_call("putFile", {f"{D}/sized": str(files[small])}, sourceSize=99))
    direct = client_for(request, major, None, se_proxy.storage, se_proxy.proxy())
    assert run_se(via, major, *calls) == run_se(direct, major, *calls)
    # everything dead: per-file failures, no exception in the user's process
    nowhere = client_for(request, major, None, se_proxy.storage, se_proxy.proxy(),
                         proxy_cfg(major, dead_url()))
    dead_put, dead_exists = run_se(nowhere, major, se_call("putFile", {small: str(files[small])}),
                                   se_call("exists", small))
    assert down["Value"]["Successful"] == {small: True}
    for result in (dead_put, dead_exists):
        assert result["OK"] and result["Value"]["Successful"] == {}
        assert "Can't connect to" in result["Value"]["Failed"][small], result


# ----------------------------------------------------------------------------- S3 and XROOT


def backend_tree(request: pytest.FixtureRequest, backend: str) -> tuple[str, dict[str, Any]]:
    """An SE of ``backend`` on its test server (moto / xrootd): name and configuration tree."""
    tag = uuid.uuid4().hex[:12]
    if backend == "S3":
        server = request.getfixturevalue("moto_s3")
        section, protocol = server.section(server.create_bucket(f"b{tag}")), "s3"
    else:
        server = request.getfixturevalue("xrootd_server")
        section, protocol = server.section(f"/p{tag}", Timeout="10"), "root"
    name = f"SE-{backend}"
    return name, se_tree(name, {backend: section}, AccessProtocols=protocol, WriteProtocols=protocol)


@pytest.mark.parametrize("backend", ["S3", "XROOT"])
@pytest.mark.parametrize("major", [9, 8])
def test_s3_and_xroot_through_the_proxy(request, se_proxy_factory, tmp_path, major, backend):
    """The same story on S3 (moto) and XROOT (xrootd) SEs behind the proxy; "direct" is
    seproxy's own StorageElement on the same configuration (the DIRAC venvs have neither
    boto3 nor the XRootD bindings), itself compared with DIRAC's in tests/storage."""
    name, tree = backend_tree(request, backend)
    se_text = cfg_text(tree)
    se_proxy = se_proxy_factory(extra_cfg=se_text)
    files = write_files(tmp_path / "up", [0, 1, MiB + 5, 9 * MiB])
    lfns = [*files, MISSING]
    down = tmp_path / "down"
    down.mkdir()
    via = client_for(request, major, None, se_proxy.storage, se_proxy.proxy(),
                     merge_cfg(se_text, proxy_cfg(major, se_proxy.svc.url, se=name)))
    put, *reads, listing, get = run_se(
        via, major, se_call("putFile", {lfn: str(p) for lfn, p in files.items()}, se=name),
        *(se_call(m, lfns, se=name) for m in READS), se_call("listDirectory", D, se=name),
        se_call("getFile", lfns, localPath=str(down), se=name))
    sizes_by_lfn = {lfn: p.stat().st_size for lfn, p in files.items()}
    assert put == {"OK": True, "Value": {"Failed": {}, "Successful": sizes_by_lfn}}, put
    assert get["OK"] and get["Value"]["Successful"] == sizes_by_lfn, get
    assert set(get["Value"]["Failed"]) == {MISSING}
    for path in files.values():
        assert (down / path.name).read_bytes() == path.read_bytes()

    direct = StorageElement(name, vo="dirac", config=make_config(tree))
    for method, proxied in zip(READS, reads, strict=False):
        plain = getattr(direct, method)(lfns)
        assert proxied["OK"] and proxied["Value"]["Successful"] == plain["Value"]["Successful"], \
            leaf_differences(proxied, plain)
        assert set(proxied["Value"]["Failed"]) == set(plain["Value"]["Failed"]) == (
            set() if method == "exists" else {MISSING})
    assert listing["Value"]["Successful"][D]["Files"].keys() == set(files)
    assert listing["Value"] == direct.listDirectory(D)["Value"]

    removed, gone = run_se(via, major, se_call("removeFile", list(files), se=name),
                           se_call("exists", list(files), se=name))
    assert removed["Value"] == {"Failed": {}, "Successful": {lfn: True for lfn in files}}
    assert gone["Value"]["Successful"] == {lfn: False for lfn in files}
    assert direct.exists(list(files))["Value"]["Successful"] == {lfn: False for lfn in files}


@pytest.mark.parametrize("major", [9, 8])
def test_directory_and_staging_methods_equal_direct(request, se_proxy, tmp_path, major):
    tree = tmp_path / "tree"
    write_files(tree, [10, 2000])
    write_files(tree / "sub", [0, 33])
    top = "/dirac/pd"

    def story(client: Any, down: Path) -> list[Any]:
        down.mkdir()
        return run_se(client, major, se_call("putDirectory", {top: str(tree)}),
                      se_call("createDirectory", [f"{top}/made/deep"]),
                      se_call("isDirectory", [top, f"{top}/made/deep", f"{top}/f10.bin"]),
                      se_call("getDirectorySize", [top, f"{top}/sub"]),
                      se_call("getDirectory", [top, f"{top}/nothere"], localPath=str(down)),
                      se_call("prestageFile", f"{top}/f10.bin"), se_call("prestageFileStatus",
                                                                         {f"{top}/f10.bin": "t"}),
                      se_call("releaseFile", f"{top}/f10.bin"), se_call("getOccupancy"),
                      se_call("removeDirectory", top, recursive=True), se_call("exists", top))

    via = client_for(request, major, None, se_proxy.storage, se_proxy.proxy(),
                     proxy_cfg(major, se_proxy.svc.url))
    proxied = story(via, tmp_path / "down-proxy")
    assert proxied[0]["Value"]["Successful"] == {top: {"Files": 4, "Size": 2043}}, proxied[0]
    assert (tmp_path / "down-proxy/pd/sub/f33.bin").read_bytes() == (tree / "sub/f33.bin").read_bytes()
    direct = client_for(request, major, None, se_proxy.storage, se_proxy.proxy())
    plain = story(direct, tmp_path / "down-direct")
    for mine, theirs in zip(proxied, plain, strict=False):
        assert mine == theirs, leaf_differences(mine, theirs)


@pytest.mark.parametrize(("major", "layout"), [(9, 8), (8, 9)])
def test_proxy_urls_in_the_other_versions_layout(request, se_proxy, tmp_path, major, layout):
    """DIRAC resolves the URLs in its own layout; the plugin also reads the other one."""
    files = write_files(tmp_path / "up", [123])
    (lfn, path), = files.items()
    extra = proxy_cfg(layout, se_proxy.svc.url)
    if layout < 9 <= major:  # an 8.0-style Setup/instance map in a 9.x client's configuration
        extra = merge_cfg(extra, cfg_text({"DIRAC": {"Setup": "Interop", "Setups": {
            "Interop": {"DataManagement": INSTANCE_8}}}}))
    via = client_for(request, major, None, se_proxy.storage, se_proxy.proxy(), extra)
    put, size = run_se(via, major, se_call("putFile", {lfn: str(path)}), se_call("getFileSize", lfn))
    assert put["Value"] == {"Failed": {}, "Successful": {lfn: 123}}, put
    assert size["Value"] == {"Failed": {}, "Successful": {lfn: 123}}
    assert (se_proxy.storage / lfn.lstrip("/")).read_bytes() == path.read_bytes()


# ----------------------------------------------------------------------------- a DIRAC service


@pytest.mark.parametrize("major", [9, 8])
def test_through_dirac8s_own_proxy_service(request, dirac_services, pki, tmp_path, major):
    """The plugin against DIRAC 8.0.86's own StorageElementProxy service: no seproxy on the
    server, so the transfers run DIRAC's stop-and-wait stream. Its ProxyManager is a stand-in
    (tests/interop/ProxyManagerStandIn.py) that signs with the test user's proxy."""
    storage, cache = tmp_path / "storage", tmp_path / "cache"
    storage.mkdir()
    cache.mkdir()
    user_proxy = pki.proxy("dirac_user")
    pm_port = free_port()
    pm_url = f"dips://127.0.0.1:{pm_port}/Framework/ProxyManager"
    urls = cfg_text({"Systems": {"Framework": {INSTANCE_8: {"URLs": {"ProxyManager": pm_url}}}}})
    service = dirac_services.start(f"proxy-8-{tmp_path.name}", {
        "DataManagement/StorageElementProxy": {"BasePath": cache, "HttpAccess": "False"},
        "Framework/ProxyManager": {"HandlerPath": "ProxyManagerStandIn.py", "Port": pm_port,
                                   "ProxyFile": user_proxy,
                                   "Authorization": {"Default": "authenticated"}},
    }, version=8, extra_cfg=merge_cfg(se_cfg(storage), urls))
    proxy_url = service.urls["DataManagement/StorageElementProxy"]
    files = write_files(tmp_path / "up", [0, 3 * MiB + 1])
    lfns = [*files, MISSING]
    down = tmp_path / "down"
    down.mkdir()
    via = client_for(request, major, None, storage, user_proxy, proxy_cfg(major, proxy_url))
    put, exists, size, get, removed = run_se(
        via, major, se_call("putFile", {lfn: str(p) for lfn, p in files.items()}), se_call("exists", lfns),
        se_call("getFileSize", lfns), se_call("getFile", lfns, localPath=str(down)),
        se_call("removeFile", list(files)))
    sizes = {lfn: p.stat().st_size for lfn, p in files.items()}
    assert put["Value"] == {"Failed": {}, "Successful": sizes}, (put, service.log_tail())
    assert exists["Value"]["Successful"] == {**{lfn: True for lfn in files}, MISSING: False}
    assert size["Value"]["Successful"] == sizes and set(size["Value"]["Failed"]) == {MISSING}
    assert get["Value"]["Successful"] == sizes and set(get["Value"]["Failed"]) == {MISSING}
    for path in files.values():
        assert (down / path.name).read_bytes() == path.read_bytes()
    assert removed["Value"] == {"Failed": {}, "Successful": {lfn: True for lfn in files}}
    assert not any((storage / lfn.lstrip("/")).exists() for lfn in files)
    served = service.log_tail(2000)
    for action in ("FileTransfer/fromClient", "RPC/uploadFile", "RPC/prepareFile",
                   "FileTransfer/toClient", "RPC/callProxyMethod", "RPC/getVOMSProxy"):
        assert action in served, action


@pytest.mark.parametrize("major", [9, 8])
def test_ca_directory_from_diracs_configuration(request, se_proxy, pki, tmp_path, major):
    """No X509_CERT_DIR: the plugin's clients use the CA directory DIRAC finds in its
    configuration (/DIRAC/Security/CALocation), like DIRAC's own clients."""
    files = write_files(tmp_path / "up", [77])
    (lfn, path), = files.items()
    extra = merge_cfg(proxy_cfg(major, se_proxy.svc.url),
                      cfg_text({"DIRAC": {"Security": {"CALocation": str(pki.ca_dir)}}}))
    via = client_for(request, major, None, se_proxy.storage, se_proxy.proxy(), extra).with_(cert_dir=None)
    put, get = run_se(via, major, se_call("putFile", {lfn: str(path)}),
                      se_call("getFile", lfn, localPath=str(tmp_path)))
    assert put["Value"] == {"Failed": {}, "Successful": {lfn: 77}}, put
    assert get["Value"] == {"Failed": {}, "Successful": {lfn: 77}}, get
