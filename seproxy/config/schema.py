"""Every configuration option seproxy reads, declared once, and the one way to read it.

An :class:`Option` names a path relative to its :class:`Section`, a type, a default,
the allowed range or choices and one line of help. Code reads options only through
:meth:`Section.value` (service sections: wherever the DIRAC layout puts them, see
``Config.service_section``) or :func:`value` (absolute paths such as
``/DIRAC/Security/SessionTimeout``); a missing option is its declared default, a
present one must convert or a :class:`~seproxy.errors.ConfigError` names the option,
the file it came from and the value. :func:`validate` checks a whole configuration at
start-up (the first bad value stops, unknown options in seproxy's own sections are
returned as warnings); :func:`markdown_reference` renders the tables of
docs/OPERATIONS.md.

Sections owned by DIRAC (``/Registry``, ``/Resources/StorageElements/<SE>``, the
``/DIRAC/Setups`` map) keep their free structure and are read by the Registry and the
storage factory; only their fixed options are declared here.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from seproxy.config.cfg import Config, as_list, join_path
from seproxy.errors import ConfigError

Kind = Literal["int", "float", "bool", "str", "list", "size", "choice"]

_TRUE = frozenset({"y", "yes", "true", "1", "on"})
_FALSE = frozenset({"n", "no", "false", "0", "off"})
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

SERVICE_NAME = "DataManagement/StorageElementProxy"


def parse_size(text: str) -> int:
    """Bytes from ``"1234"``, ``"64M"``, ``"10G"``, ``"1.5T"`` (binary units); ``ValueError`` else."""
    body = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = body[-1] if body and body[-1] in _UNITS else ""
    number = body[:-1] if unit else body
    try:
        size = float(number)
    except ValueError:
        raise ValueError("not a size (use bytes or K, M, G, T: e.g. 500M, 10G)") from None
    if not math.isfinite(size) or size < 0:
        raise ValueError("not a size >= 0")
    return int(size * _UNITS[unit])


class _Reader(Protocol):
    """What reading needs of a configuration (``Config``)."""

    def getOption(self, path: str) -> str | None: ...  # noqa: N802 (DIRAC name)


@dataclass(frozen=True)
class Option:
    """One option: ``path`` relative to its section, type, default, bounds, help."""

    path: str
    kind: Kind
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    #: an empty value is allowed: "" for a choice, None for a number (else an error)
    empty_ok: bool = False

    def convert(self, raw: str) -> Any:
        """The typed value of ``raw``; ``ValueError(reason)`` if it is not allowed."""
        text = raw.strip()
        if self.kind == "str":
            return text
        if self.kind == "list":
            return as_list(text)
        if self.kind == "bool":
            word = text.lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
            raise ValueError("expected yes or no")
        if self.kind == "choice":
            if text == "" and self.empty_ok:
                return ""
            found = next((c for c in self.choices if c.lower() == text.lower()), None)
            if found is None:
                raise ValueError(f"expected one of {', '.join(self.choices)}")
            return found
        if text == "" and self.empty_ok:
            return None  # a number left empty on purpose (e.g. MetricsPort: off)
        number: float
        if self.kind == "size":
            number = parse_size(text)
        elif self.kind == "int":
            try:
                number = int(text)
            except ValueError:
                raise ValueError("expected an integer") from None
        else:
            try:
                number = float(text)
            except ValueError:
                raise ValueError("expected a number") from None
            if not math.isfinite(number):
                raise ValueError("expected a finite number")
        if (self.minimum is not None and number < self.minimum) or \
                (self.maximum is not None and number > self.maximum):
            raise ValueError(f"expected {self.allowed()}")
        return number

    def allowed(self) -> str:
        """The allowed values in words (documentation and error messages)."""
        if self.kind == "bool":
            return "yes or no"
        if self.kind == "choice":
            return " or ".join(self.choices) + (" or empty" if self.empty_ok else "")
        if self.kind in ("str", "list"):
            return ""
        if self.empty_ok:
            return f"{replace(self, empty_ok=False).allowed()} or empty"
        text = _size_text if self.kind == "size" else _number_text
        low = text(self.minimum)
        high = text(self.maximum)
        if low and high:
            return f"{low} to {high}"
        if low:
            return f">= {low}"
        return f"<= {high}" if high else ""

    def default_text(self) -> str:
        """The default as a CFG value."""
        value = self.default
        if value is None:
            return ""
        if self.kind == "size":
            return _size_text(value)
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, (list, tuple)):
            return ", ".join(value)
        return _number_text(value) if isinstance(value, (int, float)) else str(value)


def _size_text(value: float | None) -> str:
    """``67108864`` -> ``64M`` (the largest binary unit that divides it)."""
    if not value:
        return _number_text(value)
    number = int(value)
    unit = next((u for u in "TGMK" if number % _UNITS[u] == 0), "")
    return f"{number // _UNITS[unit]}{unit}" if unit else str(number)


def _number_text(value: float | None) -> str:
    if value is None or value == "":
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Section:
    """Options under one CFG path; ``owned``: seproxy's own (unknown options warned about)."""

    key: str
    title: str
    path: str
    options: tuple[Option, ...]
    owned: bool = False
    #: lower-case path -> option; paths with ``*`` (free names, ``Authorization/*``) are
    #: matched component by component in :meth:`option`
    _by_path: dict[str, Option] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_path", {o.path.lower(): o for o in self.options})

    def option(self, name: str) -> Option:
        """The declaration of ``name`` (exact path, else a matching pattern)."""
        found = self._by_path.get(name.lower())
        if found is None:
            parts = name.lower().split("/")
            found = next((o for o in self.options if "*" in o.path
                          and _matches(parts, o.path.lower().split("/"))), None)
        if found is None:
            raise ConfigError(f"option {name} of {self.path} is not declared in seproxy.config.schema")
        return found

    def holds_section(self, name: str) -> bool:
        """True if some declared option lives below the relative section ``name``."""
        parts = name.lower().split("/")
        return any(_matches(parts, o.path.lower().split("/")[:len(parts)])
                   for o in self.options if o.path.count("/") >= len(parts))

    def declares(self, name: str) -> bool:
        try:
            self.option(name)
        except ConfigError:
            return False
        return True

    def value(self, cfg: _Reader | None, name: str, base: str | None = None) -> Any:
        """The typed value of option ``name`` under ``base`` (default: this section's path)."""
        option = self.option(name)
        if cfg is None:
            return option.default
        path = join_path(base or self.path, name)
        raw = cfg.getOption(path)
        if raw is None:
            return _expanded_default(cfg, option)
        try:
            return option.convert(raw)
        except ValueError as exc:
            raise bad_value(cfg, path, raw, str(exc)) from None

    def with_defaults(self, key: str, title: str, **wanted: Any) -> Section:
        """A copy with other defaults for some options (by path)."""
        unknown = set(wanted) - {o.path for o in self.options}
        if unknown:
            raise ConfigError(f"with_defaults: undeclared {sorted(unknown)}")
        options = tuple(replace(o, default=wanted[o.path]) if o.path in wanted else o for o in self.options)
        return Section(key, title, self.path, options, self.owned)

    def extended(self, key: str, title: str, options: Iterable[Option]) -> Section:
        return Section(key, title, self.path, self.options + tuple(options), self.owned)

    def defaults_under(self, prefix: str) -> dict[str, Any]:
        """``{relative path below prefix: default}`` of the declared (non-pattern) options."""
        head = prefix.rstrip("/") + "/"
        return {o.path[len(head):]: o.default for o in self.options
                if o.path.startswith(head) and "*" not in o.path}


