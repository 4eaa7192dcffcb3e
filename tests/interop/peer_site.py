"""A DIRAC installation on loopback for tests: MariaDB, Configuration Servers, a ProxyManager.

Everything here is real and runs as the DIRAC admin of a site would run it, only
bound to 127.0.0.1 and kept under a temporary directory:

* a private MariaDB per site (:func:`tests.fixtures.mariadb.start_mariadb`: Debian's
  ``mariadbd`` from a fresh ``mariadb-install-db`` datadir, TCP on 127.0.0.1 and a free
  port) holding the ProxyDB database and its user ``Dirac``, stopped with the site;
* :func:`start_configuration_server`: DIRAC 9.1's DISET ``Configuration/Server`` as a
  *master* (``/DIRAC/Configuration/Master = yes``, ``HandlerPath`` =
  ``DIRAC/ConfigurationSystem/Service/ConfigurationHandler.py``) serving
  ``$DIRAC_ROOT_PATH/etc/<Name>.cfg`` from its own temporary root;
* :func:`start_proxy_manager`: DIRAC 9.1's ``Framework/ProxyManager`` with its ProxyDB on
  that MariaDB, reading the Registry from the Configuration Servers;
* :class:`DiracSite` ties them together: the CS content (:func:`site_data`), a DIRAC
  client that reads only the CS URLs (:meth:`DiracSite.client`), changes committed
  through the master with DIRAC's ``CSAPI`` (:meth:`DiracSite.commit`) and proxies
  uploaded with DIRAC's ``ProxyManagerClient.uploadProxy`` (:meth:`DiracSite.upload_proxy`).

The fixtures are in ``tests/fixtures/dirac.py`` (``dirac_site``); docs/INTEROP.md.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seproxy.security.x509 import X509Chain
from tests.fixtures.cfgtext import cfg_text
from tests.fixtures.mariadb import MariaDB, MariaDBError, start_mariadb
from tests.interop.peer_services import (
    INSTANCE_8,
    SETUP_8,
    DiracClient,
    DiracService,
    merge_cfg,
    start_dirac_service,
)
from tests.interop.peer_venv import DiracVenv, InteropSetupError

CS_HANDLER = "DIRAC/ConfigurationSystem/Service/ConfigurationHandler.py"
CS_NAME = "SeproxyTest"
#: Users of the test site (certificates from the ``pki`` fixture's CA).
SITE_USERS = ("alice", "bob", "carol")


# ----------------------------------------------------------------------------- CS content


HOST_PROPERTIES = ("TrustedHost", "CSAdministrator", "FullDelegation", "ProxyManagement")


def site_registry(pki: Any, users: Mapping[str, str], *,
                  host_properties: Sequence[str] = HOST_PROPERTIES) -> dict[str, Any]:
    """The Registry tree: ``users`` ({name: DN}) in ``dirac_user`` and ``dirac_prod`` (a
    group with a VOMS role); testuser also in ``dirac_admin``; this host (the ``pki``
    host certificate, shared by the DIRAC services and seproxy) with ``host_properties``."""
    all_users = {"testuser": pki.user_dn, **users}
    return {
        "DefaultGroup": "dirac_user",
        "Users": {name: {"DN": dn} for name, dn in all_users.items()},
        "Groups": {
            "dirac_user": {"Users": ", ".join(all_users), "Properties": "NormalUser", "VO": "dirac"},
            "dirac_prod": {"Users": ", ".join(users), "Properties": "NormalUser", "VO": "dirac",
                           "VOMSRole": "/dirac/Role=production"},
            "dirac_admin": {"Users": "testuser", "Properties": "CSAdministrator, NormalUser, ProxyManagement",
                            "VO": "dirac"},
        },
        "Hosts": {"localhost": {"DN": pki.host_dn, "Properties": ", ".join(host_properties)}},
        "VO": {"dirac": {"VOMSName": "dirac"}},
    }


def site_data(pki: Any, users: Mapping[str, str], extra: Mapping[str, Any] | None = None, *,
              host_properties: Sequence[str] = HOST_PROPERTIES, major: int = 9) -> str:
    """The Configuration Server's data: Registry, Operations (8.0: the setup's instances),
    plus ``extra`` (a tree merged on top: Resources, Systems ...), as CFG text."""
    dirac: dict[str, Any] = {"VirtualOrganization": "dirac"}
    if major < 9:
        dirac["Setups"] = {SETUP_8: {system: INSTANCE_8 for system in ("Configuration", "Framework",
                                                                        "DataManagement", "Test")}}
    tree: dict[str, Any] = {
        "DIRAC": dirac,
        "Registry": site_registry(pki, users, host_properties=host_properties),
        "Operations": {"Defaults": {"EnableSecurityLogging": "False",
                                    "MonitoringBackends": {"Default": ""}}},
    }
    return merge_cfg(cfg_text(tree), cfg_text(extra or {}))


# ----------------------------------------------------------------------------- CS servers


@dataclass
class ConfigurationServer:
    """A running DIRAC master Configuration Server."""

    service: DiracService
    name: str
    root: Path

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def data_file(self) -> Path:
        return self.root / "etc" / f"{self.name}.cfg"

    def running(self) -> bool:
        return self.service.process.poll() is None

    def stop(self) -> None:
        self.service.stop()


def start_configuration_server(venv: DiracVenv, pki: Any, workdir: Path, data: str, *,
                               name: str = CS_NAME, port: int | None = None) -> ConfigurationServer:
    """DIRAC's master ``Configuration/Server`` serving ``data`` (CFG text) on 127.0.0.1."""
    root = workdir / "root"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / f"{name}.cfg").write_text(data)
    options: dict[str, Any] = {"HandlerPath": CS_HANDLER}
    if port is not None:
        options["Port"] = port

    def local(ports: Mapping[str, int]) -> str:
        url = f"dips://127.0.0.1:{ports['Configuration/Server']}/Configuration/Server"
        return cfg_text({"DIRAC": {"Hostname": "127.0.0.1", "Configuration": {
            "Master": "yes", "Name": name, "Servers": url}}})

    service = start_dirac_service(venv, {"Configuration/Server": options}, pki=pki, registry="",
                                  workdir=workdir, extra_cfg=local,
                                  env={"DIRAC_ROOT_PATH": str(root)})
    return ConfigurationServer(service, name, root)


