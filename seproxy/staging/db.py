"""The state every instance must share, in one database: replica catalogue and HTTP key claims.

:class:`StateStore` is the one storage layer for that state, written with SQLAlchemy Core
(bound parameters only, no SQL text built from input):

* SQLite (one file, the embedded default: ``sqlite:///<BasePath>/catalogue.sqlite``) for
  a single instance;
* MariaDB/MySQL (``mysql+pymysql://user:password@host/db``, the ``seproxy[mysql]`` extra)
  shared by several instances.

The schema is created and migrated here: the table ``seproxy_schema`` holds the version
(:data:`SCHEMA_VERSION`); a catalogue made before the version table existed counts as
version 1. Every statement runs in :meth:`StateStore.run`, which retries a lost
connection a few times, then raises :class:`~seproxy.errors.StateError` with one line
(the database URL without its password and the driver's message); one warning is logged
when the database goes away and one line when it is back.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from seproxy.errors import ConfigError, StateError

log = logging.getLogger("seproxy.staging.db")

T = TypeVar("T")

#: The schema this code writes: 1 = files + replicas, 2 = + http_keys.
SCHEMA_VERSION = 2
#: Seconds waited before each retry of a statement whose connection was lost.
RETRY_DELAYS = (0.1, 0.5, 1.0)

metadata = sa.MetaData()

schema_table = sa.Table(
    "seproxy_schema", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
)
# 700 characters: the longest utf8mb4 primary key InnoDB indexes together with an SE name
files_table = sa.Table(
    "files", metadata,
    sa.Column("lfn", sa.String(700), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("checksum", sa.String(64), nullable=False, server_default=""),
    sa.Column("checksum_type", sa.String(16), nullable=False, server_default="ADLER32"),
    sa.Column("created", sa.Double, nullable=False),
)
replicas_table = sa.Table(
    "replicas", metadata,
    sa.Column("lfn", sa.String(700), sa.ForeignKey("files.lfn", ondelete="CASCADE"), primary_key=True),
    sa.Column("se", sa.String(60), primary_key=True),
)
#: One row per single-use HTTP key that a GET has claimed: ``state`` is ``claimed`` (a
#: download runs until ``until``), ``free`` (an interrupted download let it go) or
#: ``consumed``; rows leave after ``expires`` (the key's own expiry).
http_keys_table = sa.Table(
    "http_keys", metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(255), nullable=False, server_default=""),
    sa.Column("until", sa.Double, nullable=False),
    sa.Column("expires", sa.Double, nullable=False, index=True),
)

#: migration steps: version reached -> tables it adds (creating is idempotent)
_MIGRATIONS: dict[int, tuple[sa.Table, ...]] = {
    1: (files_table, replicas_table),
    2: (http_keys_table,),
}


def sqlite_url(path: str | os.PathLike[str]) -> str:
    return f"sqlite:///{os.path.abspath(path)}"


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)):
        return True
    return isinstance(exc, sa_exc.TimeoutError)  # the pool had no connection to give


def _one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return " ".join(str(orig).split()) or type(orig).__name__


class StateStore:
    """One database holding the shared state; every statement goes through :meth:`run`."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0,
                 retry_delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        try:
            parsed = sa.engine.make_url(url)
        except sa_exc.ArgumentError as exc:
            raise ConfigError(f"Database: not a database URL ({exc})") from exc
        self.url = parsed
        self.label = parsed.render_as_string(hide_password=True)
        self.retry_delays = retry_delays
        self.dialect = parsed.get_backend_name()
        kwargs: dict = {"pool_pre_ping": True}
        if self.dialect == "sqlite":
            if parsed.database:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        elif self.dialect in ("mysql", "mariadb"):
            kwargs["pool_recycle"] = 3600
            kwargs["connect_args"] = {"connect_timeout": int(connect_timeout),
                                      "read_timeout": 60, "write_timeout": 60}
            kwargs["isolation_level"] = "READ COMMITTED"
        try:
            self.engine = sa.create_engine(parsed, **kwargs)
        except (ImportError, sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
            raise ConfigError(f"Database {self.label}: {exc} (pip install 'seproxy[mysql]' "
                              f"for MariaDB/MySQL)") from exc
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._down = False
        self._state_lock = threading.Lock()
        self.migrate()

    @property
    def shared(self) -> bool:
        """True for a database server (several instances can use it), False for SQLite."""
        return self.dialect != "sqlite"

    # -- statements ------------------------------------------------------------------------
    def run(self, what: str, work: Callable[[sa.Connection], T]) -> T:
        """Run ``work(connection)`` in one transaction; retried when the connection was lost.

        Raises :class:`StateError` (one line: what, database, reason) when the database
        stays unreachable; integrity errors are the caller's (they mean "row exists")."""
        delays = iter(self.retry_delays)
        while True:
            try:
                with self.engine.begin() as conn:
                    result = work(conn)
            except sa_exc.IntegrityError:
                raise
            except sa_exc.SQLAlchemyError as exc:
                if not _is_connection_error(exc):
                    raise StateError(f"{what}: database {self.label} failed: {_one_line(exc)}") from exc
                delay = next(delays, None)
                if delay is None:
                    self._mark(down=True, reason=_one_line(exc))
                    raise StateError(f"{what}: database {self.label} unavailable: "
                                     f"{_one_line(exc)}") from exc
                time.sleep(delay)  # a retry back-off, not a synchronisation
                continue
            self._mark(down=False)
            return result

    def _mark(self, *, down: bool, reason: str = "") -> None:
        with self._state_lock:
            changed, self._down = self._down != down, down
        if changed and down:
            log.warning("state database %s unavailable: %s", self.label, reason)
        elif changed:
            log.warning("state database %s reachable again", self.label)

    # -- schema ------------------------------------------------------------------------------
    def version(self) -> int:
        def read(conn: sa.Connection) -> int:
            tables = set(sa.inspect(conn).get_table_names())
            if schema_table.name in tables:
                row = conn.execute(sa.select(schema_table.c.version)).first()
                if row is not None:
                    return int(row[0])
            return 1 if files_table.name in tables else 0
        return self.run("reading the schema version", read)

    def migrate(self) -> int:
        """Bring the schema to :data:`SCHEMA_VERSION` (idempotent; safe with concurrent
        instances: tables are created if missing, the version row only ever grows)."""
        current = self.version()
        if current > SCHEMA_VERSION:
            raise ConfigError(f"Database {self.label} has schema version {current}, newer than this "
                              f"seproxy's {SCHEMA_VERSION}: upgrade seproxy")
        if current == SCHEMA_VERSION:
            return current

        def upgrade(conn: sa.Connection) -> None:
            wanted = [schema_table]
            for step in range(1, SCHEMA_VERSION + 1):
                wanted.extend(_MIGRATIONS[step])
            metadata.create_all(conn, tables=wanted, checkfirst=True)
            updated = conn.execute(sa.update(schema_table).where(schema_table.c.id == 1)
                                   .where(schema_table.c.version < SCHEMA_VERSION)
                                   .values(version=SCHEMA_VERSION)).rowcount
            if not updated and conn.execute(sa.select(schema_table.c.id)).first() is None:
                conn.execute(sa.insert(schema_table).values(id=1, version=SCHEMA_VERSION))

        try:
            self.run("migrating the schema", upgrade)
        except (sa_exc.IntegrityError, StateError) as exc:
            if not isinstance(exc, sa_exc.IntegrityError) or self.version() != SCHEMA_VERSION:
                raise  # (another instance inserting the version row at the same time is fine)
        log.info("state database %s: schema version %d -> %d", self.label, current, SCHEMA_VERSION)
        return SCHEMA_VERSION

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()
