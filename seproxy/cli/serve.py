"""``seproxy serve``: run the StorageElementProxy (DISET + HTTP) until interrupted.

With no configuration (no ``-c``) it runs the embedded development site
``seproxy/config/dev-site.cfg`` under the data directory (``--data-dir``, default
``~/.seproxy``):

* a development PKI (CA, host certificate for localhost and this host's FQDN, user
  ``testuser``) in ``pki/``, made if missing; the site's Registry entries take their
  DNs from it;
* ``proxy.pem``: a ``dirac_user`` proxy of that user (renewed when under an hour left);
* the File storage element ``SE-LOCAL`` in ``storage/``, the cache in ``cache/``;

then prints the service URLs and the exact commands to try next. With a site
configuration (``-c site.cfg``) only those files count (over the schema's defaults):
nothing is generated and the banner shows checks to run with the user's own proxy.
Before anything starts the configuration is validated (``seproxy.config.schema``):
a bad value stops here with one ``ERROR`` line (exit 2); unknown options in the
service section are logged as warnings.

When the configuration names Configuration Servers (``/DIRAC/Configuration/Servers``),
the rest of the configuration comes from them (:mod:`seproxy.dirac.configuration`):
fetched before the service starts (the local copy, ``/DIRAC/Configuration/LocalCopy``,
default ``<data dir>/configuration-copy.cfg``, if no server answers; neither: one
``ERROR`` line, exit 2), refreshed every ``RefreshTime`` and by ``refreshConfiguration``.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from seproxy.cli import logs
from seproxy.cli.common import (
    DEV_PROXY,
    SERVICE,
    add_common_options,
    data_dir,
    fill_dev_placeholders,
    load_config,
    site_files,
)
from seproxy.config import Config, schema, set_config

if TYPE_CHECKING:
    from seproxy.dirac.configuration import ConfigurationRefresher

log = logging.getLogger("seproxy.serve")

DEV_USER = "testuser"
DEV_SE_PATH = "/Resources/StorageElements/SE-LOCAL/File/Path"


def ensure_dev_site(directory: Path, cfg: Config) -> list[str]:
    """Create what the development site needs under ``directory``; what was made.

    The PKI (CA, host, ``testuser``), the user proxy and the SE-LOCAL directory; the
    Registry entries are in ``dev-site.cfg`` and get their DNs from the PKI
    (``fill_dev_placeholders``). Nothing is made for a site configuration.
    """
    from seproxy.security import pki as devpki
    from seproxy.security.x509 import X509Chain

    made: list[str] = []
    pki_dir = directory / "pki"
    cert_file = cfg.value("/DIRAC/Security/CertFile")
    if not cert_file.startswith(str(pki_dir)):
        return made  # its own credentials
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    dev = devpki.DevPKI(pki_dir)
    if not dev.host_cert.exists() or not dev.ca_cert.exists():
        made.append(f"development PKI in {pki_dir}")
    dev.ensure(hostnames=("localhost", socket.getfqdn()), users=(DEV_USER,))
    fill_dev_placeholders(cfg, directory)
    proxy = directory / DEV_PROXY
    renew = True
    if proxy.exists():
        try:
            renew = X509Chain.from_file(proxy).seconds_left < 3600
        except Exception:  # noqa: BLE001 - an unreadable proxy is simply remade
            renew = True
    if renew:
        dev.make_proxy(proxy, user=DEV_USER, group="dirac_user")
        made.append(f"user proxy {proxy}")
    path = cfg.getOption(DEV_SE_PATH)
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
    return made


def _site_commands(args: argparse.Namespace, url: str) -> list[str]:
    """What to try against a site configuration: checks with the user's own proxy."""
    extra = " ".join(f"-c {shlex.quote(f)}" for f in site_files(args))
    return [f"seproxy ping {url} {extra}", f"seproxy whoami {url} {extra}"]


