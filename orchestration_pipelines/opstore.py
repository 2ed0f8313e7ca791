"""The operational store: small transactional state written by many runs at once.

The audit log, the LLM cost ledger and the review queue need concurrent writers and durable
transactions, which the single-writer DuckDB warehouse cannot give. They live here instead:
SQLite (WAL mode) for the embedded default, PostgreSQL in production. Callers write SQL with
``?`` placeholders and portable types; ``OpStore`` adapts the few dialect differences.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

_PLACEHOLDER = re.compile(r"\?")


class OpStore:
    """Connection factory for ``sqlite:///path/to/file.sqlite`` or ``postgresql://user@host:port/db`` URLs."""

    def __init__(self, url: str):
        self.url = url
        parsed = urlparse(url)
        if parsed.scheme == "sqlite":
            self.dialect = "sqlite"
            self._sqlite_path = Path(url.removeprefix("sqlite:///"))
        elif parsed.scheme in ("postgresql", "postgres"):
            self.dialect = "postgresql"
        else:
            raise ValueError(
                f"unsupported operational store URL {url!r}: use sqlite:///... or postgresql://..."
            )

    def __repr__(self) -> str:  # never print credentials
        parsed = urlparse(self.url)
        return f"OpStore({parsed.scheme}://{parsed.hostname or ''}{parsed.path})"

    @contextmanager
    def transaction(self, exclusive: bool = False) -> Iterator[Cursor]:
        """One transaction; ``exclusive`` serialises writers that read then append (hash chains)."""
        if self.dialect == "sqlite":
            self._sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self._sqlite_path, timeout=60, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("BEGIN IMMEDIATE" if exclusive else "BEGIN")
        else:
            import psycopg2

            con = psycopg2.connect(self.url)
        try:
            cursor = Cursor(con.cursor(), self.dialect)
            if exclusive and self.dialect == "postgresql":
                cursor.execute("SELECT pg_advisory_xact_lock(4242)")
            yield cursor
            con.commit() if self.dialect == "postgresql" else con.execute("COMMIT")
        except BaseException:
            con.rollback() if self.dialect == "postgresql" else con.execute("ROLLBACK")
            raise
        finally:
            con.close()


class Cursor:
    """A DB-API cursor that accepts ``?`` placeholders on both dialects."""

    def __init__(self, raw: Any, dialect: str):
        self._raw = raw
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        if self.dialect == "postgresql":
            sql = _PLACEHOLDER.sub("%s", sql)
        self._raw.execute(sql, tuple(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Cursor:
        if self.dialect == "postgresql":
            sql = _PLACEHOLDER.sub("%s", sql)
        self._raw.executemany(sql, [tuple(r) for r in rows])
        return self

    def fetchone(self) -> tuple | None:
        return self._raw.fetchone()

    def fetchall(self) -> list[tuple]:
        return self._raw.fetchall()
