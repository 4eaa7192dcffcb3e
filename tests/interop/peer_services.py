"""Real DIRAC as a test peer: cfg generation, DIRAC clients, DIRAC DISET services on loopback.

:class:`DiracClient` runs calls through ``dirac_runner.py`` in a DIRAC venv;
:func:`start_dirac_service` runs DIRAC's ``dirac-service`` through
``dirac_launcher.py`` (127.0.0.1 only) and waits until it accepts connections;
:class:`DiracServicePool` caches running services for a pytest session.
The pytest fixtures are in ``tests/fixtures/dirac.py``; how it works: ``docs/INTEROP.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from diraccfg import CFG

from tests.conftest import free_port, wait_for
from tests.fixtures.cfgtext import cfg_text
from tests.interop.peer_venv import LAUNCHER, DiracVenv, InteropSetupError, Outcome

OPERATIONS_CFG = """\
Operations
{
  Defaults
  {
    EnableSecurityLogging = False
    MonitoringBackends
    {
      Default =
    }
  }
}
"""
SETUP_8 = "Interop"  # 8.0 needs a Setup; each system has instance "Tests"
INSTANCE_8 = "Tests"


def dirac_cfg(major: int, *, registry: str = "", extra: str = "", systems: Sequence[str] = ()) -> str:
    """Base cfg text for a DIRAC client or server of ``major`` version."""
    setup = ""
    if major < 9:
        instances = "".join(f"      {s} = {INSTANCE_8}\n" for s in sorted({*systems, "Test", "DataManagement"}))
        setup = f"  Setup = {SETUP_8}\n  Setups\n  {{\n    {SETUP_8}\n    {{\n{instances}    }}\n  }}\n"
    return merge_cfg(f"DIRAC\n{{\n  VirtualOrganization = dirac\n{setup}}}\n{OPERATIONS_CFG}", registry, extra)


def merge_cfg(*texts: str) -> str:
    """Merge cfg texts (later ones win) into one; DIRAC refuses a section given twice in a file."""
    merged = CFG()
    for text in texts:
        if text and text.strip():
            merged = merged.mergeWith(CFG().loadFromBuffer(text))
    return str(merged)


def service_cfg(major: int, system_service: str, options: Mapping[str, Any]) -> str:
    """``/Systems/<System>[/<Instance>]/Services/<Service>`` with ``options`` (nested dicts = sections)."""
    system, service = system_service.split("/")
    body = cfg_text({"Services": {service: options}}, "    " if major < 9 else "  ")
    if major < 9:
        return f"Systems\n{{\n  {system}\n  {{\n    {INSTANCE_8}\n    {{\n{body}    }}\n  }}\n}}\n"
    return f"Systems\n{{\n  {system}\n  {{\n{body}  }}\n}}\n"


def _security_cfg(pki: Any) -> str:
    return ("DIRAC\n{\n  Security\n  {\n    UseServerCertificate = yes\n"
            f"    CertFile = {pki.host_cert}\n    KeyFile = {pki.host_key}\n    CALocation = {pki.ca_dir}\n"
            "  }\n}\n")


# ----------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class DiracClient:
    """A DIRAC client setup (venv, cfg, credentials, encoding); each call is one runner process."""

    venv: DiracVenv
    proxy: Path | None
    cert_dir: Path
    cfg_extra: str = ""
    encoding: str | None = None

    @property
    def cfg_text(self) -> str:
        return dirac_cfg(self.venv.major, extra=self.cfg_extra)

    def with_(self, **changes: Any) -> DiracClient:
        """A copy with other ``proxy``/``cert_dir``/``cfg_extra``/``encoding``."""
        return dataclasses.replace(self, **changes)

    def run(self, *calls: Mapping[str, Any], timeout: float = 300.0) -> list[Outcome]:
        return self.venv.run(calls, cfg=self.cfg_text, encoding=self.encoding, proxy=self.proxy,
                             cert_dir=self.cert_dir, timeout=timeout)

    def _one(self, call: dict[str, Any], client: Mapping[str, Any] | None, encoding: str | None,
             kwargs: Mapping[str, Any] | None) -> Any:
        if client:
            call["client"] = dict(client)
        if kwargs:
            call["kwargs"] = dict(kwargs)
        if encoding is not None:
            call["encoding"] = encoding
        return self.run(call)[0].unwrap()

    def rpc(self, url: str, method: str, *args: Any, client: Mapping[str, Any] | None = None,
            encoding: str | None = None, kwargs: Mapping[str, Any] | None = None) -> Any:
        """``RPCClient(url, **client).<method>(*args)`` in DIRAC; returns DIRAC's result dict."""
        return self._one({"rpc": url, "method": method, "args": list(args)}, client, encoding, kwargs)

    def transfer(self, url: str, method: str, *args: Any, client: Mapping[str, Any] | None = None,
                 encoding: str | None = None, kwargs: Mapping[str, Any] | None = None) -> Any:
        """``TransferClient(url, **client).<method>(*args)`` in DIRAC."""
        return self._one({"transfer": url, "method": method, "args": list(args)}, client, encoding, kwargs)

    def se(self, name: str, method: str, *args: Any, client: Mapping[str, Any] | None = None,
           encoding: str | None = None, kwargs: Mapping[str, Any] | None = None) -> Any:
        """``StorageElement(name, **client).<method>(*args, **kwargs)`` in DIRAC."""
        return self._one({"se": name, "method": method, "args": list(args)}, client, encoding, kwargs)

    def credentials(self, path: Path, key: Path | None = None) -> Any:
        """DIRAC's ``X509Chain.getCredentials()`` of a proxy file (or certificate + key)."""
        return self._one({"credentials": str(path), "key": str(key) if key else None}, None, None, None)

    def peer_info(self, path: Path) -> Any:
        """The credential dict a DIRAC server's transport computes after the handshake for a
        client presenting the chain in ``path`` (DIRAC's ``getM2PeerInfo``; x509Chain -> marker)."""
        return self._one({"peer_info": str(path)}, None, None, None)

    def handshake(self, host: str, port: int, **transport_kwargs: Any) -> Any:
        """DIRAC's dips transport: connect + TLS handshake; S_OK(server credentials as DIRAC sees them)."""
        return self._one({"handshake": [host, port]}, transport_kwargs, None, None)


