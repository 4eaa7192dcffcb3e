"""The transport interface: one connection to one peer, carrying DISET frames.

``Transport`` owns a non-blocking socket and does all framing work itself;
a backend (plain TCP, pyOpenSSL, M2Crypto) only supplies five primitive
operations (:meth:`_recv_into`, :meth:`_send`, :meth:`_wait_fd`, the
handshake, :meth:`_shutdown`).  Every wait goes through ``poll`` with a
deadline, so each read and write has a bounded outcome.

Frame on the wire (PROTOCOL.md 2.1/2.2)::

    +---------------+----------------+-----+------------------+
    | "dka" (opt.)  | length (ASCII) | ":" | payload (length) |
    +---------------+----------------+-----+------------------+

* sends go out as ``memoryview`` slices of at most 1 MiB; small parts of a frame
  are coalesced into one write (one TLS record, one TCP segment);
* receives go into one reusable buffer and are fed to
  :class:`seproxy.rpc.wire.framing.FrameParser`; once a header announces a large
  body (``DIRECT_MIN``..``DIRECT_MAX`` bytes), the rest of that body is read
  straight into a second reusable buffer (``receive_frame_view`` hands out a
  ``memoryview`` of it, ``receive_frame`` one ``bytes`` copy);
* a keep-alive PING is answered at once with a PONG carrying the same ``id``;
  a transport created with a ``keepalive_lapse`` (clients only) sends a PING
  itself when the connection has been idle that long while it waits for data.

Error texts follow DIRAC's reader/writer messages (PROTOCOL.md 2.3/2.4).
"""

from __future__ import annotations

import hashlib
import select
import socket
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

from seproxy.errors import PeerClosed, ProtocolError, RemoteProtocolError, TransportError
from seproxy.rpc.wire import codec
from seproxy.rpc.wire.framing import (
    FrameParser,
    KeepAlive,
    frame_header,
    keepalive_payload,
    parse_keepalive,
)
from seproxy.rpc.wire.limits import DEFAULT_MAX_FRAME_SIZE

if TYPE_CHECKING:
    from seproxy.security.x509 import X509Chain

#: PROTOCOL.md 2.5
DEFAULT_CONNECTION_TIMEOUT = 10.0
DEFAULT_RPC_TIMEOUT = 600.0
WRITE_SLICE = 1024 * 1024
READ_SIZE = 256 * 1024
#: Frame parts smaller than this are copied together into one write.
COALESCE_LIMIT = 64 * 1024
#: Frame bodies of at least this many bytes (and at most DIRECT_MAX) are read straight
#: into the transport's own body buffer once the header is parsed (no parser copies).
DIRECT_MIN = 64 * 1024
#: Larger bodies go through the parser: no up-front allocation on a peer's word alone.
DIRECT_MAX = 24 * 1024 * 1024

#: Backend results meaning "would block, wait for the socket to be readable/writable".
WANT_READ = -1
WANT_WRITE = -2

Buffer = bytes | bytearray | memoryview


def _as_views(payload: Buffer | Sequence[Buffer]) -> list[memoryview]:
    if isinstance(payload, (bytes, bytearray, memoryview)):
        payload = (payload,)
    views = []
    for part in payload:
        view = part if isinstance(part, memoryview) else memoryview(part)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if view.nbytes:
            views.append(view)
    return views


def endpoint(address: tuple) -> str:
    """``ip:port`` text of a socket address (IPv6 addresses keep their plain form)."""
    return f"{address[0]}:{address[1]}"


