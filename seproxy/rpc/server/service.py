"""``Service``: one DISET service on one port - accept loop, bounded worker pool.

Threads of a running service::

    acceptor (1)   selectors loop: listener + parked reuse sessions + a wake-up pipe;
                   banned IPs closed at once; each new connection -> intake
    intake (1)     seproxy.rpc.server.intake: non-blocking TLS handshake and proposal read,
                   one deadline for both (HandshakeTimeout), MaxPendingConnections /
                   MaxPendingPerIP; a whole proposal -> job queue
    workers (MaxThreads)   job queue (bounded: MaxWaitingPetitions) -> worker.serve_proposal:
                   per-IP/per-DN caps, authorisation, action, answer; every read after
                   the proposal under a whole-request deadline (watchdog)
    rejector (1)   when the queue is full: an explicit S_ERROR "... overloaded ..." to the
                   waiting proposal, then close; beyond its own small queue connections
                   are closed at once
    watchdog (1)   seproxy.rpc.server.watchdog: shuts down connections whose request (RPC
                   arguments, message-connection arguments, session request) is not whole
                   within RequestTimeout, or whose transfer sends no chunk window within
                   TransferWindowTimeout
    broker (0/1)   message connections (seproxy.rpc.server.broker), started on demand

Nothing is unbounded: the queue, the rejector's queue, the intake, the parked sessions
(``MaxSessions``), connections per address and per DN, large frames being decoded
(``MaxLargeFrames``), every request (deadlines) and every frame (size limits).
Reuse sessions and message connections end when the peer's certificate chain expires.
``stop()`` closes the listener, lets queued and running requests finish (up to
``timeout``), then closes what is left. Options (service section, PROTOCOL.md 9.2):
declared with types and defaults in ``seproxy.config.schema``:
``Port``, ``Protocol``, ``MaxThreads``, ``MaxWaitingPetitions``, ``ThreadLimit/<T>/<m>``,
``SocketBacklog``, ``URL``, ``MaxMessagingConnections``, ``HandlerPath``, ``Module``,
``Authorization/*``; seproxy's own: ``BindAddress`` (default all), ``Encoding``
(json | dencode; default DIRAC's), ``HandshakeTimeout`` (10 s: TLS handshake plus the
whole proposal), ``RequestTimeout`` (60 s for a whole request after the proposal),
``TransferWindowTimeout`` (120 s per chunk window of a transfer), ``EnableSessions``
(yes), ``SessionIdleTimeout`` (60 s), ``MaxSessions`` (256), ``MaxPendingConnections``
(1024), ``MaxPendingPerIP`` (256), ``MaxConnectionsPerIP`` (256), ``MaxConnectionsPerDN``
(128), ``MaxLargeFrames`` (4), ``LargeFrameSize`` (8388608 bytes).
"""

from __future__ import annotations

import datetime
import logging
import queue
import selectors
import socket
import sys
import threading
import time
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from seproxy import metrics
from seproxy.config import Config, Registry, schema
from seproxy.errors import ConfigError, SeproxyError
from seproxy.returnvalues import isReturnStructure
from seproxy.rpc import transport as transports
from seproxy.rpc.connection import ServerConnection
from seproxy.rpc.server import worker
from seproxy.rpc.server.auth import AuthManager
from seproxy.rpc.server.connections import ConnectionCaps, ConnectionRegistry, FrameSlots, MethodLimits
from seproxy.rpc.server.context import ActionServer, ServiceContext
from seproxy.rpc.server.handler import RequestHandler
from seproxy.rpc.server.intake import Intake
from seproxy.rpc.server.loader import load_handler
from seproxy.rpc.server.session import ReuseSession
from seproxy.rpc.server.watchdog import Watchdog
from seproxy.rpc.version import service_compat
from seproxy.rpc.wire import codec
from seproxy.rpc.wire.proposal import DIRAC_ACTION_TYPES, INVALID_PROPOSAL, PROPOSAL_MAX_SIZE, SESSION_ACTION

log = logging.getLogger("seproxy.rpc.service")

#: Refusals waiting for the rejector (each is one small answer: the proposal is in already).
REJECTOR_QUEUE = 1024
#: action types the framework serves itself; the others need a server in the action table
FRAMEWORK_ACTIONS = ("RPC", "Connection", "Message")
REJECT_TIMEOUT = 2.0
#: Connections accepted per wake-up of the accept loop.
ACCEPT_BATCH = 64



