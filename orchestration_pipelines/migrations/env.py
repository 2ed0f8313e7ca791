"""Alembic environment: runs on the connection ``upgrade_to_head`` passes in, inside its transaction."""

from alembic import context

from orchestration_pipelines.migrations import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("migrate through OpStore.migrate() or `orchestration-pipelines opstore upgrade`")
context.configure(connection=connection, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