def _matches(parts: list[str], pattern: list[str]) -> bool:
    """Path components against pattern components (``*`` = one free name)."""
    return len(parts) == len(pattern) and all(fnmatch.fnmatchcase(p, q) for p, q in zip(parts, pattern, strict=False))


def _expanded_default(cfg: _Reader, option: Option) -> Any:
    default = option.default
    if isinstance(default, str) and "@" in default:
        expand = getattr(cfg, "expand", None)
        expanded = expand(default) if expand is not None else None
        return expanded if expanded is not None else ""
    return list(default) if isinstance(default, (list, tuple)) else default


def bad_value(cfg: Any, path: str, raw: str, reason: str) -> ConfigError:
    """The one-line error for a bad value: option, where it came from, value, what is allowed."""
    origin = cfg.origin(path) if hasattr(cfg, "origin") else None
    where = f" in {origin}" if origin else ""
    return ConfigError(f"invalid value {raw.strip()!r} for {path}{where}: {reason}")


# ---------------------------------------------------------------------------------------
# The declarations
# ---------------------------------------------------------------------------------------
Opt = Option  # short alias: keeps the tables readable

#: Options of every DISET service section (the framework's; PROTOCOL.md 9.2).
SERVICE = Section("service", "Any DISET service section (framework)", "<service section>", (
    Opt("Port", "int", 9139, "DISET port (0: any free port; DIRAC's StorageElementProxy port is 9139)",
      0, 65535),
    Opt("Protocol", "choice", "dips", "dips (TLS) or dip (plain, no identities: every call is anonymous)",
      choices=("dips", "dip")),
    Opt("BindAddress", "str", "", "listening address of the DISET port; empty = all interfaces (DIRAC)"),
    Opt("URL", "str", "", "URL the service announces (empty: built from /DIRAC/Hostname and Port)"),
    Opt("Encoding", "choice", "", "encoding of the answers: dencode (DIRAC 8.0's, raw file chunks) or "
      "json (DIRAC 9's, base64 chunks); empty = DIRAC's default; clients of both read both",
      choices=("dencode", "json"), empty_ok=True),
    Opt("MaxThreads", "int", 15, "worker threads serving connections (DIRAC meaning)", 1, 10000),
    Opt("MaxWaitingPetitions", "int", 100, "connections queued when every worker is busy; more are "
      "refused with DIRAC's overload answer", 1, 1000000),
    Opt("SocketBacklog", "int", 128, "listen() backlog of the DISET port", 1, 65535),
    Opt("HandshakeTimeout", "float", 10.0, "seconds for a client's TLS handshake and whole proposal "
      "together (no worker is used until the proposal is in)", 0.001),
    Opt("RequestTimeout", "float", 60.0, "seconds for a whole request after the proposal (RPC "
      "arguments, delegation, Connection/new arguments, each reuse-session request)", 0.001),
    Opt("TransferWindowTimeout", "float", 120.0, "seconds within which every chunk window of a "
      "file transfer must arrive", 0.001),
    Opt("MaxPendingConnections", "int", 1024, "connections still in their TLS handshake or "
      "proposal, at most (more are closed at once)", 1, 10 ** 6),
    Opt("MaxPendingPerIP", "int", 256, "the same per client address", 1, 10 ** 6),
    Opt("MaxConnectionsPerIP", "int", 256, "connections past their proposal (in a worker, a reuse "
      "session, a message connection) per client address; more get a 'busy' answer (0: no cap)",
      0, 10 ** 6),
    Opt("MaxConnectionsPerDN", "int", 128, "the same per certificate DN (0: no cap)", 0, 10 ** 6),
    Opt("MaxLargeFrames", "int", 4, "request frames of LargeFrameSize or more read and decoded at "
      "once; more wait (up to RequestTimeout, then 'busy')", 1, 10 ** 4),
    Opt("LargeFrameSize", "size", 8 << 20, "what counts as a large request frame", 1),
    Opt("EnableSessions", "bool", True, "allow seproxy's connection-reuse extension (no: refused as "
      "DIRAC does)"),
    Opt("SessionIdleTimeout", "float", 60.0, "seconds an idle reuse session is kept", 0.001),
    Opt("MaxSessions", "int", 256, "parked reuse sessions kept at most", 0, 1000000),
    Opt("MaxMessagingConnections", "int", 20, "message connections (Connection/new) kept at most",
      0, 1000000),
    Opt("TransferStreamExtension", "bool", True, "offer seproxy's windowed transfer extension to "
      "seproxy clients (DIRAC clients never ask for it)"),
    Opt("DIRACVersion", "choice", "", "the DIRAC release whose framework answers the service gives "
        "(ping, whoami, encoding when Encoding is empty); empty: /DIRAC/DIRACVersion, else 8.0 with a "
        "/DIRAC/Setup, else 9.1", choices=("8.0", "9.1"), empty_ok=True),
    Opt("HandlerPath", "str", "", "handler module path (DIRAC meaning; empty: the service's own)"),
    Opt("Module", "str", "", "load the handler of another service name (DIRAC meaning)"),
    Opt("ThreadLimit/*/*", "int", 15, "ThreadLimit/<ActionType>/<method>: concurrent calls of one "
      "action (DIRAC meaning)", 1, 1000000),
    Opt("Authorization/*", "list", [], "Authorization/<method>: properties, group:<g> or vo:<v> "
      "allowed to call it (DIRAC AuthManager rules)"),
    Opt("Authorization/*/*", "list", [], "Authorization/<ActionType>/<name>: the same for "
      "FileTransfer/..., Message/..., Connection/..."),
), owned=True)

