"""The state one StorageElementProxy service owns: cache, HTTP thread, catalogue, pools.

:class:`ProxyState` reads the service's options once (``BasePath``, ``HttpAccess``,
``MaxFileSize``, ``CallTimeout`` ...), owns the cache area, the state database
(:mod:`seproxy.staging.db`: the replica catalogue, single-use key claims), the signed
HTTP key register and its purger, the credential source and the thread pool that runs
storage calls under DIRAC's time limits. The handler
(:mod:`seproxy.handler.storage_element_proxy`) holds one per service.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any, Protocol

from seproxy import metrics
from seproxy.config import Config, Registry, schema
from seproxy.config.schema import STORAGE_ELEMENT_PROXY
from seproxy.errors import ConfigError, SeproxyError
from seproxy.handler import catalog
from seproxy.handler.credentials import CredentialSource
from seproxy.handler.instance import InstanceLock
from seproxy.returnvalues import S_ERROR
from seproxy.staging import db
from seproxy.staging.cache import CacheArea
from seproxy.staging.keyregister import Claims, DatabaseClaims, FileClaims, KeyLookup, SignedKeyRegister
from seproxy.staging.keys import KeySigner
from seproxy.staging.namespace import check_name

log = logging.getLogger("seproxy.handler.StorageElementProxy")


class HttpServer(Protocol):
    """What the handler needs of the HTTP front it starts (``seproxy.http.server.HttpThread``)."""

    port: int
    scheme: str

    def stop(self) -> None: ...


class HttpServerFactory(Protocol):
    """Starts the HTTP front serving ``path`` from the key ``register`` (bound on return)."""

    def __call__(self, port: int, path: str, *, register: KeyLookup, host: str,
                 ssl_context: ssl.SSLContext | None, multi_use: bool, max_connections: int,
                 purge_interval: float, header_timeout: float, max_pending: int,
                 max_pending_per_ip: int) -> HttpServer: ...


class ProxyState:
    """Everything one StorageElementProxy service owns (cache, HTTP, catalogue, ...)."""

    def __init__(self, cfg: Config, section: str, http_server: HttpServerFactory | None = None) -> None:
        self.cfg = cfg
        self.section = section
        self._http_server = http_server
        base = self.option("BasePath")
        if not base:
            raise ConfigError("Failed to get the base path")
        self.http_flag = self.option("HttpAccess")
        self.instance = check_name(self.option("InstanceName") or socket.gethostname(), "InstanceName")
        self.cache = CacheArea(base, http_cache=self.option("HttpCache") or None,
                               high_watermark=self.option("CacheHighWatermark"),
                               low_watermark=self.option("CacheLowWatermark"),
                               instance=self.instance)
        self.base_path = str(self.cache.base)
        # before anything under BasePath is removed: refuses a second running instance
        self.instance_lock = InstanceLock(self.cache.base, self.cache.instance)
        try:
            self._setup(cfg)
        except BaseException:
            self.instance_lock.release()
            raise

    def _setup(self, cfg: Config) -> None:
        self.max_file_size = self.option("MaxFileSize")
        self.min_free = self.option("MinFreeSpace")
        self._space_lock = threading.Lock()
        self._reserved = 0  # bytes announced by the uploads in progress
        self.call_timeout = self.option("CallTimeout")
        self.transfer_timeout = self.option("TransferTimeout")
        self.key_lifetime = self.option("HttpKeyLifetime")
        self.registry = Registry(cfg)
        # the shared state: replica catalogue and HTTP key claims in one database
        catalogue_file = self.option("CatalogueFile") or os.path.join(self.base_path, "catalogue.sqlite")
        self.store = db.StateStore(self.option("Database") or db.sqlite_url(catalogue_file))
        self.catalogue = catalog.DatabaseCatalogue(self.store)
        # signed HTTP keys: any instance with the same secret and HTTP cache serves them
        claims: Claims = (DatabaseClaims(self.store) if self.store.shared
                          else FileClaims(self.cache.http_root / ".claims"))
        self.register = SignedKeyRegister(
            KeySigner(self.option("HttpKeySecretFile") or os.path.join(self.base_path, "http-key.secret")),
            claims, self.cache, self.instance, lifetime=self.key_lifetime,
            claim_hold=self.option("HttpClaimTimeout"))
        self.purge_interval = self.option("HttpPurgeInterval")
        #: staged getFile/putFile copies nobody fetched are removed after this many seconds
        self.staged_lifetime = self.option("StagedFileLifetime")
        self._stop_purge = threading.Event()
        self.metrics_server: Any = None
        self.metrics_url = ""
        self._stale_purger: threading.Thread | None = None
        #: set once the start-up removal of storage-element orphans is done (or skipped)
        self.orphans_cleaned = threading.Event()
        self.credentials = self._credential_source()
        self.http_thread: HttpServer | None = None
        self.http_url_base = ""
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.option("StorageThreads") or max(2, self.option("MaxThreads")),
            thread_name_prefix="seproxy-storage")

    def option(self, name: str) -> Any:
        """Option ``name`` of the service section, typed and defaulted by ``seproxy.config.schema``."""
        return STORAGE_ELEMENT_PROXY.value(self.cfg, name, self.section)

    @property
    def fallback_ses(self) -> list[str]:
        """``CatalogueFallbackSEs``, else every configured SE - read at each call, so SEs
        added by a configuration refresh are asked too."""
        return list(self.option("CatalogueFallbackSEs") or self.cfg.getSections("/Resources/StorageElements"))

    def finish_startup(self, url: str = "") -> None:
        """Once every port is bound: record the lock holder, clean up what a previous run
        of this instance left (only the first holder in this process), start the purgers."""
        self.instance_lock.record(url)
        if self.instance_lock.first:
            self.cache.clean_startup()
        if self.instance_lock.first and self.option("StorageOrphanCleanup"):
            threading.Thread(target=self._clean_storage_orphans, name="seproxy-orphan-cleanup",
                             daemon=True).start()
        else:
            self.orphans_cleaned.set()
        self._start_metrics()
        interval = self.purge_interval
        if interval > 0:  # also without HTTP: stagings expire
            self.register.start_purger(interval)
            if self.staged_lifetime > 0:
                self._stale_purger = threading.Thread(
                    target=self._purge_stale_loop, args=(interval,), daemon=True,
                    name="seproxy-staged-purger")
                self._stale_purger.start()

    def _start_metrics(self) -> None:
        """``MetricsPort`` (empty: off; 0: any free port) on ``MetricsHost`` (127.0.0.1)."""
        port = self.option("MetricsPort")
        if port is None:
            return
        host = self.option("MetricsHost")
        try:
            self.metrics_server, port = metrics.serve(int(port), host)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"Cannot serve metrics on {host}:{port}: {exc}") from exc
        metrics.watch_cache(self.cache.usage_and_count)
        from seproxy import __version__
        from seproxy.rpc.version import DIRAC_VERSION
        metrics.BUILD.info({"version": __version__, "dirac_version": DIRAC_VERSION})
        self.metrics_url = f"http://{host}:{port}/metrics"
        log.info("Prometheus metrics at %s", self.metrics_url)

    def _purge_stale_loop(self, interval: float) -> None:
        while not self._stop_purge.wait(interval):
            try:
                self.cache.purge_stale(self.staged_lifetime)
            except Exception:
                log.exception("purging stale staged files failed")

    def _credential_source(self) -> CredentialSource:
        kind = self.option("CredentialSource")
        cert = key = None
        if str(kind).lower() == "host":
            from seproxy.security.locations import host_credentials
            with contextlib.suppress(SeproxyError, OSError):
                cert, key = (str(p) for p in host_credentials(self.cfg))
        proxy_dir = self.option("ProxyDir") or os.path.join(self.base_path, "proxies")
        proxy_manager = None
        if str(kind).lower() == "proxymanager":
            from seproxy.dirac import proxymanager as pm

            proxy_manager = pm.ProxyManagerSource(
                self.cfg, lifetime=self.option("ProxyLifetime"),
                renew_margin=self.option("ProxyRenewMargin"),
                cache_size=self.option("ProxyCacheSize"),
                voms=self.option("ProxyVOMS"))
        return CredentialSource(kind, host_cert=cert, host_key=key, proxy_dir=proxy_dir,
                                scratch_dir=self.cache.tmp, proxy_manager=proxy_manager,
                                delegation_margin=self.option("ProxyRenewMargin"),
                                delegation_cache_size=self.option("ProxyCacheSize"))

    def _clean_storage_orphans(self) -> None:
        """Remove the upload temporaries a killed process left in the local (File)
        storage elements; live uploads (locked temporaries) are kept."""
        from seproxy.storage.element import StorageElement

        try:
            for name in self.cfg.getSections("/Resources/StorageElements"):
                try:
                    se = StorageElement(name, config=self.cfg)
                except Exception as exc:  # noqa: BLE001 - one bad SE must not stop the rest
                    log.info("orphan cleanup: cannot open %s: %s", name, exc)
                    continue
                for plugin in se.storages.values():
                    clean = getattr(plugin, "remove_orphans", None)
                    if clean is None:
                        continue
                    try:
                        files, size = clean()
                    except OSError as exc:
                        log.warning("orphan cleanup of %s failed: %s", name, exc)
                        continue
                    if files:
                        log.info("start-up cleanup removed %d orphaned temporaries (%d bytes) "
                                 "from storage element %s", files, size, name)
        finally:
            self.orphans_cleaned.set()

    # -- HTTP ------------------------------------------------------------------------------
    def start_http(self) -> None:
        if self._http_server is None:
            raise ConfigError("HttpAccess is on but this StorageElementProxy handler has no HTTP server "
                              "(serve seproxy.cli.wiring.StorageElementProxyHandler)")
        port = self.option("HttpPort")
        ssl_context = self._https_context() if self.option("HttpsAccess") else None
        bind = self.option("HttpHost")
        try:
            self.http_thread = self._http_server(
                port, str(self.cache.http_root), register=self.register, host=bind,
                ssl_context=ssl_context, multi_use=self.option("HttpMultiUse"),
                max_connections=self.option("HttpMaxConnections"),
                purge_interval=self.option("HttpPurgeInterval"),
                header_timeout=self.option("HttpHeaderTimeout"),
                max_pending=self.option("HttpMaxPending"),
                max_pending_per_ip=self.option("HttpMaxPendingPerIP"))
        except OSError as exc:
            raise ConfigError(f"Cannot listen for HTTP on {bind or '*'}:{port}: "
                              f"{exc.strerror or exc}") from exc
        host = self.option("HttpURLHost") or schema.value(self.cfg, "/DIRAC/Hostname") or socket.getfqdn()
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        url_port = self.option("HttpURLPort") or self.http_thread.port  # a load balancer's port
        self.http_url_base = f"{self.http_thread.scheme}://{host}:{url_port}"
        log.info("HTTP access at %s serving %s", self.http_url_base, self.cache.http_root)

    def _https_context(self) -> ssl.SSLContext:
        from seproxy.security.locations import host_credentials

        cert, key = host_credentials(self.cfg)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(cert), str(key))
        return context

    def stop(self) -> None:
        self.register.stop_purger()
        self._stop_purge.set()
        if self._stale_purger is not None:
            self._stale_purger.join(timeout=5)
            self._stale_purger = None
        if self.metrics_server is not None:
            metrics.watch_cache(None)
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
            self.metrics_server = None
        if self.http_thread is not None:
            self.http_thread.stop()
            self.http_thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.store.dispose()
        self.instance_lock.release()  # last: a successor may clean up from now on

    # -- storage -----------------------------------------------------------------------------
    def storage_element(self, name: str, vo: str, credentials: Any) -> Any:
        from seproxy.storage.element import StorageElement

        return StorageElement(name, vo=vo, config=self.cfg, credentials=credentials)

    def run_limited(self, seconds: float, name: str, func: Callable[..., Any], *args: Any) -> Any:
        """Run a storage call in the pool, with DIRAC's timeout message when too slow."""
        future = self._pool.submit(func, *args)
        try:
            return future.result(timeout=seconds)
        except concurrent.futures.TimeoutError:
            log.error("%s still running after %s s; answering with a timeout", name, seconds)
            return S_ERROR(f'{int(seconds)} seconds timeout for "{name}" call')
        except SeproxyError as exc:  # the one conversion point of the storage calls
            return S_ERROR(exc)

    def disk_free(self) -> int:
        st = os.statvfs(self.base_path)
        return st.f_bavail * st.f_frsize

    def reserve_space(self, size: int) -> SpaceReservation | None:
        """Reserve ``size`` bytes for an upload if that keeps ``MinFreeSpace`` free
        (counting the other uploads' reservations); None when it does not fit."""
        with self._space_lock:
            if self.disk_free() - self._reserved - self.min_free <= size:
                return None
            self._reserved += size
        return SpaceReservation(self, size)

    def space_for(self, size: int) -> bool:
        """True if ``size`` more bytes (of an upload of unknown size) keep MinFreeSpace."""
        with self._space_lock:
            return self.disk_free() - self._reserved - self.min_free > size

    def _unreserve(self, size: int) -> None:
        with self._space_lock:
            self._reserved -= size


class SpaceReservation:
    """Bytes an announced upload may still write (released when the upload ends)."""

    def __init__(self, state: ProxyState, size: int) -> None:
        self._state = state
        self.size = size
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._state._unreserve(self.size)  # the state's own helper

    def __enter__(self) -> SpaceReservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
