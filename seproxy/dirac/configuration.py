"""Configuration from the site's Configuration Servers, next to the local files.

:class:`ConfigurationRefresher` does for seproxy what DIRAC's refresher does for a DIRAC
service:

* the servers are ``/DIRAC/Configuration/Servers`` (the merged view: local files win),
  grouped by ``/DIRAC/PreferredURLPatterns`` (regular expressions, first match first)
  and shuffled inside each group; ``/DIRAC/Gateways/<LocalSite/Site>`` replaces them
  when set (DIRAC's gateway rule);
* each server is asked ``getCompressedDataIfNewer(<our version>)`` (``"0"`` at first)
  with the host credentials (``/DIRAC/Security/UseServerCertificate`` is implied), the
  next one on any failure (failover); ``data`` is zlib-compressed CFG text, bytes over
  DEncode, text over DIRAC JSON; versions compare as strings, as in DIRAC;
* the data goes to :meth:`Config.set_remote` (between the embedded default and the
  site files: local wins) and, atomically, to a local copy on disk
  (``/DIRAC/Configuration/LocalCopy``, mode 0600);
* at start (:meth:`initial`): a server's data, else the local copy, else ConfigError
  (``serve`` prints it as one ``ERROR`` line and exits 2);
* every ``/DIRAC/Configuration/RefreshTime`` seconds (default 300) in a daemon thread,
  and at every ``Config.reload()`` (the ``refreshConfiguration`` RPC, ``fromMaster``:
  the ``MasterServer`` only) through a reload hook, which answers DIRAC's ``Reason(s):``
  error when no server does; when no server answers, the configuration in use stays
  and the outage is logged once (and its end once).

``https://`` server URLs (DIRAC 9's Tornado Configuration Server) are asked the same
method as an HTTPS POST (``method`` + JSON ``args`` form fields, the host certificate
as client certificate); their ``data`` is base64 text.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import random
import re
import ssl
import tempfile
import threading
import time
import urllib.parse
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from diraccfg import CFG

from seproxy.config import Config, schema
from seproxy.errors import ConfigError, SeproxyError

log = logging.getLogger("seproxy.dirac.configuration")

SERVICE = "Configuration/Server"
CONNECT_TIMEOUT = 30.0
#: Largest configuration accepted once decompressed (a large DIRAC CS is a few MB).
MAX_DATA_SIZE = 256 * 1024 * 1024
#: Option naming the local copy of the last good Configuration Server data.
LOCAL_COPY_OPTION = "/DIRAC/Configuration/LocalCopy"


class FetchError(SeproxyError):
    """One server did not give usable data."""


class ServerQuery(Protocol):
    """Asks one server ``getCompressedDataIfNewer``; returns DIRAC's result dict."""

    def __call__(self, url: str, version: str) -> dict: ...


def configuration_servers(cfg: Config) -> list[str]:
    """The servers to try, in order (DIRAC's rules; see the module doc)."""
    site = schema.value(cfg, "/LocalSite/Site")
    gateways = cfg.getValue(f"/DIRAC/Gateways/{site}", []) if site else []
    if gateways:
        random.shuffle(gateways)
        return [url if urllib.parse.urlsplit(url).path.strip("/") else f"{url.rstrip('/')}/{SERVICE}"
                for url in gateways]
    servers = list(schema.value(cfg, "/DIRAC/Configuration/Servers"))
    patterns = []
    for text in schema.value(cfg, "/DIRAC/PreferredURLPatterns"):
        try:
            patterns.append(re.compile(text))
        except re.error as exc:
            log.warning("ignoring /DIRAC/PreferredURLPatterns entry %r: %s", text, exc)
    groups: list[list[str]] = [[] for _ in range(len(patterns) + 1)]
    for url in dict.fromkeys(servers):  # once each, first position kept
        rank = next((i for i, pattern in enumerate(patterns) if pattern.match(url)), len(patterns))
        groups[rank].append(url)
    ordered: list[str] = []
    for group in groups:
        random.shuffle(group)
        ordered += group
    return ordered