def start_proxy_manager(venv: DiracVenv, pki: Any, workdir: Path, cs_urls: Sequence[str],
                        db: MariaDB, db_password: str, *, db_user: str = "Dirac",
                        db_name: str = "ProxyDB") -> DiracService:
    """DIRAC's ``Framework/ProxyManager`` with ProxyDB on ``db``, configured from ``cs_urls``
    (plus its own URL: DIRAC 9.1's getVOMSProxy calls the ProxyManager by name)."""

    def local(ports: Mapping[str, int]) -> str:
        url = f"dips://127.0.0.1:{ports['Framework/ProxyManager']}/Framework/ProxyManager"
        framework = {"URLs": {"ProxyManager": url}, "Databases": {"ProxyDB": {
            "Host": "127.0.0.1", "Port": db.port, "User": db_user, "Password": db_password,
            "DBName": db_name}}}
        if venv.major < 9:
            framework = {INSTANCE_8: framework}
        return merge_cfg(
            cfg_text({"DIRAC": {"Hostname": "127.0.0.1", "Configuration": {"Servers": ", ".join(cs_urls)}}}),
            cfg_text({"Systems": {"Framework": framework}}))

    return start_dirac_service(venv, {"Framework/ProxyManager": {}}, pki=pki, registry="",
                               workdir=workdir, extra_cfg=local,
                               env={"DIRAC_ROOT_PATH": str(workdir / "root")})


# ----------------------------------------------------------------------------- the site

_CSAPI_SNIPPET = """
from DIRAC.ConfigurationSystem.Client.CSAPI import CSAPI
api = CSAPI()
result = api.initialize()
if result["OK"]:
    for path, value in args[0]:
        if value is None:
            result = api.delOption(path)
        else:
            result = api.setOption(path, value)
        if not result["OK"]:
            break
    else:
        result = api.commit()
"""

_UPLOAD_SNIPPET = """
from DIRAC.FrameworkSystem.Client.ProxyManagerClient import ProxyManagerClient
result = ProxyManagerClient().uploadProxy(proxy=args[0])
"""


