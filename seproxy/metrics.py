"""Prometheus metrics of a seproxy process: one registry, the metrics, small hooks.

Ground floor (imports nothing from seproxy), so every layer records into it with a
one-line call. The registry is exported by :func:`serve` on its own port (the
StorageElementProxy's ``MetricsPort``); nothing listens unless asked.

=============================================  ==========================================
metric                                         labels
=============================================  ==========================================
``seproxy_calls_total``                        ``method`` (``RPC/uploadFile`` ...), ``result``
``seproxy_call_duration_seconds`` (histogram)  ``method``
``seproxy_transfer_bytes_total``               ``direction`` (in/out), ``encoding``
``seproxy_transfers_in_flight``                ``direction``
``seproxy_pool_queue_depth``                   ``service``
``seproxy_pool_rejections_total``              ``service``
``seproxy_tls_handshakes_total``               ``result`` (ok/failed)
``seproxy_tls_handshake_failures_total``       ``reason``
``seproxy_cache_bytes``, ``seproxy_cache_files``  -
``seproxy_cache_evictions_total``              ``reason`` (watermark/stale)
``seproxy_http_downloads_total``               ``status``
``seproxy_build_info``                         ``version``, ``dirac_version``
=============================================  ==========================================
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily

REGISTRY = CollectorRegistry(auto_describe=True)

BUILD = Info("seproxy_build", "seproxy's version and the DIRAC release it answers as",
             registry=REGISTRY)

CALLS = Counter("seproxy_calls", "Calls served, by method and result (ok or error)",
                ["method", "result"], registry=REGISTRY)
CALL_SECONDS = Histogram("seproxy_call_duration_seconds", "Duration of served calls",
                         ["method"], registry=REGISTRY,
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                                  60, 120, 300, 600))
TRANSFER_BYTES = Counter("seproxy_transfer_bytes", "File bytes moved by transfers, by "
                         "direction (in: from clients, out: to clients) and encoding",
                         ["direction", "encoding"], registry=REGISTRY)
IN_FLIGHT = Gauge("seproxy_transfers_in_flight", "Transfers running now", ["direction"],
                  registry=REGISTRY)
REJECTIONS = Counter("seproxy_pool_rejections", "Connections refused because the worker "
                     "queue was full (MaxWaitingPetitions)", ["service"], registry=REGISTRY)
HANDSHAKES = Counter("seproxy_tls_handshakes", "TLS handshakes of served connections",
                     ["result"], registry=REGISTRY)
HANDSHAKE_FAILURES = Counter("seproxy_tls_handshake_failures", "Failed TLS handshakes by reason",
                             ["reason"], registry=REGISTRY)
EVICTIONS = Counter("seproxy_cache_evictions", "Files removed from the staging cache, by "
                    "reason (watermark: LRU above CacheHighWatermark; stale: never fetched)",
                    ["reason"], registry=REGISTRY)
HTTP_DOWNLOADS = Counter("seproxy_http_downloads", "HTTP download requests by status",
                         ["status"], registry=REGISTRY)


class _Sampled:
    """Gauges read when scraped: queue depths and cache usage (callbacks by name)."""

    def __init__(self) -> None:
        self.queues: dict[str, Callable[[], int]] = {}
        self.cache: Callable[[], tuple[int, int]] | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            queues, cache = dict(self.queues), self.cache
        depth = GaugeMetricFamily("seproxy_pool_queue_depth", "Connections waiting for a "
                                  "worker", labels=["service"])
        for service, size in queues.items():
            with contextlib.suppress(Exception):
                depth.add_metric([service], size())
        yield depth
        used = (0, 0)
        if cache is not None:
            with contextlib.suppress(Exception):
                used = cache()
        yield GaugeMetricFamily("seproxy_cache_bytes", "Bytes held in the staging cache",
                                value=used[0])
        yield GaugeMetricFamily("seproxy_cache_files", "Files held in the staging cache",
                                value=used[1])


_sampled = _Sampled()
REGISTRY.register(_sampled)


def watch_queue(service: str, size: Callable[[], int]) -> None:
    with _sampled._lock:
        _sampled.queues[service] = size


def watch_cache(usage: Callable[[], tuple[int, int]] | None) -> None:
    """``usage() -> (bytes, files)`` of the staging cache (None: stop watching)."""
    with _sampled._lock:
        _sampled.cache = usage


def observe_call(method: str, ok: bool, seconds: float) -> None:
    CALLS.labels(method, "ok" if ok else "error").inc()
    CALL_SECONDS.labels(method).observe(seconds)


@contextlib.contextmanager
def transfer(direction: str) -> Iterator[None]:
    """A transfer in flight (``direction``: in or out)."""
    gauge = IN_FLIGHT.labels(direction)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def transferred(direction: str, encoding: str | None, count: int) -> None:
    if count > 0:
        TRANSFER_BYTES.labels(direction, encoding or "json").inc(count)


_REASONS = (("expired", "certificate expired"), ("unknown ca", "unknown CA"),
            ("certificate verify failed", "verify failed"), ("no certificate", "no certificate"),
            ("timed out", "timeout"), ("timeout", "timeout"), ("wrong version", "protocol"),
            ("unsupported protocol", "protocol"), ("http request", "not TLS"),
            ("closed", "peer closed"), ("reset", "peer closed"), ("eof", "peer closed"))


def handshake(error: BaseException | None) -> None:
    """Count one server-side TLS handshake (``error``: why it failed)."""
    if error is None:
        HANDSHAKES.labels("ok").inc()
        return
    HANDSHAKES.labels("failed").inc()
    text = str(error).lower()
    reason = next((name for marker, name in _REASONS if marker in text), "other")
    HANDSHAKE_FAILURES.labels(reason).inc()


def serve(port: int, host: str = "127.0.0.1") -> tuple[Any, int]:
    """Export the registry over HTTP (``/metrics``) on ``host:port`` (0: any free port);
    returns the server (``.shutdown()``) and its port."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return server, server.server_address[1]


TRANSFER_ACTIONS = frozenset({"FromClient", "ToClient", "BulkFromClient", "BulkToClient",
                              "ListBulk"})


def method_label(action_type: str, name: str, handler: Any) -> str:
    """``RPC/uploadFile``; a name the handler does not serve counts as ``<type>/other``,
    so clients cannot grow the label set."""
    known = hasattr(handler, f"export_{name}") if action_type == "RPC" else name in TRANSFER_ACTIONS
    return f"{action_type}/{name if known else 'other'}"
