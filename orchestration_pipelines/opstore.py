"""The operational store: small transactional state written by many runs at once.

The audit log, the LLM cost ledger and the review queue need concurrent writers and durable
transactions, which the single-writer DuckDB warehouse cannot give. They live here instead:
SQLite (WAL mode) for the embedded default, PostgreSQL in production. Callers write SQL with
``?`` placeholders and portable types; ``OpStore`` adapts the few dialect differences.

Each process keeps one pooled SQLAlchemy engine per URL, and the schema is owned by the Alembic
migrations in ``orchestration_pipelines/migrations``: the first transaction of a process on a URL
upgrades the database to the newest revision (a single version lookup when it is already there).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

_PLACEHOLDER = re.compile(r"\?")

SQLITE_BUSY_TIMEOUT_SECONDS = 60

_engines: dict[tuple[int, str], Engine] = {}
_migrated: set[tuple[int, str]] = set()
_registry_lock = threading.Lock()


def utc_iso(moment: datetime | None = None) -> str:
    """The store's one timestamp format, so text comparison is time comparison."""
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock``, one per purpose name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        parsed = None
    if parsed is not None and parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg2")  # the declared driver, whatever the default
    backend = parsed.get_backend_name() if parsed else ""
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValueError(f"unsupported operational store URL {url!r}: SQLite needs a file path")
    if backend == "postgresql" and parsed.drivername != "postgresql+psycopg2":
        raise ValueError(f"unsupported operational store URL {url!r}: PostgreSQL goes through psycopg2")
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported operational store URL {url!r}: use sqlite:///... or postgresql://...")
    return parsed


def _sqlite_engine(url: URL) -> Engine:
    Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # The driver's own implicit transactions would defer BEGIN past our reads; we issue BEGIN ourselves.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        # SQLAlchemy-level transactions (the migrations) take the write lock up front.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _engine(url: str) -> Engine:
    """This process's engine for ``url``; a forked child builds its own (sockets do not survive fork)."""
    key = (os.getpid(), url)
    with _registry_lock:
        if key not in _engines:
            parsed = _parse(url)
            _engines[key] = (
                _sqlite_engine(parsed)
                if parsed.get_backend_name() == "sqlite"
                else create_engine(parsed, pool_pre_ping=True)
            )
        return _engines[key]


class OpStore:
    """Transactions on ``sqlite:///path/to/file.sqlite`` or ``postgresql://user@host:port/db``."""

    def __init__(self, url: str):
        self.url = url
        self.dialect = _parse(url).get_backend_name()

    def __repr__(self) -> str:  # never print credentials
        parsed = _parse(self.url)
        host = f"{parsed.host}:{parsed.port}" if parsed.port else parsed.host or ""
        return f"OpStore({parsed.get_backend_name()}://{host}/{parsed.database or ''})"

    @property
    def engine(self) -> Engine:
        return _engine(self.url)

    def migrate(self) -> str:
        """Upgrade the schema to the newest revision; returns it. Safe to call from racing processes."""
        from orchestration_pipelines.migrations import upgrade_to_head

        head = upgrade_to_head(self.engine)
        with _registry_lock:
            _migrated.add((os.getpid(), self.url))
        return head

    def current_revision(self) -> str | None:
        from orchestration_pipelines.migrations import current_revision

        return current_revision(self.engine)

    def _ensure_migrated(self) -> None:
        if (os.getpid(), self.url) not in _migrated:
            self.migrate()

    @contextmanager
    def transaction(self, exclusive: bool = False, lock: str | None = None) -> Iterator[Cursor]:
        """One transaction on a pooled connection.

        ``exclusive``: the transaction reads then writes; on SQLite it takes the write lock up front
        (two deferred readers upgrading at once would deadlock). ``lock``: a purpose name (e.g. the audit
        chain); transactions naming the same purpose run one at a time on every dialect, others in
        parallel on PostgreSQL.
        """
        self._ensure_migrated()
        con = self.engine.raw_connection()
        try:
            raw = con.cursor()
            cursor = Cursor(raw, self.dialect, exclusive=bool(exclusive or lock))
            if self.dialect == "sqlite":
                raw.execute("BEGIN IMMEDIATE" if cursor.exclusive else "BEGIN")
            if lock:
                cursor.lock(lock)
            yield cursor
            con.commit()
        except BaseException:
            con.rollback()
            raise
        finally:
            con.close()  # back to the pool


class Cursor:
    """A DB-API cursor that accepts ``?`` placeholders on both dialects."""

    def __init__(self, raw: Any, dialect: str, exclusive: bool = False):
        self._raw = raw
        self.dialect = dialect
        self.exclusive = exclusive

    def lock(self, name: str) -> None:
        """Serialise the rest of this transaction with others locking ``name`` (until commit or rollback).

        PostgreSQL: a per-purpose advisory transaction lock. SQLite: an exclusive transaction already
        holds the one write lock, so only exclusive transactions may ask.
        """
        if self.dialect == "postgresql":
            self.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(name),))
        elif not self.exclusive:
            raise RuntimeError(f"lock {name!r} on SQLite needs transaction(exclusive=True)")

    def _sql(self, sql: str) -> str:
        if self.dialect == "postgresql":  # psycopg2 formats with ``%``: escape literal ones first
            return _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))
        return sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        self._raw.execute(self._sql(sql), tuple(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Cursor:
        self._raw.executemany(self._sql(sql), [tuple(r) for r in rows])
        return self

    def fetchone(self) -> tuple | None:
        return self._raw.fetchone()

    def fetchall(self) -> list[tuple]:
        return self._raw.fetchall()

    @property
    def rowcount(self) -> int:
        return self._raw.rowcount
