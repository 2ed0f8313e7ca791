"""Shared fixtures: an isolated data layout per test, a small generated world, and real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from orchestration_pipelines.fraud.generator import generate_transactions, make_population

PG_ADMIN_DSN = os.environ.get("OP_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every platform path (data, warehouse, models, operational store) into a fresh folder."""
    root = tmp_path / "data"
    monkeypatch.setenv("OP_DATA_DIR", str(root))
    monkeypatch.setenv("OP_WAREHOUSE_PATH", str(root / "warehouse.duckdb"))
    monkeypatch.setenv("OP_MODEL_DIR", str(root / "models"))
    monkeypatch.setenv("OP_OPSTORE_URL", f"sqlite:///{root / 'opstore.sqlite'}")
    return root


@dataclass(frozen=True)
class SmallWorld:
    """Thirty days of labelled history and three following days, from one account population."""

    history: pd.DataFrame
    batches: list[pd.DataFrame]  # labelled; use ``unlabelled`` for landing files


@pytest.fixture(scope="session")
def small_world() -> SmallWorld:
    pop = make_population(1500, seed=11)
    history = generate_transactions(pop, "2026-10-01", 30, seed=11, id_prefix="H")
    batches = [
        generate_transactions(
            pop, pd.Timestamp("2026-10-31") + pd.Timedelta(days=d), 1, seed=12 + d, id_prefix=f"B{d}-"
        )
        for d in range(3)
    ]
    return SmallWorld(history, batches)


def _postgres_available() -> bool:
    import psycopg2

    try:
        psycopg2.connect(PG_ADMIN_DSN, connect_timeout=3).close()
        return True
    except psycopg2.OperationalError:
        return False


@pytest.fixture
def postgres_database() -> Iterator[dict[str, str]]:
    """A fresh, uniquely named PostgreSQL database, dropped afterwards.

    Locally the tests skip without a server; on CI (``CI=true``) a missing server is a failure.
    """
    import psycopg2

    if not _postgres_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required on CI and not reachable at {PG_ADMIN_DSN}")
        pytest.skip("PostgreSQL not reachable")
    name = f"op_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(PG_ADMIN_DSN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield {"name": name, "url": f"{base}/{name}"}
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def trained_builtin(small_world):
    """The built-in model trained once per session on the small world's history."""
    from orchestration_pipelines.fraud import train_builtin

    return train_builtin(small_world.history)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def opstore(request, tmp_path):
    """A fresh operational store on each dialect."""
    from orchestration_pipelines.opstore import OpStore

    if request.param == "sqlite":
        return OpStore(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    return OpStore(request.getfixturevalue("postgres_database")["url"])