@dataclass
class DiracSite:
    """A DIRAC installation on loopback (see the module doc)."""

    venv: DiracVenv
    pki: Any
    base: Path
    users: dict[str, str]
    servers: list[ConfigurationServer] = field(default_factory=list)
    db: MariaDB | None = None
    db_password: str = ""
    proxy_manager: DiracService | None = None

    @property
    def cs_urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def client_cfg(self, urls: Iterable[str] | None = None) -> str:
        """A DIRAC client's whole local configuration: the CS URLs (and the CA)."""
        servers = ", ".join(self.cs_urls if urls is None else urls)
        return cfg_text({"DIRAC": {"Configuration": {"Servers": servers}}})

    def seproxy_cfg(self, local_copy: Path | None = None, **more: Any) -> str:
        """A seproxy site.cfg that only names the CS servers and this host's credentials
        (``more``: extra options under /DIRAC/Configuration)."""
        configuration: dict[str, Any] = {"Servers": ", ".join(self.cs_urls), **more}
        if local_copy is not None:
            configuration["LocalCopy"] = local_copy
        return cfg_text({"DIRAC": {"Configuration": configuration, "Security": {
            "CertFile": self.pki.host_cert, "KeyFile": self.pki.host_key, "CALocation": self.pki.ca_dir}}})

    def framework_path(self, rest: str) -> str:
        """``/Systems/Framework[/<Instance>]/<rest>`` for this site's DIRAC version."""
        instance = "" if self.venv.major >= 9 else f"/{INSTANCE_8}"
        return f"/Systems/Framework{instance}/{rest}"

    def proxy_downloads(self, dn: str) -> int:
        """How many proxies of ``dn`` the ProxyManager handed out (its ProxyDB_Log)."""
        assert self.db is not None
        out = self.db.sql("SELECT COUNT(*) FROM ProxyDB.ProxyDB_Log WHERE Action LIKE 'download%' "
                          f"AND TargetDN = '{dn}'")
        return int(out.strip())

    def client(self, proxy: Path, **changes: Any) -> DiracClient:
        """A DIRAC 9 client whose configuration comes from this site's CS."""
        return DiracClient(self.venv, proxy, self.pki.ca_dir, cfg_extra=self.client_cfg()).with_(**changes)

    def user_proxy(self, user: str, group: str | None = "dirac_user", lifetime: int = 86400) -> Path:
        """A proxy file of ``user`` (``group=None``: none, as DIRAC uploads them)."""
        out = self.base / "proxies" / f"{user}-{group or 'nogroup'}-{secrets.token_hex(4)}.pem"
        out.parent.mkdir(exist_ok=True)
        return self.pki.dev.make_proxy(out, user=user, group=group, lifetime=lifetime)

    def commit(self, changes: Sequence[tuple[str, str | None]], *, proxy: Path | None = None,
               server: int = 0) -> dict:
        """Set (or, with None, delete) options through master ``server`` with DIRAC's CSAPI
        (``getCompressedData`` + ``commitNewData``), as testuser in ``dirac_admin``."""
        proxy = proxy or self.pki.proxy("dirac_admin")
        cfg = merge_cfg(self.client_cfg([self.servers[server].url]), cfg_text(
            {"DIRAC": {"Configuration": {"MasterServer": self.servers[server].url}}}))
        client = DiracClient(self.venv, proxy, self.pki.ca_dir, cfg_extra=cfg)
        return client.run({"exec": _CSAPI_SNIPPET, "args": [[list(c) for c in changes]]})[0].unwrap()

    def commit_all(self, changes: Sequence[tuple[str, str | None]]) -> None:
        """The same change through every (running) master, keeping them in step as a
        master and its slaves are; AssertionError if one refuses."""
        for index, server in enumerate(self.servers):
            if server.running():
                result = self.commit(changes, server=index)
                assert result.get("OK"), f"commit to CS {index} failed: {result}"

    def upload_proxy(self, user: str) -> dict:
        """Upload a group-less proxy of ``user`` with DIRAC's ``ProxyManagerClient.uploadProxy``."""
        proxy = self.user_proxy(user, None)
        client = self.client(proxy, cfg_extra=merge_cfg(self.client_cfg(), self._pm_url_cfg()))
        return client.run({"exec": _UPLOAD_SNIPPET, "args": [str(proxy)]})[0].unwrap()

    def _pm_url_cfg(self) -> str:
        assert self.proxy_manager is not None
        framework: dict[str, Any] = {"URLs": {"ProxyManager": self.proxy_manager.url}}
        if self.venv.major < 9:
            framework = {INSTANCE_8: framework}
        return cfg_text({"Systems": {"Framework": framework}})

    def stop(self) -> None:
        if self.proxy_manager is not None:
            self.proxy_manager.stop()
        for server in self.servers:
            server.stop()
        if self.db is not None:
            self.db.stop()


def make_site(venv: DiracVenv, pki: Any, base: Path, *, servers: int = 2,
              proxy_manager: bool = True, extra: Mapping[str, Any] | None = None,
              host_properties: Sequence[str] = HOST_PROPERTIES) -> DiracSite:
    """Start the CS servers (and MariaDB + ProxyManager) of a test site under ``base``;
    ``extra``: more CS content (a tree merged over :func:`site_data`)."""
    users = {}
    for name in SITE_USERS:
        cert, _key = pki.dev.issue_user(name)
        users[name] = X509Chain.from_file(cert).subject_dn
    base.mkdir(parents=True, exist_ok=True)
    site = DiracSite(venv, pki, base, users)
    try:
        data = site_data(pki, users, extra, host_properties=host_properties, major=venv.major)
        for index in range(servers):
            site.servers.append(start_configuration_server(
                venv, pki, Path(tempfile.mkdtemp(prefix=f"cs{index}-", dir=base)), data))
        if proxy_manager:
            try:
                site.db = start_mariadb(Path(tempfile.mkdtemp(prefix="mariadb-", dir=base)))
                site.db_password = site.db.create_database("ProxyDB", "Dirac").password
            except MariaDBError as exc:
                raise InteropSetupError(str(exc)) from exc
            site.proxy_manager = start_proxy_manager(
                venv, pki, Path(tempfile.mkdtemp(prefix="proxymanager-", dir=base)), site.cs_urls,
                site.db, site.db_password)
            # registered in the CS, as a DIRAC installation does: clients find it by name
            for index in range(servers):
                result = site.commit([(site.framework_path("URLs/ProxyManager"), site.proxy_manager.url)],
                                     server=index)
                if not result.get("OK"):
                    raise InteropSetupError(f"cannot register the ProxyManager in CS {index}: {result}")
    except BaseException:
        site.stop()
        raise
    return site