def _next_commands(args: argparse.Namespace, url: str, http: str, proxy: Path) -> list[str]:
    extra = []
    if getattr(args, "data_dir", None):
        extra += ["--data-dir", str(data_dir(args))]
    common = " ".join(shlex.quote(part) for part in extra + ["--proxy", str(proxy)])
    common = " " + common if common else ""
    sample, copy = data_dir(args) / "hello.txt", data_dir(args) / "hello.copy"
    lines = [
        f"seproxy ping {url}{common}",
        f"seproxy whoami {url}{common}",
        f"echo 'hello grid' > {shlex.quote(str(sample))}",
        f"seproxy put /dirac/user/hello.txt {shlex.quote(str(sample))} SE-LOCAL --url {url}{common}",
        f"seproxy get /dirac/user/hello.txt SE-LOCAL {shlex.quote(str(copy))} --url {url}{common}",
        f"seproxy call SE-LOCAL getFileMetadata /dirac/user/hello.txt --url {url}{common}",
    ]
    if http:
        lines.append(f"curl -fsS \"$(seproxy http-url /dirac/user/hello.txt --url {url}{common})\"")
    return lines


def start_configuration(cfg: Config, directory: Path) -> ConfigurationRefresher | None:
    """Join the site's Configuration Servers if the configuration names any: the
    refresher, started (initial fetch done); None otherwise. ConfigError if neither a
    server nor the local copy gives a configuration."""
    from seproxy.dirac.configuration import LOCAL_COPY_OPTION, ConfigurationRefresher, uses_configuration_server

    if not uses_configuration_server(cfg):
        return None
    copy = cfg.getOption(LOCAL_COPY_OPTION) or str(directory / "configuration-copy.cfg")
    refresher = ConfigurationRefresher(cfg, local_copy=copy)
    refresher.initial()
    return refresher.start()


def _refuse_second_instance(cfg: Config) -> None:
    """One ``ERROR`` line naming the running instance, before any port or file is touched."""
    from seproxy.handler.instance import refuse_if_running

    section = cfg.service_section(SERVICE)
    base = cfg.getValue(f"{section}/BasePath", "")
    if base:
        refuse_if_running(base, cfg.getValue(f"{section}/InstanceName", "") or socket.gethostname())


def cmd_serve(args: argparse.Namespace) -> int:
    from seproxy.cli import wiring

    cfg = load_config(args)
    dev_site = not site_files(args)
    for warning in schema.validate(cfg):  # a bad value raises: ERROR <one line>, exit 2
        log.warning("%s", warning)
    directory = data_dir(args)
    logs.configure_from_config(args, cfg, cfg.service_section(SERVICE))
    _refuse_second_instance(cfg)
    refresher = start_configuration(cfg, directory)
    made = ensure_dev_site(directory, cfg) if dev_site else []
    set_config(cfg)
    service = wiring.service(cfg, SERVICE).start()
    state = service.handler_class.state
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    http = ""
    if state is not None and state.http_thread is not None:
        http = f"{state.http_url_base}/<key>"
    out = sys.stdout
    print("seproxy StorageElementProxy is running", file=out)
    for item in made:
        print(f"  created   {item}", file=out)
    if refresher is not None:
        origin = refresher.source or f"the local copy {refresher.local_copy}"
        print(f"  CS        version {refresher.version} from {origin}", file=out)
    print(f"  DISET     {service.url}", file=out)
    print(f"  HTTP      {http or 'off (HttpAccess = no)'}", file=out)
    if state is not None:
        print(f"  cache     {state.base_path}", file=out)
        if state.metrics_url:
            print(f"  metrics   {state.metrics_url}", file=out)
    storage = cfg.getOption(DEV_SE_PATH) if dev_site else None
    if storage:
        print(f"  SE-LOCAL  {storage}", file=out)
    proxy = directory / DEV_PROXY
    print("Try next (from another shell):", file=out)
    lines = _next_commands(args, service.url, http, proxy) if dev_site and proxy.is_file() \
        else _site_commands(args, service.url)
    for line in lines:
        print(f"  {line}", file=out)
    print("Stop with Ctrl-C.", file=out, flush=True)
    try:
        stop.wait()
    finally:
        print("stopping ...", file=out, flush=True)
        service.stop(timeout=10)
        if state is not None:
            state.stop()
        if refresher is not None:
            refresher.stop()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve", help="run the StorageElementProxy service (DISET + HTTP)",
        description="Run DataManagement/StorageElementProxy. With no configuration the "
        "embedded default is a local development site under --data-dir (PKI, proxy, "
        "File SE, cache); the URLs and the commands to try next are printed.")
    add_common_options(serve)
    serve.set_defaults(func=cmd_serve)