class Service:
    """A DISET service ``System/Service``.

    The framework knows no particular service or action: ``handler_class`` overrides the
    configured handler, ``handlers`` adds built-in handlers by service name (see
    :func:`~seproxy.rpc.server.loader.load_handler`), and ``actions`` maps the action
    types beyond RPC/Connection to their servers (``{"FileTransfer": serve_transfer}``);
    a type without a server is refused in the proposal answer like an unknown one.
    """

    def __init__(self, cfg: Config, name: str, handler_class: type[RequestHandler] | None = None, *,
                 host: str | None = None, port: int | None = None, protocol: str | None = None,
                 handlers: Mapping[str, type[RequestHandler]] | None = None,
                 actions: Mapping[str, ActionServer] | None = None) -> None:
        self.cfg = cfg
        self.name = name.strip("/")
        self.section = cfg.service_section(self.name)
        self._handler_override = handler_class
        self._builtin_handlers = dict(handlers or {})
        self.actions: dict[str, ActionServer] = dict(actions or {})
        self.schema = schema.service_schema(self.name)
        self.protocol = (protocol or self.option("Protocol")).lower()
        self.bind_address = host if host is not None else self.option("BindAddress")
        self._port = int(port if port is not None else self.option("Port"))
        self.max_threads = self.option("MaxThreads")
        self.max_waiting = self.option("MaxWaitingPetitions")
        self.handshake_timeout = self.option("HandshakeTimeout")
        self.request_timeout = self.option("RequestTimeout")
        self.transfer_window_timeout = self.option("TransferWindowTimeout")
        self.session_idle_timeout = self.option("SessionIdleTimeout")
        self.max_sessions = self.option("MaxSessions")
        self.max_pending = self.option("MaxPendingConnections")
        self.max_pending_per_ip = self.option("MaxPendingPerIP")
        self.caps = ConnectionCaps(self.option("MaxConnectionsPerIP"), self.option("MaxConnectionsPerDN"))
        self.large_frames = FrameSlots(self.option("MaxLargeFrames"), self.option("LargeFrameSize"))
        self.intake: Intake | None = None
        self.watchdog: Watchdog | None = None
        #: the DIRAC release whose framework answers this service gives (``DIRACVersion``)
        self.compat = service_compat(cfg, self.section)
        self._encoding: str | None = self.option("Encoding") or None
        #: the connection-reuse extension; ``no`` makes the service refuse it like DIRAC does
        self.sessions_enabled = self.option("EnableSessions")
        #: the proposal types this service accepts (DIRAC's, minus those without a server)
        self.action_types = tuple(t for t in DIRAC_ACTION_TYPES if t in FRAMEWORK_ACTIONS or t in self.actions) \
            + ((SESSION_ACTION,) if self.sessions_enabled else ())
        self.handler_class: type[RequestHandler] | None = None
        self.context: ServiceContext | None = None
        self.listener: Any = None
        self._jobs: queue.Queue = queue.Queue(maxsize=self.max_waiting)
        self._rejects: queue.Queue = queue.Queue(maxsize=REJECTOR_QUEUE)
        self._parking: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._started = False
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._parked_count = 0

    # -- configuration ---------------------------------------------------------------------
    def option(self, name: str) -> Any:
        """Option ``name`` of the service section, typed and defaulted by ``seproxy.config.schema``."""
        return self.schema.value(self.cfg, name, self.section)

    def _thread_limit(self, action_type: str, name: str) -> int:
        return self.option(f"ThreadLimit/{action_type}/{name}")

    @property
    def encoding(self) -> str:
        """The encoding of the next answer: the ``Encoding`` option, else what the release
        of ``DIRACVersion`` sends (read from ``DIRAC_USE_JSON_ENCODE`` at every answer)."""
        return self._encoding or codec.default_encoding(self.compat.unset_encoding)  # type: ignore[arg-type]

    @property
    def port(self) -> int:
        return self.listener.port if self.listener is not None else self._port

    @property
    def url(self) -> str:
        return self.context.service_info["URL"] if self.context else self._build_url()

    def _build_url(self) -> str:
        configured = self.option("URL")
        if configured:
            return configured
        host = schema.value(self.cfg, "/DIRAC/Hostname") or self.bind_address or socket.getfqdn()
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{self.protocol}://{host}:{self.port}/{self.name}"

    # -- start -----------------------------------------------------------------------------
    def _load(self) -> tuple[type[RequestHandler], ModuleType | None, str]:
        if self._handler_override is not None:
            cls = self._handler_override
            return cls, sys.modules.get(cls.__module__), self.name
        return load_handler(self.cfg, self.name, self._builtin_handlers)

    def _initialize_handler(self) -> None:
        base, module, load_name = self._load()
        # one subclass per service: class-level state of two services never mixes
        cls = type(base.__name__, (base,), {"__module__": base.__module__, "__qualname__": base.__qualname__})
        valid_names = [self.name] + ([load_name] if load_name != self.name else [])
        registry = Registry(self.cfg)
        info = {
            "serviceName": self.name,
            "serviceSectionPath": self.section,
            "URL": self._build_url(),
            "messageSender": None,
            "validNames": valid_names,
            "csPaths": [self.cfg.service_section(n) for n in valid_names],
        }
        self.context = ServiceContext(
            cfg=self.cfg, service_info=info, connections=ConnectionRegistry(),
            limits=MethodLimits(self._thread_limit, concurrency=self.max_threads),
            auth=AuthManager(self.cfg, f"{self.section}/Authorization", registry,
                                                          defaults=self.schema.defaults_under("Authorization")),
            registry=registry, start_time=datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None),
            compat=self.compat,
        )
        from seproxy.rpc.server.broker import MessageBroker
        self.context.msg_broker = MessageBroker(self)
        info["messageSender"] = self.context.msg_broker.sender()
        cls._rh_initialize_class(self.context)
        for func in cls._rh_initializers(module):
            try:
                result = func(dict(info))
            except Exception as exc:
                log.exception("Exception while calling initialization function of %s", self.name)
                raise ConfigError(f"Exception while calling initialization function: {exc}") from exc
            if not isReturnStructure(result):
                raise ConfigError(f"Service initialization function {func} must return S_OK/S_ERROR")
            if not result["OK"]:
                raise ConfigError(f"Error while initializing {self.name}: {result['Message']}")
        self.handler_class = cls

    def start(self) -> Service:
        """Load and initialise the handler, listen, start the threads (raises on failure)."""
        if self._started:
            return self
        self.listener = transports.listen(self.protocol, self.bind_address, self._port, cfg=self.cfg,
                                          backlog=self.option("SocketBacklog"))
        try:
            self._initialize_handler()
        except BaseException:
            self.listener.close()
            raise
        self.context.service_info["URL"] = self._build_url()
        self._started = True
        metrics.watch_queue(self.name, self._jobs.qsize)
        self.watchdog = Watchdog(f"{self.name}:watchdog")
        self.intake = Intake(self._proposal_arrived, self._proposal_invalid,
                             deadline=self.handshake_timeout, max_pending=self.max_pending,
                             max_per_ip=self.max_pending_per_ip, max_proposal=PROPOSAL_MAX_SIZE,
                             name=self.name)
        self._spawn(self._accept_loop, "acceptor")
        self._spawn(self._reject_loop, "rejector")
        for index in range(self.max_threads):
            self._spawn(self._work_loop, f"worker-{index}")
        log.info("Service %s listening on %s (%d threads, %d waiting max)", self.name, self.url,
                 self.max_threads, self.max_waiting)
        return self

    def _spawn(self, target: Any, role: str) -> None:
        thread = threading.Thread(target=target, name=f"{self.name}:{role}", daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- accept loop -----------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _accept_loop(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.listener.fileno(), selectors.EVENT_READ, "listen")
        selector.register(self._wake_r.fileno(), selectors.EVENT_READ, "wake")
        parked: dict[int, tuple[Any, float]] = {}
        paused = False
        try:
            while not self._stopping.is_set():
                # when even the rejector is saturated, leave new clients in the kernel backlog
                if not paused and self._rejects.qsize() >= REJECTOR_QUEUE:
                    selector.unregister(self.listener.fileno())
                    paused = True
                    log.warning("Service %s: not accepting while %d rejections are pending", self.name,
                                self._rejects.qsize())
                elif paused and self._rejects.qsize() < REJECTOR_QUEUE // 2:
                    selector.register(self.listener.fileno(), selectors.EVENT_READ, "listen")
                    paused = False
                for key, _ in selector.select(timeout=0.05 if paused else 1.0):
                    if key.data == "listen":
                        self._accept_ready()
                    elif key.data == "wake":
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except OSError:
                            pass
                    else:
                        selector.unregister(key.fd)
                        session, _ = parked.pop(key.fd)
                        self._parked_count = len(parked)
                        self._resume_session(session)
                while True:
                    try:
                        session = self._parking.get_nowait()
                    except queue.Empty:
                        break
                    fd = session.transport.fileno()
                    parked[fd] = (session, time.monotonic())
                    selector.register(fd, selectors.EVENT_READ, session)
                self._parked_count = len(parked)
                self._expire_sessions(selector, parked)
        finally:
            for session, _ in parked.values():
                session.close()
            selector.close()
            self.listener.close()

    def _expire_sessions(self, selector: Any, parked: dict) -> None:
        now = time.monotonic()
        for fd, (session, since) in list(parked.items()):
            if now - since > self.session_idle_timeout or session.expired(now):
                selector.unregister(fd)
                del parked[fd]
                session.close()
        self._parked_count = len(parked)

    def _accept_ready(self) -> None:
        """Accept what the backlog holds (up to ACCEPT_BATCH): a burst of connections is
        taken in one go, so a client's connection does not wait behind it in the kernel."""
        for _ in range(ACCEPT_BATCH):
            try:
                transport = self.listener.accept(timeout=0)
            except SeproxyError as exc:
                log.debug("accept: %s", exc)
                return
            ip = transport.remote_address[0]
            if ip in self.context.registry.banned_ips():
                self.context.stats["banned"] += 1
                log.warning("Closing connection from banned IP %s", ip)
                transport.close()
                continue
            self.context.stats["accepted"] += 1  # before the hand-over: it may be served at once
            if not self.intake.add(transport):
                self.context.stats["accepted"] -= 1
                self.context.stats["rejected"] += 1

    def _proposal_arrived(self, transport: ServerConnection, payload: bytes) -> None:
        """From the intake: a whole proposal is there; a worker serves it (or we refuse)."""
        try:
            self._jobs.put_nowait((worker.serve_proposal, (transport, payload)))
        except queue.Full:
            self._reject(transport, worker.overloaded(self))

    def _proposal_invalid(self, transport: ServerConnection, error: Exception) -> None:
        self._reject(transport, worker.framework_error(INVALID_PROPOSAL), count=False)

    def _reject(self, transport: ServerConnection, answer: dict, count: bool = True) -> None:
        if count:
            self.context.stats["rejected"] += 1
            metrics.REJECTIONS.labels(self.name).inc()
            log.warning("Rejecting client %s due to throttling: %d requests waiting "
                        "(MaxWaitingPetitions=%d)", transport.id, self._jobs.qsize(), self.max_waiting)
        try:
            self._rejects.put_nowait((transport, answer))
        except queue.Full:
            transport.close()

    def _reject_loop(self) -> None:
        while True:
            item = self._rejects.get()
            if item is None:
                return
            transport, answer = item
            worker.reject(self, transport, answer, REJECT_TIMEOUT)

    # -- workers ---------------------------------------------------------------------------
    def _work_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            func, arg = job
            with self._busy_lock:
                self._busy += 1
            try:
                func(self, arg)
            except Exception:  # a worker never dies
                log.exception("Unexpected error while serving a connection")
            finally:
                with self._busy_lock:
                    self._busy -= 1

    # -- reuse sessions (seproxy.rpc.server.session) ----------------------------------------------
    def park_session(self, session: ReuseSession) -> None:
        """Hand an idle reuse session back to the acceptor until its next request."""
        if self._stopping.is_set():
            session.close()
            return
        self._parking.put(session)
        self._wake()

    def _resume_session(self, session: ReuseSession) -> None:
        try:
            self._jobs.put_nowait((worker.serve_session, session))
        except queue.Full:
            log.warning("Closing reuse session %s: %d requests waiting", session.transport.id, self._jobs.qsize())
            session.close()

    @property
    def sessions_available(self) -> bool:
        return self._parked_count < self.max_sessions and not self._stopping.is_set()

    # -- state -----------------------------------------------------------------------------
    @property
    def busy_workers(self) -> int:
        return self._busy

    @property
    def waiting(self) -> int:
        return self._jobs.qsize()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def is_idle(self) -> bool:
        return (self._busy == 0 and self._jobs.qsize() == 0 and self._rejects.qsize() == 0
                and (self.intake is None or self.intake.pending == 0))

    # -- stop ------------------------------------------------------------------------------
    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting; finish queued and running requests within ``timeout``; close."""
        if not self._started or self._stopping.is_set():
            return
        self._stopping.set()
        self._wake()
        deadline = time.monotonic() + timeout
        for _ in range(self.max_threads):
            self._put_until(self._jobs, None, deadline)
        self._put_until(self._rejects, None, deadline)
        if self.context and self.context.msg_broker:
            self.context.msg_broker.close()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for pending in (self._jobs, self._rejects):  # never served: close them
            while True:
                try:
                    job = pending.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    item = job[1] if pending is self._jobs else job[0]
                    (item[0] if isinstance(item, tuple) else item).close()
        self.context.connections.close_all()
        if self.intake is not None:
            self.intake.close()
        if self.watchdog is not None:
            self.watchdog.stop()
        self._wake_r.close()
        self._wake_w.close()
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("Service %s stopped with threads still running: %s", self.name, alive)
        log.info("Service %s stopped", self.name)

    @staticmethod
    def _put_until(target: queue.Queue, item: Any, deadline: float) -> None:
        while True:
            try:
                target.put(item, timeout=max(0.01, deadline - time.monotonic()))
                return
            except queue.Full:
                if time.monotonic() >= deadline:
                    return

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
