"""Versioned schema of the operational store (Alembic), applied from code rather than an ini file.

``upgrade_to_head`` is what ``OpStore.migrate()`` and ``orchestration-pipelines opstore upgrade`` run.
Racing processes are serialised (SQLite: the write lock; PostgreSQL: an advisory transaction lock), and
the whole upgrade is one transaction, so a process either sees the old schema or the new one.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

VERSION_TABLE = "opstore_alembic_version"  # not Dagster's ``alembic_version`` if they share a database
MIGRATIONS_LOCK = "opstore_migrations"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; ``None`` when it was never migrated."""
    with engine.connect() as connection:
        return _current(connection)


def upgrade_to_head(engine: Engine) -> str:
    """Bring the database to the newest revision, adopting a database created before migrations existed."""
    from orchestration_pipelines.opstore import lock_key

    head = head_revision()
    if current_revision(engine) == head:
        return head
    with engine.connect() as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (lock_key(MIGRATIONS_LOCK),))
        command.upgrade(_config(connection), "head")
    return head