#: The StorageElementProxy service section: framework options with its own defaults, and its own.
STORAGE_ELEMENT_PROXY = SERVICE.with_defaults(
    "seproxy", "StorageElementProxy service section",
    BindAddress="127.0.0.1", Encoding="dencode",
).extended("seproxy", "StorageElementProxy service section", (
    Opt("Authorization/Default", "list", ["authenticated"], "who may call methods without their own "
      "rule (never allow-all by default, in either DIRAC layout)"),
    Opt("Authorization/FileTransfer/Default", "list", ["authenticated"], "who may transfer files"),
    Opt("BasePath", "str", "@DATADIR@/cache", "cache root: staging namespaces, partial uploads, HTTP "
      "keys, catalogue (required)"),
    Opt("StorageThreads", "int", 0, "threads running storage calls under the time limits (0: "
      "MaxThreads, at least 2); MaxThreads sizes only the DISET workers", 0, 10000),
    Opt("HttpAccess", "bool", False, "run the HTTP download server"),
    Opt("HttpPort", "int", 9180, "HTTP port (0: any free port)", 0, 65535),
    Opt("HttpHost", "str", "127.0.0.1", "HTTP listening address; empty = all interfaces (DIRAC)"),
    Opt("HttpURLHost", "str", "", "host name put into HttpURL (empty: /DIRAC/Hostname, else the FQDN)"),
    Opt("HttpsAccess", "bool", False, "serve HTTP over TLS with the host certificate (https:// URLs)"),
    Opt("HttpKeyLifetime", "float", 1800.0, "seconds a download key lives (DIRAC: 1800)", 0.001),
    Opt("HttpMultiUse", "bool", False, "keep a key after a complete download (DIRAC: single-use)"),
    Opt("HttpMaxConnections", "int", 64, "concurrent HTTP connections; more get 503 at once", 1, 100000),
    Opt("HttpPurgeInterval", "float", 30.0, "seconds between background purges of expired keys and "
      "stagings (0: no purger)", 0),
    Opt("HttpHeaderTimeout", "float", 10.0, "seconds for a client's TLS handshake and whole request "
        "header on the HTTP port", 0.001),
    Opt("HttpMaxPending", "int", 4096, "HTTP connections still sending their header, at most", 1, 10 ** 6),
    Opt("HttpMaxPendingPerIP", "int", 256, "the same per client address", 1, 10 ** 6),
    Opt("HttpURLPort", "int", 0, "port put into HttpURL (0: HttpPort; a load balancer's port)", 0, 65535),
    Opt("HttpCache", "str", "", "root of the key directories, shared by the instances (empty: "
      "<BasePath>/httpCache); each instance writes under <root>/<InstanceName>"),
    Opt("HttpKeySecretFile", "str", "", "HMAC secrets of the download keys, one hex line each, the "
      "first signs (empty: <BasePath>/http-key.secret, created mode 0600), see \"Several instances\""),
    Opt("HttpClaimTimeout", "float", 60.0, "seconds after which a single-use key's claim lapses if the "
      "instance serving its download died (running downloads renew it)", 0.1),
    Opt("Database", "str", "", "shared state database, an SQLAlchemy URL (e.g. "
      "mysql+pymysql://seproxy:PW@db/seproxy); empty: SQLite in CatalogueFile"),
    Opt("CredentialSource", "choice", "host", "identity used towards storage: host, proxydir, "
      "delegation, or ProxyManager (the caller's proxy from DIRAC's ProxyManager)",
      choices=("host", "proxydir", "delegation", "ProxyManager")),
    Opt("ProxyLifetime", "int", 15600, "seconds of proxy asked from the ProxyManager", 3600, 10 ** 7),
    Opt("ProxyRenewMargin", "int", 1200, "a cached ProxyManager proxy with less left is downloaded "
      "again; a kept delegated proxy with less left is not reused (the client delegates anew)",
      0, 10 ** 7),
    Opt("ProxyCacheSize", "int", 1000, "ProxyManager or delegated proxies kept in memory, one per "
      "caller (least recently used go first)", 1, 10 ** 7),
    Opt("ProxyVOMS", "bool", False, "ask getVOMSProxy for groups with a VOMSRole"),
    Opt("ProxyDir", "str", "", "proxies for CredentialSource = proxydir (empty: <BasePath>/proxies)"),
    Opt("MaxFileSize", "size", 0, "largest accepted upload in bytes or K/M/G/T, 0 = no limit (DIRAC "
      "had a fixed 1 GiB cap)", 0),
    Opt("MinFreeSpace", "size", 64 << 20, "space always left free on the cache filesystem", 0),
    Opt("CacheHighWatermark", "size", 0, "cache size above which staged files are evicted, 0 = no "
      "limit", 0),
    Opt("CacheLowWatermark", "size", 0, "eviction goes down to this (0: 80% of the high watermark)", 0),
    Opt("StagedFileLifetime", "float", 3600.0, "seconds a staged getFile/putFile copy waits for its "
        "client before the purger removes it (0: kept)", 0),
    Opt("LogLevel", "choice", "INFO", "log level of serve (-d, --log-level win)",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")),
    Opt("LogFormat", "choice", "text", "text, or json: one JSON object per line (--log-format wins)",
        choices=("text", "json")),
    Opt("LogFile", "str", "", "log file, reopened when logrotate moves it (empty: standard error)"),
    Opt("MetricsPort", "int", None, "Prometheus metrics port (empty: off; 0: any free port)", 0, 65535,
        empty_ok=True),
    Opt("MetricsHost", "str", "127.0.0.1", "address the metrics port listens on"),
    Opt("StorageOrphanCleanup", "bool", True, "remove upload temporaries of dead writers from File "
        "storage elements at start-up"),
    Opt("InstanceName", "str", "", "this instance's name (empty: the host name), see \"Several "
      "instances\""),
    Opt("CatalogueFile", "str", "", "SQLite replica catalogue when Database is empty (empty: "
      "<BasePath>/catalogue.sqlite)"),
    Opt("CatalogueFallbackSEs", "list", [], "SEs asked in order for LFNs not in the catalogue "
      "(empty: all configured SEs)"),
    Opt("CallTimeout", "float", 200.0, "seconds for callProxyMethod (DIRAC: 200)", 0.001),
    Opt("TransferTimeout", "float", 300.0, "seconds for uploadFile, prepareFile, prepareFileForHTTP "
      "(DIRAC: 300)", 0.001),
))

#: ``/DIRAC``: the options seproxy reads there.
DIRAC = Section("dirac", "/DIRAC", "/DIRAC", (
    Opt("Setup", "str", "", "DIRAC 8.0 setup name: service sections then live under "
      "/Systems/<System>/<Instance>/ (/DIRAC/Setups/<Setup>/<System> = <Instance>)"),
    Opt("NoSetup", "bool", False, "ignore /DIRAC/Setup (DIRAC 9 layout even if a Setup is set)"),
    Opt("Hostname", "str", "", "host name in the URLs the service announces (empty: the FQDN)"),
    Opt("VirtualOrganization", "str", "", "the VO of a single-VO installation"),
    Opt("DIRACVersion", "choice", "", "DIRACVersion of every service that does not set its own "
        "(empty: 8.0 with a Setup, else 9.1)", choices=("8.0", "9.1"), empty_ok=True),
    Opt("PreferredURLPatterns", "list", [], "regular expressions ranking Configuration Servers "
      "(DIRAC meaning)"),
))

#: ``/DIRAC/Configuration``: where the configuration comes from (seproxy.dirac.configuration).
CONFIGURATION = Section("configuration", "/DIRAC/Configuration", "/DIRAC/Configuration", (
    Opt("Servers", "list", [], "Configuration Server URLs (dips:// or https://); when set, the "
      "configuration comes from them, local files win (DIRAC meaning)"),
    Opt("RefreshTime", "int", 300, "seconds between refreshes from the Configuration Server", 1,
      10 ** 7),
    Opt("MasterServer", "str", "", "the server refreshConfiguration(fromMaster=True) asks"),
    Opt("LocalCopy", "str", "", "last good copy of the Configuration Server's data, used when no "
      "server answers (empty: <data dir>/configuration-copy.cfg)"),
))

#: ``/DIRAC/Security``.
SECURITY = Section("security", "/DIRAC/Security", "/DIRAC/Security", (
    Opt("UseServerCertificate", "bool", False, "clients present the host certificate instead of a proxy"),
    Opt("SkipCAChecks", "bool", False, "clients do not verify the server's chain (DIRAC meaning)"),
    Opt("CertFile", "str", "", "host certificate (empty: DIRAC's look-up in Grid-Security, "
      "$DIRAC/etc/grid-security)"),
    Opt("KeyFile", "str", "", "host key (same look-up)"),
    Opt("CALocation", "str", "", "hashed CA directory (empty: Grid-Security/certificates, "
      "$X509_CERT_DIR, /etc/grid-security/certificates)"),
    Opt("Grid-Security", "str", "", "directory holding hostcert.pem, hostkey.pem, certificates/, vomsdir/"),
    Opt("CheckCRLs", "choice", "auto", "check CRLs: yes, no, or auto (when the CA directory has any)",
      choices=("auto", "yes", "no", "true", "false", "on", "off", "1", "0")),
    Opt("TLSBackend", "choice", "pyopenssl", "TLS implementation: pyopenssl or m2crypto (extra)",
      choices=("pyopenssl", "openssl", "m2crypto")),
    Opt("ContextLifeTime", "float", 21600.0, "seconds a TLS context (credentials, CAs) is reused", 0),
    Opt("SessionTimeout", "int", 3600, "seconds a server's TLS session can be resumed", 1, 10 ** 7),
    Opt("SessionCacheSize", "int", 4096, "TLS sessions a server keeps at most", 1, 10 ** 7),
))

#: ``/Resources/StorageElements`` options that are not a storage element.
STORAGE_ELEMENTS = Section("resources", "/Resources/StorageElements", "/Resources/StorageElements", (
    Opt("ChecksumType", "str", "ADLER32", "checksum type of the storage elements (ADLER32, MD5, ...)"),
))

#: ``/LocalSite``.
LOCAL_SITE = Section("localsite", "/LocalSite", "/LocalSite", (
    Opt("Site", "str", "", "this site's name (storage elements local to it are preferred)"),
))

#: Options of a storage element's protocol section read by seproxy's plugins (by
#: ``PluginName``). The common DIRAC options (``Protocol``, ``Host``, ``Port``, ``Path``,
#: ``Access``, ...) are the storage factory's; an empty value here is the default.
_PROTOCOL_SECTION = "/Resources/StorageElements/<SE>/<protocol section>"
PLUGINS: dict[str, Section] = {section.key: section for section in (
    Section("File", "File plugin", _PROTOCOL_SECTION, (
        Opt("BlockSize", "size", 0, "bytes per read and write while copying (0: 4M, the copy helper's)", 0),
    )),
    Section("S3", "S3 plugin", _PROTOCOL_SECTION, (
        Opt("SecureConnection", "bool", True, "https (yes) or http (no) to the endpoint"),
        Opt("Port", "int", 0, "endpoint port (0: 443 with SecureConnection, else 80)", 0, 65535),
        Opt("Region", "str", "us-east-1", "region name signed into requests"),
        Opt("Aws_access_key_id", "str", "", "access key (empty: the caller's S3 keys or boto3's chain)"),
        Opt("Aws_secret_access_key", "str", "", "secret key for Aws_access_key_id"),
        Opt("Timeout", "float", 30.0, "seconds to connect and per read", 0.001),
        Opt("Retries", "int", 2, "attempts of a failed request", 0, 100),
        Opt("MultipartThreshold", "size", 64 << 20, "uploads above this size go in parts", 1),
        Opt("MultipartChunkSize", "size", 16 << 20, "size of one part (and of a ranged GET)", 5 << 20),
        Opt("MaxConcurrency", "int", 4, "parts or ranges in flight per file", 1, 64),
    )),
    Section("XROOT", "XROOT plugin (also PluginName GFAL2_XROOT)", _PROTOCOL_SECTION, (
        Opt("Timeout", "float", 30.0, "seconds per XRootD operation", 1),
    )),
    Section("HTTPS", "HTTPS plugin (also PluginName GFAL2_HTTPS)", _PROTOCOL_SECTION, (
        Opt("Timeout", "float", 30.0, "seconds to connect and per read", 0.001),
        Opt("Retries", "int", 3, "resumptions (Range) of an interrupted download", 0, 100),
        Opt("CAPath", "str", "", "hashed CA directory the server's certificate is checked "
            "against (empty: the service's, /DIRAC/Security/CALocation...)"),
        Opt("BlockSize", "size", 0, "bytes per read and write while streaming (0: 4M)", 0),
    )),
    Section("DIP", "DIP plugin", _PROTOCOL_SECTION, (
        Opt("CheckSum", "bool", True, "send checksums with the data (no: NoCheckSum, as DIRAC)"),
        Opt("Timeout", "float", 120.0, "seconds per call to the StorageElement service", 0.001),
        Opt("RetryDelay", "float", 0.0, "seconds between retries of a failed connection (0: DIRAC's)", 0),
    )),
)}

#: DIRAC's plugin names that load one of the plugins above (and take its options).
PLUGIN_ALIASES = {"GFAL2_XROOT": "XROOT", "GFAL2_HTTPS": "HTTPS"}

GLOBAL_SECTIONS: tuple[Section, ...] = (DIRAC, CONFIGURATION, SECURITY, STORAGE_ELEMENTS, LOCAL_SITE)
SERVICE_SCHEMAS: dict[str, Section] = {SERVICE_NAME: STORAGE_ELEMENT_PROXY}


def service_schema(name: str) -> Section:
    """The section schema of service ``System/Service`` (the framework's if it has none)."""
    return SERVICE_SCHEMAS.get(name.strip("/"), SERVICE)


def plugin_value(plugin: str, parameters: Mapping[str, Any], name: str, where: str) -> Any:
    """Option ``name`` of a protocol section handed to ``plugin`` (absent or empty: default).

    ``where`` names the section in an error (``/Resources/StorageElements/<SE>/...``).
    """
    if plugin not in PLUGINS:
        raise ConfigError(f"plugin {plugin} has no options declared in seproxy.config.schema")
    option = PLUGINS[plugin].option(name)
    raw = parameters.get(name)
    if raw is None or not str(raw).strip():
        return option.default
    try:
        return option.convert(str(raw))
    except ValueError as exc:
        raise ConfigError(f"invalid value {str(raw).strip()!r} for {where}/{name}: {exc}") from None


def _global(path: str) -> tuple[Section, str]:
    full = join_path(path)
    for section in GLOBAL_SECTIONS:
        head = section.path + "/"
        if full.startswith(head) and "/" not in full[len(head):]:
            return section, full[len(head):]
    raise ConfigError(f"option {full} is not declared in seproxy.config.schema")


def value(cfg: _Reader | None, path: str) -> Any:
    """The typed value of the declared option at absolute ``path`` (its default if absent)."""
    section, name = _global(path)
    return section.value(cfg, name)


def default(path: str) -> Any:
    """The declared default of the option at absolute ``path``."""
    section, name = _global(path)
    return section.option(name).default


# ---------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------
def _walk(cfg: Config, base: str, prefix: str = "") -> Iterator[tuple[str, bool]]:
    """(relative path, is_section) of everything below ``base``."""
    for name in cfg.getOptions(join_path(base, prefix)):
        yield f"{prefix}{name}", False
    for name in cfg.getSections(join_path(base, prefix)):
        yield f"{prefix}{name}", True
        yield from _walk(cfg, base, f"{prefix}{name}/")


def validate(cfg: Config, services: Iterable[str] = (SERVICE_NAME,)) -> list[str]:
    """Check every declared option of ``cfg``; raise ``ConfigError`` at the first bad value.

    Returns one warning per unknown option (or sub-section) in a seproxy-owned
    service section.
    """
    warnings: list[str] = []
    for section in GLOBAL_SECTIONS:
        for option in section.options:
            section.value(cfg, option.path)
    _validate_storage_elements(cfg)
    for name in services:
        schema = service_schema(name)
        base = cfg.service_section(name)
        skipped: list[str] = []
        for rel, is_section in _walk(cfg, base):
            if any(rel.startswith(prefix) for prefix in skipped):
                continue
            if is_section:
                if not schema.holds_section(rel):
                    warnings.append(_unknown(cfg, base, rel, "section"))
                    skipped.append(rel + "/")
                continue
            if schema.declares(rel):
                schema.value(cfg, rel, base)
            else:
                warnings.append(_unknown(cfg, base, rel, "option"))
    return warnings


def _validate_storage_elements(cfg: Config) -> None:
    """Type-check the plugin options of every protocol section (empty values are defaults)."""
    for root in ("/Resources/StorageElements", "/Resources/StorageElementBases"):
        for se in cfg.getSections(root):
            for protocol in cfg.getSections(f"{root}/{se}"):
                base = f"{root}/{se}/{protocol}"
                plugin = cfg.getOption(f"{base}/PluginName") or protocol
                declared = PLUGINS.get(PLUGIN_ALIASES.get(plugin, plugin))
                for name in cfg.getOptions(base) if declared is not None else ():
                    raw = cfg.getOption(f"{base}/{name}")
                    if declared.declares(name) and raw is not None and raw.strip():
                        declared.value(cfg, name, base)


def _unknown(cfg: Config, base: str, rel: str, what: str) -> str:
    path = join_path(base, rel)
    origin = cfg.origin(path) if what == "option" else None
    where = f" (from {origin})" if origin else ""
    return f"unknown {what} {path}{where} ignored (not a StorageElementProxy option; see docs/OPERATIONS.md)"


# ---------------------------------------------------------------------------------------
# Documentation
# ---------------------------------------------------------------------------------------
_TYPE_WORDS = {"int": "integer", "float": "number", "bool": "yes/no", "str": "text", "list": "list",
               "size": "size", "choice": "choice"}


def markdown_table(section: Section) -> str:
    """A Markdown table of ``section``'s options."""
    lines = ["| Option | Type | Default | Allowed | Meaning |", "|---|---|---|---|---|"]
    for option in section.options:
        text = option.default_text()
        shown = f"`{text}`" if text else "empty"
        allowed = option.allowed()
        meaning = option.help.replace("<", "&lt;")
        lines.append(f"| `{option.path}` | {_TYPE_WORDS[option.kind]} | {shown} | "
                     f"{allowed or '-'} | {meaning} |")
    return "\n".join(lines)


def markdown_reference() -> str:
    """The generated option reference of docs/OPERATIONS.md (between its markers)."""
    parts = [
        f"### `{STORAGE_ELEMENT_PROXY.title}`\n\n"
        "`/Systems/DataManagement/Services/StorageElementProxy` (DIRAC 9) or "
        "`/Systems/DataManagement/<Instance>/Services/StorageElementProxy` (DIRAC 8.0, "
        "`/DIRAC/Setup` set): the same options and defaults in both layouts. `<…>` and `*` "
        "stand for free names. Unknown options here are reported at start-up.\n\n"
        + markdown_table(STORAGE_ELEMENT_PROXY),
    ]
    for section in GLOBAL_SECTIONS:
        parts.append(f"### `{section.title}`\n\n" + markdown_table(section))
    for section in PLUGINS.values():
        parts.append(f"### {section.title}: `{section.path}` with `PluginName = {section.key}`\n\n"
                     + markdown_table(section))
    return "\n\n".join(parts) + "\n"