class Transport:
    """One connection to one peer (ARCHITECTURE.md, seproxy.rpc.transport)."""

    #: Receive buffer size (TLS reads return at most one 16 KiB record anyway).
    read_size = READ_SIZE
    #: Reader/writer message prefixes; TLS backends use DIRAC's ``_read``/``_write`` texts.
    _READ_ERROR = "Exception while reading from peer"
    _WRITE_ERROR = "Exception while sending to peer"

    def __init__(self, sock: socket.socket, *, server_side: bool, keepalive_lapse: float = 0.0,
                 max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
                 timeout: float | None = DEFAULT_RPC_TIMEOUT) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._fd = sock.fileno()
        self.server_side = server_side
        self.local_address: tuple[str, int] = sock.getsockname()[:2]
        self.remote_address: tuple[str, int] = sock.getpeername()[:2]
        self.id = f"{endpoint(self.local_address)}->{endpoint(self.remote_address)}"
        self._timeout = timeout
        self._parser = FrameParser(max_frame_size=max_frame_size)
        self._rbuf = bytearray(self.read_size)
        self._rview = memoryview(self._rbuf)
        self._body: memoryview | None = None   # large-frame body buffer (grown, never shrunk)
        self._send_lock = threading.Lock()
        self._io_lock = threading.RLock()  # one backend call at a time (TLS objects are not thread-safe)
        self._closed = False
        self.keepalive_lapse = float(keepalive_lapse or 0.0)
        self._last_activity = time.monotonic()
        self._waiting_pong = False
        self._ping_count = 0
        self.frames_received = 0
        #: a small frame was just sent: its answer cannot be there yet, so the next read
        #: waits for the socket first (no read attempt that would only say "not yet")
        self._answer_pending = False
        self._read_poller: Any = None
        #: frames may flow on the per-frame fast paths: open and fully set up (a TLS
        #: transport sets it once its handshake and session bookkeeping are done)
        self._ready = True

    # -- backend primitives -------------------------------------------------------------
    def _recv_into(self, view: memoryview) -> int:
        """Bytes read into ``view`` (> 0), 0 at end of stream, or WANT_READ / WANT_WRITE."""
        raise NotImplementedError

    def _send(self, view: memoryview) -> int:
        """Bytes written from ``view`` (> 0), or WANT_READ / WANT_WRITE; 0 means closed."""
        raise NotImplementedError

    def _shutdown(self) -> None:
        """Best-effort orderly shutdown before the socket is closed (never blocks)."""

    #: False when :meth:`_buffered` tells exactly what the backend holds: a read right
    #: after a small frame was sent then waits for the socket first.
    read_before_wait = True

    def _buffered(self) -> bool:
        """True when the backend holds received bytes :meth:`_recv_into` has not
        returned yet (a poll on the socket would not see them)."""
        return False

    #: bytes a backend took from a frame but has not written to the socket yet (see
    #: :meth:`expect_early_answers`); every send pushes them out before it returns
    _unsent: memoryview | None = None

    def _flush(self) -> int:
        """Write :attr:`_unsent`: 1 once nothing is left, else WANT_WRITE, or 0 (closed)."""
        return 1

    # -- public interface ---------------------------------------------------------------
    def fileno(self) -> int:
        return self._fd

    def handshake(self, timeout: float = DEFAULT_CONNECTION_TIMEOUT) -> None:
        """Server side: finish the connection set-up (TLS handshake). Nothing for ``dip``."""

    def peer_credentials(self) -> dict:
        """The credential dict of the peer (PROTOCOL.md 8.1); ``{}`` without TLS."""
        return {}

    def peer_chain(self) -> X509Chain | None:
        return None

    def settimeout(self, seconds: float | None) -> None:
        """Bound for each wait for the peer (None: no bound)."""
        self._timeout = seconds if seconds is None or seconds > 0 else None

    def gettimeout(self) -> float | None:
        return self._timeout

    def expect_early_answers(self, enabled: bool) -> None:
        """While ``enabled``, the peer may answer and close in the middle of a frame we
        write (a DIRAC receiver refusing a stop-and-wait stream does): the write then
        fails with :class:`PeerClosed` and the answer must still be readable.

        A plain socket keeps that answer readable by itself; a TLS backend whose
        connection object refuses every read after a failed write (OpenSSL 4.0)
        writes the records to the socket itself while enabled.
        """

    def wait_readable(self, seconds: float) -> bool:
        """True if data arrives (or is already buffered) within ``seconds``."""
        if not self._parser.at_boundary or self._buffered():
            return True
        if (self._read_poller or self._new_read_poller()).poll(max(0, int(seconds * 1000))):
            self._answer_pending = False  # what the next read waits for is there
            return True
        return False

    def send_frame(self, payload: Buffer | Sequence[Buffer], *, keepalive: bool = False) -> None:
        if type(payload) is bytes and len(payload) < COALESCE_LIMIT and not keepalive:
            # the common small message: header and payload joined, one write
            data = b"%d:%s" % (len(payload), payload)
            with self._send_lock:
                if not self._ready:
                    self._check_sendable()
                with self._io_lock:
                    sent = self._send(memoryview(data))
                if sent != len(data) or self._unsent:  # partial, would block, closed, error,
                    # or records still to write (early-answer mode): the full loop
                    self._send_all(memoryview(data)[max(sent, 0):])
                self._last_activity = time.monotonic()
            self._answer_pending = True
            return
        views = _as_views(payload)
        header = frame_header(sum(v.nbytes for v in views), keepalive)
        with self._send_lock:
            self._send_views([memoryview(header), *views])
            self._last_activity = time.monotonic()


    def send_data(self, value: Any, encoding: str | None = None) -> None:
        self.send_frame(codec.encode(value, encoding))

    def receive_frame(self, max_size: int | None = None) -> bytes:
        """The next data frame's payload; keep-alives in between are handled here.

        ``max_size`` follows DIRAC's reader: the bytes read after the first read of
        this call may not exceed it while the frame is incomplete.
        """
        if max_size is None and self._ready and self._parser.at_boundary:
            # the usual answer or request: one small frame, read whole in one go
            payload = self._read_one_frame()
            if payload is not None:
                self.frames_received += 1
                return payload
        view = self.receive_frame_view(max_size)
        return view.obj if isinstance(view.obj, bytes) else bytes(view)

    def receive_frame_view(self, max_size: int | None = None) -> memoryview:
        """Like :meth:`receive_frame`, without copying a large payload.

        A large frame's view points into a buffer this transport reuses: it is valid
        until the next receive call on this transport (copy what must live longer).
        """
        parser = self._parser
        if parser.at_boundary:
            frame = self._read_one_frame()
            if frame is not None:
                self.frames_received += 1
                return memoryview(frame)
            after_first = parser.buffered  # what the first read brought (now in the parser)
        else:
            after_first = -1
        while True:
            event = parser.next_event()
            if event is None:
                if max_size is not None and after_first > max_size:
                    raise RemoteProtocolError(f"Read limit exceeded ({max_size} chars)")
                length = parser.frame_length
                if (length is not None and DIRECT_MIN <= length <= DIRECT_MAX
                        and not parser.frame_is_keepalive):
                    view = self._receive_body(length, max_size, max(after_first, 0))
                    self.frames_received += 1
                    return view
                count = self._read_some(self._rview)
                parser.feed(self._rview[:count])
                after_first = count if after_first < 0 else after_first + count
            elif isinstance(event, KeepAlive):
                self._keepalive(event.payload)
            else:
                self.frames_received += 1
                return memoryview(event.payload)

    def _read_one_frame(self) -> bytes | None:
        """Fast path at a frame boundary: one read; if it brought exactly one complete
        small ordinary frame, its payload. Otherwise the bytes read go to the parser
        (which checks them as usual) and None is returned."""
        count = self._read_some(self._rview)
        payload = self._parser.whole_frame(self._rbuf, count, DIRECT_MIN)
        if payload is None:
            self._parser.feed(self._rview[:count])
        return payload

    def take_body_buffer(self, replacement: bytearray | None = None) -> bytearray | None:
        """Take the large-frame body buffer; later large frames go to ``replacement``.

        A view that :meth:`receive_frame_view` returned into the taken buffer stays
        valid (the transport no longer reuses it), so a caller can hand it to another
        thread and give it back later as a ``replacement``. ``None``: a new buffer is
        allocated when needed. Returns ``None`` when there was no buffer yet.
        """
        body = self._body
        self._body = memoryview(replacement) if replacement is not None else None
        return body.obj if body is not None else None  # type: ignore[return-value]

    def _receive_body(self, length: int, max_size: int | None, after_first: int) -> memoryview:
        """Read the rest of a large frame body straight into the body buffer."""
        if max_size is not None and after_first + length - self._parser.buffered > max_size:
            # one read may bring the whole rest: refuse a frame that cannot end within
            # the limit before reading (or allocating) anything for it
            raise RemoteProtocolError(f"Read limit exceeded ({max_size} chars)")
        body = self._body
        if body is None or body.nbytes < length:
            body = self._body = memoryview(bytearray(length))
        got = self._parser.detach_body(body)
        self._fill_body(body, got, length, max_size, after_first)
        return body[:length]

    def _fill_body(self, body: memoryview, got: int, length: int, max_size: int | None,
                   after_first: int) -> None:
        """Read ``body[got:length]``; a backend may override this with a leaner loop."""
        while got < length:
            if max_size is not None and after_first > max_size:
                raise RemoteProtocolError(f"Read limit exceeded ({max_size} chars)")
            count = self._read_some(body[got:length])
            got += count
            after_first += count

    def receive_frame_nowait(self, max_size: int | None = None) -> bytes | None:
        """A whole data frame if what can be read *now* completes one, else None; never
        waits (the caller polls ``fileno()``). Keep-alives are answered; ``PeerClosed`` at
        end of stream; ``ProtocolError`` once the frame cannot fit ``max_size`` bytes."""
        parser = self._parser
        while True:
            event = parser.next_event()
            if isinstance(event, KeepAlive):
                self._keepalive(event.payload)
                continue
            if event is not None:
                self.frames_received += 1
                return event.payload
            length = parser.frame_length
            if max_size is not None and (parser.buffered > max_size + 32
                                         or (length is not None and length > max_size)):
                raise ProtocolError(f"Read limit exceeded ({max_size} chars)")
            with self._io_lock:
                count = self._recv_into(self._rview)
            if count == 0:
                raise PeerClosed("Peer closed connection")
            if count < 0:
                return None
            self._last_activity = time.monotonic()
            parser.feed(self._rview[:count])

    def next_frame_length(self) -> int:
        """Wait (as ``receive_frame`` does) until the header of the next data frame has
        arrived and return its body length; the body is not read (keep-alives before it
        are answered). Lets a server decide on a large frame before buffering it."""
        parser = self._parser
        while True:
            length = parser.peek_length()
            if length is not None:
                if not parser.frame_is_keepalive:
                    return length
                event = parser.next_event()
                if isinstance(event, KeepAlive):
                    self._keepalive(event.payload)
                    continue
            count = self._read_some(self._rview)
            parser.feed(self._rview[:count])

    def interrupt(self) -> None:
        """Wake a thread blocked on this connection, from any thread: the socket is shut
        down (its reads end as "Peer closed connection"), not closed - its owner closes it."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def receive_data(self, max_size: int | None = None) -> Any:
        payload = self.receive_frame(max_size)
        try:
            return codec.decode(payload)
        except ProtocolError as exc:
            raise RemoteProtocolError(f"Could not decode received data: {exc}") from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ready = False
        try:
            with self._io_lock:
                self._shutdown()
        except Exception:  # noqa: BLE001 - closing must not fail
            pass
        try:
            self._sock.close()
        except OSError:
            pass

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"

    # -- keep-alives --------------------------------------------------------------------
    def _keepalive(self, payload: bytes) -> None:
        try:
            message, encoding = codec.decode_with_codec(payload)
        except ProtocolError as exc:
            raise RemoteProtocolError(f"Could not decode received data: {exc}") from exc
        ka_id, is_ping = parse_keepalive(message)
        if is_ping:  # answer in the encoding the ping came in
            self.send_frame(keepalive_payload(ka_id, False, encoding), keepalive=True)
        else:
            self._waiting_pong = False

    def _send_ping(self) -> None:
        prefix = hashlib.md5((str(self.remote_address) + str(self.server_side)).encode(),
                             usedforsecurity=False).hexdigest()
        ka_id = f"{prefix}{self._ping_count}"
        self._ping_count += 1
        self._waiting_pong = True
        self.send_frame(keepalive_payload(ka_id, True), keepalive=True)

    # -- bounded I/O loops --------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("Transport is closed")

    def _check_sendable(self) -> None:
        """Raise unless frames may be written now (both send paths check here)."""
        self._check_open()

    def _wait_fd(self, want: int, deadline: float | None, what: str) -> bool:
        """Wait until the socket is ready for ``want``; False when the deadline passed."""
        if want == WANT_READ and what == "read":  # reads: one reader at a time, one poller
            poller = self._read_poller or self._new_read_poller()
        else:
            poller = select.poll()
            poller.register(self._fd, select.POLLIN if want == WANT_READ else select.POLLOUT)
        while True:
            if deadline is None:
                wait_ms = None
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                wait_ms = max(1, int(remaining * 1000))
            try:
                if poller.poll(wait_ms):
                    return True
            except InterruptedError:  # pragma: no cover - PEP 475 retries anyway
                continue

    def _new_read_poller(self) -> Any:
        poller = self._read_poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        return poller

    def _deadline(self) -> float | None:
        return None if self._timeout is None else time.monotonic() + self._timeout

    def _read_some(self, view: memoryview) -> int:
        """Read at least one byte into ``view``, sending pings while idle."""
        if self._closed:
            raise TransportError("Transport is closed")
        if self._answer_pending:
            self._answer_pending = False
            if not self.read_before_wait and not self._buffered():
                if self._timeout is None:
                    return self._read_waiting(view, WANT_READ)
                # the usual wait for an answer: one poll; the deadline loop only when
                # it comes back empty (then a keep-alive ping may be due, or time is up)
                now = time.monotonic()
                deadline = wait_until = now + self._timeout
                if self.keepalive_lapse and not self._waiting_pong:
                    wait_until = min(deadline, self._last_activity + self.keepalive_lapse)
                poller = self._read_poller or self._new_read_poller()
                if not poller.poll(max(1, int((wait_until - now) * 1000))):
                    return self._read_waiting(view, WANT_READ, deadline)
        with self._io_lock:
            count = self._recv_into(view)
        if count > 0:
            self._last_activity = time.monotonic()
            return count
        return self._read_waiting(view, count)

    def _read_waiting(self, view: memoryview, count: int, deadline: float | None = None) -> int:
        """``_read_some`` after a first attempt that returned ``count`` (nothing read);
        ``deadline``: when the wait began earlier (default: timeout from now)."""
        if deadline is None:
            deadline = self._deadline()
        while True:
            if count > 0:
                self._last_activity = time.monotonic()
                return count
            if count == 0:
                raise PeerClosed("Peer closed connection")
            wait_until = deadline
            ping_due = None
            if self.keepalive_lapse > 0 and not self._waiting_pong:
                ping_due = self._last_activity + self.keepalive_lapse
                if wait_until is None or ping_due < wait_until:
                    wait_until = ping_due
            if not self._wait_fd(count, wait_until, "read"):
                if ping_due is not None and time.monotonic() >= ping_due:
                    self._send_ping()
                else:
                    raise TransportError("Socket read timeout exceeded")
            with self._io_lock:
                count = self._recv_into(view)

    def _send_all(self, view: memoryview) -> None:
        deadline = self._deadline()
        while view or self._unsent:
            with self._io_lock:
                sent = self._send(view[:WRITE_SLICE]) if view else self._flush()
            if sent > 0:
                view = view[sent:]
                deadline = self._deadline()
            elif sent == 0:
                raise PeerClosed("Connection closed by peer")
            elif sent in (WANT_READ, WANT_WRITE):
                if not self._wait_fd(sent, deadline, "write"):
                    raise TransportError("Socket write timeout exceeded")
            else:
                raise TransportError("Unknown unrecoverable error from socket while sending data")

    def _send_views(self, views: list[memoryview]) -> None:
        """Write all views in order; small neighbours are joined into one write."""
        self._check_sendable()
        pending = bytearray()
        for view in views:
            if view.nbytes < COALESCE_LIMIT:
                pending += view
                if len(pending) < COALESCE_LIMIT:
                    continue
                view = memoryview(pending)
                pending = bytearray()
            elif pending:
                # top up the small part so that the first write is a full one
                take = COALESCE_LIMIT - len(pending)
                pending += view[:take]
                self._send_all(memoryview(pending))
                pending = bytearray()
                view = view[take:]
            self._send_all(view)
        if pending:
            self._send_all(memoryview(pending))


class Listener:
    """A listening socket that hands out backend transports (handshake not yet done)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.port: int = sock.getsockname()[1]
        self.address = sock.getsockname()[:2]
        self._closed = False

    def fileno(self) -> int:
        return self._sock.fileno()

    def accept(self, timeout: float | None = None) -> Transport:
        """Wait for the next connection (``timeout``: TransportError when none came)."""
        if timeout is not None:
            ready, _, _ = select.select([self._sock], [], [], timeout)
            if not ready:
                raise TransportError("No connection to accept within the timeout")
        try:
            sock, _ = self._sock.accept()
        except OSError as exc:
            if self._closed:
                raise TransportError("Listener is closed") from exc
            raise TransportError(f"Error accepting connection: {exc}") from exc
        try:
            configure_socket(sock)
            return self._wrap(sock)
        except OSError as exc:  # e.g. the peer reset the connection already
            sock.close()
            raise TransportError(f"Error accepting connection: {exc}") from exc
        except BaseException:
            sock.close()
            raise

    def _wrap(self, sock: socket.socket) -> Transport:
        raise NotImplementedError

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:  # wakes up a thread blocked in accept()
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def configure_socket(sock: socket.socket) -> None:
    """Options both ends set on a connected socket (keep-alive; no Nagle delay)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def listening_socket(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A bound, listening TCP socket; ``host`` "" means all addresses (dual stack if possible)."""
    backlog = max(128, backlog)
    if not host:
        if socket.has_dualstack_ipv6():
            return socket.create_server(("", port), family=socket.AF_INET6, backlog=backlog,
                                        reuse_port=False, dualstack_ipv6=True)
        return socket.create_server(("", port), backlog=backlog)
    last_error: OSError | None = None
    for family, _, _, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                       flags=socket.AI_PASSIVE):
        try:
            return socket.create_server(address, family=family, backlog=backlog)
        except OSError as exc:
            last_error = exc
    raise TransportError(f"Cannot listen on {host}:{port}: {last_error}")


def connected_socket(host: str, port: int, timeout: float) -> socket.socket:
    """TCP connection to ``host:port``, trying every resolved address (IPv6 and IPv4)."""
    deadline = time.monotonic() + timeout
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TransportError(f"Cannot resolve {host}: {exc}") from exc
    errors = []
    for family, kind, proto, _, address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            errors.append("timeout")
            break
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(remaining)
            sock.connect(address)
            configure_socket(sock)
            return sock
        except OSError as exc:
            sock.close()
            errors.append(f"{endpoint(address)}: {exc}")
    raise TransportError(f"Cannot connect to {host}:{port}: {'; '.join(errors)}")
