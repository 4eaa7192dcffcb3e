"""``BaseClient`` and ``RPCClient``: DIRAC's client API (PROTOCOL.md 4.1, 4.3, 5.1).

``RPCClient("dips://host:port/System/Service")`` or ``RPCClient("System/Service")``
(URLs from ``/Systems/<System>/URLs/<Service>``, shuffled, ``FailoverURLs`` last,
``$MAINSERVERS$`` expanded from Operations ``MainServers``);
any attribute is a remote method returning the S_OK/S_ERROR dict with ``rpcStub``.

DIRAC keyword arguments: ``timeout`` (default 600, raised to at least 120),
``proxyLocation``, ``useCertificates``, ``skipCACheck``, ``delegatedDN``,
``delegatedGroup``, ``extraCredentials``, ``keepAliveLapse``, ``setup``, ``VO``
(``proxyString``/``proxyChain``/``ignoreGateways`` are accepted and ignored).
seproxy keyword arguments: ``encoding`` ("json" | "dencode"; default DIRAC's),
``reuseConnection`` (connection reuse, seproxy.rpc.client.reuse), ``config`` (a Config;
default the process-wide one), ``retryDelay`` (DIRAC: 2 s).

Retry rules (DIRAC's): each URL is tried 3 times (2 with more than 2 URLs), with a
pause after every round in which all URLs failed to connect; a proposal refused
with anything but ``Unauthorized query`` is proposed again up to 3 more times.
"""

from __future__ import annotations

import functools
import random
import time
from typing import Any
from urllib.parse import urlsplit

from seproxy.config import Config, Registry, get_config, schema
from seproxy.errors import AuthError, ConfigError, SeproxyError
from seproxy.returnvalues import EUNAUTHORIZED, S_ERROR, S_OK, unwrap
from seproxy.rpc import transport as transports
from seproxy.rpc.client import reuse
from seproxy.rpc.client.reuse import ANSWERED, BROKEN, INVALID
from seproxy.rpc.connection import Connection
from seproxy.rpc.version import DIRAC_VERSION
from seproxy.rpc.wire import codec
from seproxy.rpc.wire.proposal import build_proposal

DEFAULT_RPC_TIMEOUT = 600
MIN_RPC_TIMEOUT = 120
MIN_KEEPALIVE_LAPSE = 150
PROPOSAL_RETRIES = 3
#: Keyword arguments of seproxy's own (not DIRAC's): not part of ``rpcStub``.
SEPROXY_KWARGS = ("config", "encoding", "reuseConnection", "retryDelay", "definitions")