def uses_configuration_server(cfg: Config) -> bool:
    """True if the configuration names Configuration Servers (or a gateway)."""
    return bool(configuration_servers(cfg))


def version_of(text: str) -> str:
    """``/DIRAC/Configuration/Version`` of CFG text (``"0"`` when absent)."""
    try:
        tree = CFG().loadFromBuffer(text)
        value = tree.getOption("/DIRAC/Configuration/Version", "")
    except Exception as exc:  # diraccfg raises ValueError/KeyError on malformed text
        raise FetchError(f"malformed configuration data: {exc}") from exc
    return str(value) if value else "0"


def _decode_data(data: Any, base64_text: bool) -> str:
    if isinstance(data, str):
        data = base64.b64decode(data, validate=True) if base64_text else data.encode("utf-8", "surrogateescape")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FetchError(f"unexpected data type {type(data).__name__}")
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(bytes(data), MAX_DATA_SIZE)
        if inflater.unconsumed_tail:
            raise FetchError(f"configuration data larger than {MAX_DATA_SIZE} bytes")
        return text.decode("utf-8")
    except (zlib.error, UnicodeDecodeError) as exc:
        raise FetchError(f"undecodable configuration data: {exc}") from exc


class ConfigurationRefresher:
    """Keeps ``cfg``'s remote layer in step with the site's Configuration Servers."""

    def __init__(self, cfg: Config, *, local_copy: str | os.PathLike[str] | None = None,
                 query: ServerQuery | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        copy = local_copy or schema.value(cfg, LOCAL_COPY_OPTION)
        self.local_copy = Path(copy) if copy else None
        self._query = query or self._ask_server
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.version = version_of(cfg.remote_text) if cfg.remote_text else "0"
        #: the server the data in use came from ("" for the local copy)
        self.source = ""
        self.last_success = 0.0
        self.outage = False
        self.updates = 0
        self.last_errors: list[str] = []

    # -- one refresh --------------------------------------------------------------------------
    def refresh(self, *, from_master: bool = False) -> bool:
        """Ask the servers in order until one answers; True if one did (new data or not).
        ``from_master``: only ``/DIRAC/Configuration/MasterServer`` (when known)."""
        with self._lock:
            master = (schema.value(self.cfg, "/DIRAC/Configuration/MasterServer") or None) if from_master else None
            servers = [master] if master else configuration_servers(self.cfg)
            errors = []
            for url in servers:
                try:
                    self._refresh_from(url)
                except (SeproxyError, OSError, ValueError) as exc:
                    errors.append(f"{url}: {exc}")
                    log.debug("Configuration Server %s failed: %s", url, exc)
                    continue
                if self.outage:
                    log.warning("Configuration Server %s answers again (version %s)", url, self.version)
                    self.outage = False
                self.last_success = self._clock()
                return True
            if not self.outage:
                self.outage = True
                log.error("No Configuration Server answers (%s); serving the last configuration "
                          "(version %s) until one does", "; ".join(errors) or "none configured",
                          self.version)
            self.last_errors = errors
            return False

    def _refresh_from(self, url: str) -> None:
        answer = self._query(url, self.version)
        if not isinstance(answer, dict) or "OK" not in answer:
            raise FetchError(f"invalid answer {answer!r:.80}")
        if not answer["OK"]:
            raise FetchError(str(answer.get("Message", "failed")))
        value = answer.get("Value")
        if not isinstance(value, dict) or not isinstance(value.get("newestVersion"), str):
            raise FetchError(f"invalid answer {value!r:.80}")
        newest = value["newestVersion"]
        if not self.version < newest:
            return
        if "data" not in value:
            raise FetchError(f"newer version {newest} announced without data")
        text = _decode_data(value["data"], url.startswith("https"))
        got = version_of(text)
        if got != newest:
            raise FetchError(f"data of version {got} announced as {newest}")
        self.cfg.set_remote(text)
        self._write_local_copy(text)
        self.version, self.source = newest, url
        self.updates += 1
        log.info("Configuration updated to version %s from %s", newest, url)

    # -- start-up and the local copy ---------------------------------------------------------
    def initial(self) -> None:
        """First fetch; else the local copy; else ConfigError (one line)."""
        if self.refresh():
            return
        text = self._read_local_copy()
        if text is None:
            servers = ", ".join(configuration_servers(self.cfg)) or "none"
            where = f" and no local copy at {self.local_copy}" if self.local_copy else \
                " and no local copy (/DIRAC/Configuration/LocalCopy is not set)"
            raise ConfigError(f"No Configuration Server answered ({servers}){where}")
        self.cfg.set_remote(text)
        self.version, self.source = version_of(text), ""
        log.warning("Starting with the local copy %s of the configuration (version %s)",
                    self.local_copy, self.version)

    def _read_local_copy(self) -> str | None:
        if self.local_copy is None:
            return None
        try:
            text = self.local_copy.read_text(encoding="utf-8")
            version_of(text)
        except (OSError, UnicodeDecodeError, FetchError) as exc:
            if not isinstance(exc, FileNotFoundError):
                log.error("Cannot use the local configuration copy %s: %s", self.local_copy, exc)
            return None
        return text

    def _write_local_copy(self, text: str) -> None:
        if self.local_copy is None:
            return
        directory = self.local_copy.parent
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.local_copy.name}.", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.local_copy)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            log.error("Cannot write the local configuration copy %s: %s", self.local_copy, exc)

    # -- background ---------------------------------------------------------------------------
    def refresh_time(self) -> float:
        return float(schema.value(self.cfg, "/DIRAC/Configuration/RefreshTime"))

    def start(self) -> ConfigurationRefresher:
        """Refresh every RefreshTime in a daemon thread; also at every ``cfg.reload()``."""
        self.cfg.add_reload_hook(self._on_reload)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="seproxy-cs-refresher", daemon=True)
        self._thread.start()
        return self

    def _on_reload(self, from_master: bool = False) -> None:
        """``refreshConfiguration``: DIRAC's ``Reason(s):`` error when no server answers."""
        if not self.refresh(from_master=from_master):
            reasons = list(dict.fromkeys(self.last_errors)) or ["no Configuration Server configured"]
            raise ConfigError("Reason(s):\n\t" + "\n\t".join(reasons))

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_time()):
            try:
                self.refresh()
            except Exception:  # the refresher must survive anything
                log.exception("Configuration refresh failed")

    def stop(self) -> None:
        self.cfg.remove_reload_hook(self._on_reload)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    # -- asking one server --------------------------------------------------------------------
    def _ask_server(self, url: str, version: str) -> dict:
        if url.startswith("https://"):
            return self._ask_https(url, version)
        from seproxy.rpc.client import RPCClient

        client = RPCClient(url, config=self.cfg, useCertificates=True, timeout=CONNECT_TIMEOUT,
                           retryDelay=0.0)
        return client.getCompressedDataIfNewer(version)

    def _ask_https(self, url: str, version: str) -> dict:
        import http.client

        from seproxy.security.locations import ca_directory, host_credentials

        cert, key = host_credentials(self.cfg)
        context = ssl.create_default_context(capath=str(ca_directory(self.cfg)))
        context.load_cert_chain(str(cert), str(key))
        parts = urllib.parse.urlsplit(url)
        body = urllib.parse.urlencode({"method": "getCompressedDataIfNewer", "args": json.dumps([version])})
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port or 443, context=context,
                                           timeout=CONNECT_TIMEOUT)
        try:
            conn.request("POST", parts.path or f"/{SERVICE}", body=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            response = conn.getresponse()
            payload = response.read(64 * 1024 * 1024)
        finally:
            conn.close()
        try:
            answer = json.loads(payload)
        except ValueError as exc:
            raise FetchError(f"HTTP {response.status}: not a JSON answer") from exc
        return answer if isinstance(answer, dict) else {"OK": False, "Message": "invalid answer"}


__all__ = [
    "LOCAL_COPY_OPTION",
    "ConfigurationRefresher",
    "FetchError",
    "configuration_servers",
    "uses_configuration_server",
    "version_of",
]
