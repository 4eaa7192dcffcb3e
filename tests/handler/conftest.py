"""A running StorageElementProxy (dips, test PKI) with a File SE in a temporary folder.

``se_proxy`` gives: ``.svc`` (RunningService), ``.rpc(user="testuser", group=...)`` and
``.transfer(...)`` clients, ``.storage`` (the File SE's root), ``.base`` (BasePath),
``.http_port``, ``.state`` (the handler's ProxyState). A second registered user
``otheruser`` (same groups) exists for the ownership tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from seproxy.cli.wiring import StorageElementProxyHandler
from seproxy.rpc.client.base import RPCClient
from seproxy.transfer.client import TransferClient
from tests.fixtures.cfgtext import cfg_text
from tests.fixtures.dirac import merge_cfg
from tests.fixtures.pki import REGISTRY_CFG
from tests.storage.helpers import file_section

NAME = "DataManagement/StorageElementProxy"
SE = "SE-LOCAL"
OTHER_DN = "/C=ch/O=DIRAC/OU=DIRAC Test/CN=otheruser"

REGISTRY = (REGISTRY_CFG
            .replace("      Users = testuser\n", "      Users = testuser, otheruser\n")
            .replace("  Users\n  {\n", "  Users\n  {\n    otheruser\n    {\n"
                     f"      DN = {OTHER_DN}\n    }}\n", 1))


def se_cfg(storage: Path, name: str = SE) -> str:
    """``/Resources/StorageElements/<name>``: a File SE rooted at ``storage``."""
    se = {"BackendType": "File", "AccessProtocols": "file", "WriteProtocols": "file",
          "File": file_section(str(storage))}
    return cfg_text({"Resources": {"StorageElements": {name: se}}})


@dataclass
class ProxyUnderTest:
    svc: Any
    pki: Any
    storage: Path
    base: Path
    proxies: dict[tuple[str, str], str] = field(default_factory=dict)

    def proxy(self, user: str = "testuser", group: str = "dirac_user") -> str:
        if (user, group) not in self.proxies:
            if user != "testuser":
                cert, key = self.pki.dev.user_paths(user)
                if not cert.exists():
                    self.pki.dev.issue_user(user)
            out = self.base.parent / f"proxy-{user}-{group}.pem"
            self.proxies[(user, group)] = str(self.pki.dev.make_proxy(out, user=user, group=group))
        return self.proxies[(user, group)]

    def rpc(self, user: str = "testuser", group: str = "dirac_user", **kwargs: Any) -> RPCClient:
        return RPCClient(self.svc.url, config=self.svc.cfg, proxyLocation=self.proxy(user, group), **kwargs)

    def transfer(self, user: str = "testuser", group: str = "dirac_user", **kwargs: Any) -> TransferClient:
        return TransferClient(self.svc.url, config=self.svc.cfg, proxyLocation=self.proxy(user, group),
                              **kwargs)

    def put(self, local: Path | str, lfn: str, **who: str) -> dict:
        """``sendFile putFile/<basename>`` then ``uploadFile``, as DIRAC's Proxy plugin does
        (the sendFile must succeed; the uploadFile result is returned)."""
        sent = self.transfer(**who).sendFile(str(local), f"putFile/{os.path.basename(lfn)}")
        assert sent["OK"], sent
        return self.rpc(**who).uploadFile(SE, lfn)

    def get(self, lfn: str, dest: Path | str, **who: str) -> dict:
        """``prepareFile`` then ``receiveFile getFile/<basename>``."""
        prepared = self.rpc(**who).prepareFile(SE, lfn)
        if not prepared["OK"]:
            return prepared
        assert prepared["Value"] is None
        return self.transfer(**who).receiveFile(str(dest), f"getFile/{os.path.basename(lfn)}")

    @property
    def state(self) -> Any:
        return self.svc.service.handler_class.state

    @property
    def http_port(self) -> int:
        return self.state.http_thread.port


@pytest.fixture
def se_proxy_factory(seproxy_service, pki, tmp_path):
    started: list[ProxyUnderTest] = []

    def start(extra_cfg: str = "", **options: Any) -> ProxyUnderTest:
        """``extra_cfg``: more configuration (other SEs...) merged after SE-LOCAL's."""
        storage = tmp_path / "storage"
        storage.mkdir(exist_ok=True)
        base = tmp_path / "cache"
        opts = {"BasePath": str(base), "HttpAccess": True, "HttpPort": 0, "HttpHost": "127.0.0.1",
                "HttpURLHost": "127.0.0.1", "HttpPurgeInterval": 0, "MaxThreads": 4}
        opts.update(options)
        svc = seproxy_service(StorageElementProxyHandler, name=NAME, protocol="dips", options=opts,
                              authorization={"Default": "authenticated",
                                             "FileTransfer/Default": "authenticated"},
                              registry=REGISTRY, cfg_text=merge_cfg(se_cfg(storage), extra_cfg))
        running = ProxyUnderTest(svc, pki, storage, Path(opts["BasePath"]))
        started.append(running)
        return running

    yield start
    for running in started:
        running.state.stop()


@pytest.fixture
def se_proxy(se_proxy_factory) -> ProxyUnderTest:
    return se_proxy_factory()