@functools.lru_cache(maxsize=256)  # a client parses its URL again for every connection
def parse_url(url: str) -> tuple[str, str, int, str]:
    """``dips://host:port/System/Service`` -> ``(protocol, host, port, "System/Service")``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("dips", "dip") or not parts.hostname or parts.port is None:
        raise ConfigError(f"Invalid DISET URL {url!r}: expected dips://host:port/System/Service")
    return parts.scheme, parts.hostname, parts.port, parts.path.strip("/")


def resolve_urls(cfg: Config, url_or_name: str) -> tuple[list[str], str]:
    """The URLs to try, in order, and the service name they serve."""
    text = url_or_name.strip()
    if "://" in text:
        urls = [u.strip() for u in text.split(",") if u.strip()]
        return urls, parse_url(urls[0])[3]
    name = text.strip("/")
    urls = list(cfg.service_urls(name))
    random.shuffle(urls)
    section = cfg.service_section(name)
    system_base = section.rsplit("/Services/", 1)[0]
    failover = cfg.getValue(f"{system_base}/FailoverURLs/{name.split('/', 1)[1]}", [])
    urls += [u for u in failover if u not in urls]
    urls = _expand_main_servers(cfg, urls)
    if not urls:
        raise ConfigError(f"URL for service {name} not found")
    return urls, name


def _expand_main_servers(cfg: Config, urls: list[str]) -> list[str]:
    """``$MAINSERVERS$`` in a URL: one URL per host of Operations ``MainServers``."""
    if not any("$MAINSERVERS$" in url for url in urls):
        return urls
    vo = schema.value(cfg, "/DIRAC/VirtualOrganization")
    servers = (cfg.getValue(f"/Operations/{vo}/MainServers", []) if vo else []) or \
        cfg.getValue("/Operations/Defaults/MainServers", [])
    expanded: list[str] = []
    for url in urls:
        for item in (servers if "$MAINSERVERS$" in url else [None]):
            candidate = url if item is None else url.replace("$MAINSERVERS$", item)
            if candidate not in expanded:
                expanded.append(candidate)
    return expanded


class BaseClient:
    """Connection set-up shared by RPCClient, TransferClient and MessageClient."""

    retryDelay = 2.0  # noqa: N815 (DIRAC-ish name)

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.cfg: Config = kwargs.pop("config", None) or get_config()
        self.encoding: str | None = kwargs.pop("encoding", None)
        self.reuse_connection = bool(kwargs.pop("reuseConnection", False))
        if "retryDelay" in kwargs:
            self.retryDelay = float(kwargs.pop("retryDelay"))
        self._destinationSrv = url
        self.urls, self.serviceName = resolve_urls(self.cfg, url)
        timeout = kwargs.get("timeout") or DEFAULT_RPC_TIMEOUT
        self.timeout = max(MIN_RPC_TIMEOUT, float(timeout))
        self.keepAliveLapse = max(MIN_KEEPALIVE_LAPSE, float(kwargs.get("keepAliveLapse") or 0))
        self.proxyLocation = kwargs.get("proxyLocation")
        use_certs = kwargs.get("useCertificates")
        if use_certs is None:
            use_certs = schema.value(self.cfg, "/DIRAC/Security/UseServerCertificate")
        self.useCertificates = bool(use_certs)
        skip = kwargs.get("skipCACheck")
        if skip is None:
            skip = schema.value(self.cfg, "/DIRAC/Security/SkipCAChecks") and not self.useCertificates
        self.skipCACheck = bool(skip)
        self.setup = kwargs.get("setup", "None")
        self.vo = kwargs.get("VO") or schema.value(self.cfg, "/DIRAC/VirtualOrganization") or "unknown"
        self.extraCredentials = self._extra_credentials(kwargs)
        # what DIRAC keeps (and shows in rpcStub): the caller's kwargs + the effective defaults
        self.kwargs = {k: v for k, v in kwargs.items() if k not in SEPROXY_KWARGS}
        self.kwargs["timeout"] = int(self.timeout) if self.timeout == int(self.timeout) else self.timeout
        self.kwargs["skipCACheck"] = self.skipCACheck
        self.kwargs["keepAliveLapse"] = int(self.keepAliveLapse)

    def _extra_credentials(self, kwargs: dict) -> Any:
        if kwargs.get("extraCredentials"):
            return kwargs["extraCredentials"]
        dn = kwargs.get("delegatedDN")
        if dn:
            group = kwargs.get("delegatedGroup")
            if not group:
                try:
                    group = Registry(self.cfg).default_group_for_dn(dn)
                except AuthError:
                    group = ""
            return [dn, group]
        if self.useCertificates and not self.proxyLocation:
            return "hosts"
        return ""

    # -- DIRAC accessors -------------------------------------------------------------------
    def getServiceName(self) -> str:  # noqa: N802
        return self.serviceName

    def getDestinationService(self) -> str:  # noqa: N802
        return self._destinationSrv

    def _getBaseStub(self) -> list:  # noqa: N802
        # DIRAC leaves useCertificates out of the stub: whoever replays it decides that
        kwargs = dict(self.kwargs)
        kwargs.pop("useCertificates", None)
        return [self._destinationSrv, kwargs]

    # -- connecting ------------------------------------------------------------------------
    def _open(self, url: str) -> Connection:
        protocol, host, port, _ = parse_url(url)
        transport = transports.connect(
            protocol, host, port, cfg=self.cfg, timeout=transports.DEFAULT_CONNECTION_TIMEOUT,
            proxy_location=self.proxyLocation, use_certificates=self.useCertificates,
            skip_ca_check=self.skipCACheck, server_hostname=host, keepalive_lapse=self.keepAliveLapse)
        transport.settimeout(self.timeout)
        return transport

    def _proposal(self, action_type: str, action_name: str) -> dict:
        return build_proposal(self.serviceName, action_type, action_name, setup=self.setup, vo=self.vo,
                              extra_credentials=self.extraCredentials, client_version=DIRAC_VERSION)

    def _propose(self, transport: Connection, action_type: str, action_name: str) -> dict:
        transport.send_data(self._proposal(action_type, action_name), self.encoding)
        answer = transport.receive_data()
        reply = unwrap(answer)
        if not reply.valid:
            return S_ERROR(f"Invalid answer to the proposal: {answer!r:.100}")
        if reply.ok and isinstance(reply.value, dict) and "delegate" in reply.value:
            answer = self._delegate(transport, reply.value["delegate"])
        return answer

    def _delegate(self, transport: Connection, request: Any) -> dict:
        """The server asked for a delegated proxy (PROTOCOL 4.4): sign its request with
        our proxy, send the chain as a bare string, return the server's next answer."""
        from seproxy.security import locations
        from seproxy.security.delegation import sign_request

        try:
            proxy = locations.proxy_location(self.proxyLocation).read_bytes()
            chain = sign_request(request, proxy)
        except (SeproxyError, OSError, ValueError) as exc:
            transport.send_data(S_ERROR(f"Cannot delegate: {exc}"), self.encoding)
            return S_ERROR(f"Cannot delegate a proxy: {exc}")
        transport.send_data(chain, self.encoding)
        answer = transport.receive_data()
        if not unwrap(answer).valid:
            return S_ERROR(f"Invalid answer to the delegation: {answer!r:.100}")
        return answer

    def _connect_and_propose(self, action_type: str, action_name: str) -> tuple[dict, Connection | None]:
        """Connect (with DIRAC's failover and retries) and get the proposal accepted.

        Returns ``(S_OK(), transport)`` or ``(S_ERROR, None)``.
        """
        rounds = 3 if len(self.urls) <= 2 else 2
        last: dict | None = None
        proposals = 0
        for attempt in range(rounds):
            for url in self.urls:
                try:
                    transport = self._open(url)
                except (SeproxyError, OSError) as exc:
                    transport = None
                    last = S_ERROR(f"Can't connect to {url}: {exc}")
                while transport is not None:
                    try:
                        answer = self._propose(transport, action_type, action_name)
                    except (SeproxyError, OSError) as exc:
                        answer = S_ERROR(f"Error while proposing {action_type}/{action_name} to {url}: {exc}")
                    if unwrap(answer).ok:
                        return S_OK(), transport
                    transport.close()
                    if answer.get("Errno") == EUNAUTHORIZED or proposals >= PROPOSAL_RETRIES:
                        answer.pop("CallStack", None)
                        return answer, None
                    last = answer
                    proposals += 1
                    transport = None
                    try:
                        transport = self._open(url)
                    except (SeproxyError, OSError) as exc:
                        last = S_ERROR(f"Can't connect to {url}: {exc}")
            if attempt < rounds - 1:
                time.sleep(self.retryDelay if len(self.urls) <= 1 else 3.0 / len(self.urls))
        if last is None:
            last = S_ERROR(f"Cannot connect to {self.serviceName}")
        last.pop("CallStack", None)
        return last, None

    # -- RPC -------------------------------------------------------------------------------
    def executeRPC(self, method: str, *args: Any) -> dict:  # noqa: N802
        arguments = list(args)  # the stub keeps its own copy: sent values are not shared
        result = reuse.call(self, method, arguments) if self.reuse_connection else None
        if result is None:
            result = self._rpc_once(method, arguments)
        result["rpcStub"] = [self._getBaseStub(), method, list(args)]
        return result

    def _rpc_once(self, method: str, args: list) -> dict:
        result, transport = self._connect_and_propose("RPC", method)
        if not result["OK"]:
            return result
        try:
            answer, state = self._exchange(transport, S_OK(args))
        finally:
            transport.close()
        # the transport's texts are DIRAC's reader/writer messages
        return S_ERROR(str(answer)) if state == BROKEN else answer

    def _exchange(self, transport: Connection, request: Any) -> tuple[Any, int]:
        """Send one request and receive its answer (both connection models use this).

        Returns ``(answer, ANSWERED)``; ``(S_ERROR, INVALID)`` when the answer is no
        S_OK/S_ERROR dict; ``(the SeproxyError, BROKEN)`` when the connection failed.
        An unencodable request raises before anything is sent (the caller's bug,
        raised as in DIRAC).
        """
        payload = codec.encode(request, self.encoding)
        try:
            transport.send_frame(payload)
            answer = transport.receive_data()
        except SeproxyError as exc:
            return exc, BROKEN
        if unwrap(answer).valid:
            return answer, ANSWERED
        return S_ERROR(f"Invalid answer from {self.serviceName}: {answer!r:.100}"), INVALID


class _MagicMethod:
    __slots__ = ("_client", "_name")

    def __init__(self, client: BaseClient, name: str) -> None:
        self._client = client
        self._name = name

    def __call__(self, *args: Any) -> dict:
        return self._client.executeRPC(self._name, *args)


class RPCClient(BaseClient):
    """``RPCClient(url_or_name, **kwargs).anyMethod(*args)`` -> S_OK/S_ERROR (DIRAC API)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        # kept on the instance: the next ``client.name`` is a plain attribute look-up
        method = self.__dict__[name] = _MagicMethod(self, name)
        return method

    def close(self) -> None:
        """Close this client's idle reused connections (nothing to do without reuse)."""
        if self.reuse_connection:
            reuse.close_idle(self)

    def __enter__(self) -> RPCClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
