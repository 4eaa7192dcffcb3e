"""Content-addressed credential copies: one path per content, private, identity of a chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from seproxy.errors import StorageError
from seproxy.storage.credfiles import (
    MAX_CREDENTIAL_BYTES,
    credential_file,
    identity_of,
    read_credential,
)


def test_one_path_per_content_private_files(pki, tmp_path: Path) -> None:
    first, second = pki.proxy().read_bytes(), pki.proxy().read_bytes()
    digest1, path1 = credential_file(first)
    assert credential_file(first) == (digest1, path1)  # same content: same path, written once
    digest2, path2 = credential_file(second)
    assert digest1 != digest2 and path1 != path2
    assert path1.read_bytes() == first and path2.read_bytes() == second
    assert path1.stat().st_mode & 0o777 == 0o600
    assert path1.parent.stat().st_mode & 0o777 == 0o700


def test_identity_is_the_end_entity_dn(pki) -> None:
    proxy = pki.proxy().read_bytes()
    assert identity_of(proxy) == pki.user_dn  # not the proxy's own /CN=<serial> subject
    assert identity_of(pki.proxy(parent=pki.proxy()).read_bytes()) == pki.user_dn
    assert identity_of(Path(pki.host_cert).read_bytes()) == pki.host_dn
    assert identity_of(b"not a certificate") == ""


def test_read_credential_refuses_what_is_not_one(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="Cannot read the proxy .*missing.pem"):
        read_credential(tmp_path / "missing.pem", "proxy")
    big = tmp_path / "big.pem"
    big.write_bytes(b"x" * (MAX_CREDENTIAL_BYTES + 1))
    with pytest.raises(StorageError, match="larger than a credential file"):
        read_credential(big, "proxy")


def test_in_memory_proxy_is_preferred(pki, tmp_path: Path) -> None:
    """A credential source that holds the proxy in memory (``proxy_pem``) needs no file."""
    from seproxy.storage.credentials import StorageCredentials
    from seproxy.storage.credfiles import proxy_bytes

    pem = pki.proxy().read_bytes()
    # the ProxyManager source hands proxy_pem (and a lazy file the plugins need not ask for)
    assert proxy_bytes(StorageCredentials(proxy_pem=pem, proxy_path=pki.proxy())) == pem
    assert proxy_bytes(StorageCredentials(proxy_path=pki.proxy())) != pem
    assert proxy_bytes(StorageCredentials()) is None