# ----------------------------------------------------------------------------- services


@dataclass
class DiracService:
    """A running real DIRAC DISET process (one or more services)."""

    venv: DiracVenv
    process: subprocess.Popen
    urls: dict[str, str]
    port: int
    workdir: Path
    cfg_text: str
    log_path: Path
    storage_path: Path | None = None

    @property
    def url(self) -> str:
        return next(iter(self.urls.values()))

    def log_tail(self, lines: int = 40) -> str:
        return file_tail(self.log_path, lines)

    def stop(self) -> None:
        stop_process(self.process)


def file_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ("" if unreadable)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` s; a process we started ourselves."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_listening(process: subprocess.Popen, port_file: Path, ports: set[int], log: Path,
                    timeout: float) -> None:
    """Return once every port in ``ports`` was bound by the launcher and accepts a connection."""
    pending = set(ports)

    def all_listening() -> bool:
        if process.poll() is not None:
            raise InteropSetupError(f"DIRAC service exited with {process.returncode}; log tail:\n"
                                    + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
        bound = {int(x) for x in port_file.read_text().split()} if port_file.exists() else set()
        for port in sorted(pending & bound):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                pending.discard(port)
        return not pending

    if not wait_for(all_listening, timeout, 0.05):
        raise InteropSetupError(f"DIRAC service not listening on {sorted(pending)} after {timeout} s")


def start_dirac_service(venv: DiracVenv, services: Mapping[str, Mapping[str, Any]], *, pki: Any,
                        registry: str, workdir: Path, encoding: str | None = None,
                        extra_cfg: str | Callable[[Mapping[str, int]], str] = "",
                        env: Mapping[str, str] | None = None, timeout: float = 90.0) -> DiracService:
    """Run ``services`` ({"System/Service": options}) in one DIRAC process on 127.0.0.1.

    Each service gets ``Port`` (a free port) and ``Protocol = dips`` unless given.
    ``extra_cfg`` may be a function of the chosen ports (``{"System/Service": port}``),
    for configurations that name the service's own URL; ``env`` adds variables to the
    DIRAC process's environment (``DIRAC_ROOT_PATH`` ...).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    env_extra = env
    last_error: Exception | None = None
    for _attempt in range(3):  # a free port may be taken by someone else in between
        ports: dict[str, int] = {}
        sections = []
        for name, options in services.items():
            opts = {"Protocol": "dips", **options}
            opts.setdefault("Port", free_port())
            ports[name] = int(opts["Port"])
            sections.append(service_cfg(venv.major, name, opts))
        systems = [name.split("/")[0] for name in services]
        extra = extra_cfg(ports) if callable(extra_cfg) else extra_cfg
        cfg_text = merge_cfg(dirac_cfg(venv.major, registry=registry, systems=systems),
                             _security_cfg(pki), *sections, extra)
        cfg_path = workdir / "dirac.cfg"
        cfg_path.write_text(cfg_text)
        port_file = workdir / "bound-ports"
        port_file.unlink(missing_ok=True)
        log_path = workdir / "service.log"
        env = {**(env_extra or {}), "DIRACSYSCONFIG": str(cfg_path),
               "SEPROXY_INTEROP_PORT_FILE": str(port_file)}
        if encoding is not None:
            env["DIRAC_USE_JSON_ENCODE"] = "Yes" if encoding == "json" else "No"
        with log_path.open("wb") as log:
            process = subprocess.Popen([str(venv.python), str(LAUNCHER), *services], cwd=workdir,
                                       env=venv.env(workdir / "home", env), stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT)
        service = DiracService(venv, process, {n: f"dips://127.0.0.1:{p}/{n}" for n, p in ports.items()},
                               next(iter(ports.values())), workdir, cfg_text, log_path)
        try:
            _wait_listening(process, port_file, set(ports.values()), log_path, timeout)
            return service
        except InteropSetupError as exc:
            service.stop()
            last_error = exc
            if "Address already in use" not in service.log_tail(200):
                break
    raise InteropSetupError(f"could not start DIRAC {venv.version} {list(services)}: {last_error}")


class DiracServicePool:
    """Session-wide cache of running DIRAC services (see module doc)."""

    def __init__(self, request: pytest.FixtureRequest, pki: Any, registry: str, base: Path) -> None:
        self._request, self._pki, self._registry, self._base = request, pki, registry, base
        self._running: dict[Any, DiracService] = {}

    def venv(self, version: int) -> DiracVenv:
        return self._request.getfixturevalue("dirac9_venv" if version == 9 else "dirac8_venv")

    def start(self, key: Any, services: Mapping[str, Mapping[str, Any]], *, version: int = 9,
              encoding: str | None = None, extra_cfg: str = "") -> DiracService:
        """Start (once per ``key``) a DIRAC process running ``services``."""
        cache_key = (key, version, encoding)
        if cache_key not in self._running:
            workdir = Path(tempfile.mkdtemp(prefix=f"dirac{version}-{key}-", dir=self._base))
            try:
                self._running[cache_key] = start_dirac_service(
                    self.venv(version), services, pki=self._pki, registry=self._registry,
                    workdir=workdir, encoding=encoding, extra_cfg=extra_cfg)
            except InteropSetupError as exc:
                pytest.fail(str(exc), pytrace=False)
        return self._running[cache_key]

    def interop(self, *, encoding: str | None = "json", version: int = 9) -> DiracService:
        """DIRAC serving ``tests/interop/InteropHandler.py`` as ``Test/Interop``."""
        key = "interop"
        if (key, version, encoding) not in self._running:
            storage = Path(tempfile.mkdtemp(prefix="interop-store-", dir=self._base))
            svc = self.start(key, {"Test/Interop": {
                "HandlerPath": "InteropHandler.py", "StoragePath": storage,
                "Authorization": {"Default": "authenticated"}}}, version=version, encoding=encoding)
            svc.storage_path = storage
        return self._running[(key, version, encoding)]

    def storage_element(self, *, encoding: str | None = "json", version: int = 9) -> DiracService:
        """DIRAC's ``DataManagement/StorageElement`` service storing under a temp ``BasePath``."""
        key = "storage-element"
        if (key, version, encoding) not in self._running:
            base = Path(tempfile.mkdtemp(prefix="dirac-se-", dir=self._base))
            svc = self.start(key, {"DataManagement/StorageElement": {"BasePath": base}},
                             version=version, encoding=encoding)
            svc.storage_path = base
        return self._running[(key, version, encoding)]

    def stop_all(self) -> None:
        for service in self._running.values():
            service.stop()
        self._running.clear()
