"""XROOT specifics: DIRAC's URL form, the server's adler32, per-call proxy in the URL."""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path
from urllib.parse import parse_qs

from seproxy.storage import StorageCredentials, StorageElement
from tests.storage.helpers import make_config, se_tree


def xroot_se(server, path: str, creds: StorageCredentials | None = None) -> StorageElement:
    tree = se_tree(
        "SE-X",
        {"XROOT": server.section(path, Timeout="10")},
        AccessProtocols="root",
        WriteProtocols="root",
    )
    return StorageElement("SE-X", config=make_config(tree), credentials=creds)


def test_url_form_and_server_checksum(xrootd_server, tmp_path: Path) -> None:
    se = xroot_se(xrootd_server, "/xr1")
    data = os.urandom(200_000)
    src = tmp_path / "d.bin"
    src.write_bytes(data)
    lfn = "/dirac/x/d.bin"
    url = se.getURL(lfn)["Value"]["Successful"][lfn]
    assert url == f"root://127.0.0.1:{xrootd_server.port}//xr1/dirac/x/d.bin"
    assert se.putFile({lfn: str(src)})["Value"]["Successful"] == {lfn: 200_000}
    stored = xrootd_server.root / "xr1" / "dirac" / "x" / "d.bin"
    assert stored.read_bytes() == data  # really on the server's disk
    checksum = se.getFileMetadata(lfn)["Value"]["Successful"][lfn]["Checksum"]
    assert checksum == f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    assert not [p for p in stored.parent.iterdir() if p.name.endswith(".part")]


def test_proxy_travels_in_the_url_not_the_environment(xrootd_server, tmp_path: Path) -> None:
    proxy = tmp_path / "x509up_u1234"
    proxy.write_text("not used by this unauthenticated server")
    se = xroot_se(xrootd_server, "/xr2", StorageCredentials(proxy_path=proxy))
    plugin = se.storages["XROOT"]
    file_url = plugin._url("/xr2/dirac/f")
    digest = hashlib.sha256(proxy.read_bytes()).hexdigest()
    # login name and credential path from the proxy's content (a private copy of it)
    assert file_url.startswith(f"root://{digest[:8]}@127.0.0.1:{xrootd_server.port}//xr2/dirac/f?")
    copy = parse_qs(file_url.split("?", 1)[1])["xrd.gsiusrpxy"][0]
    assert copy.endswith(f"/{digest}.pem") and Path(copy).read_bytes() == proxy.read_bytes()
    assert oct(Path(copy).stat().st_mode & 0o777) == "0o600"
    src = tmp_path / "f"
    src.write_bytes(b"hello")
    assert se.putFile({"/dirac/f": str(src)})["Value"]["Successful"] == {"/dirac/f": 5}
    out = tmp_path / "out"
    out.mkdir()
    assert se.getFile("/dirac/f", localPath=str(out))["Value"]["Successful"] == {"/dirac/f": 5}
    assert (out / "f").read_bytes() == b"hello"
    assert "X509_USER_PROXY" not in os.environ or os.environ["X509_USER_PROXY"] != str(proxy)
