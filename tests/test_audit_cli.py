"""``orchestration-pipelines audit`` as an operator runs it: deliver pending records, verify the chain
against the anchors in the Dagster instance's event log."""

import numpy as np
import pandas as pd
import pytest
from dagster import AssetMaterialization, DagsterInstance
from instance_helpers import dagster_home
from test_cli import run_cli
from test_fraud_publish_gate import UNREACHABLE_STORE

from orchestration_pipelines.audit import AuditRecord, append_audit_record, read_audit_log
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.opstore import OpStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, data_env):
    if request.param == "sqlite":
        return f"sqlite:///{data_env / 'opstore.sqlite'}"
    return request.getfixturevalue("postgres_database")["url"]


def _tamper(store: OpStore, sql: str) -> None:
    with store.transaction(exclusive=True) as cur:
        cur.execute(sql)


def test_verify_detects_edits_truncation_and_rewrites(store_url, tmp_path):
    store = OpStore(store_url)
    entries = [
        append_audit_record(store, AuditRecord(f"e{n}", "fraud", "batch_published", f"b{n}.csv", {"n": n}))
        for n in range(1, 5)
    ]
    home = dagster_home(tmp_path)
    with DagsterInstance.from_config(str(home)) as instance:
        for entry, key, partition in ((entries[1], "decisions", "b2.csv"), (entries[3], "model", None)):
            instance.report_runless_asset_event(
                AssetMaterialization(
                    ["fraud", key],
                    partition=partition,
                    metadata={"audit_seq": entry.seq, "audit_hash": entry.entry_hash},
                )
            )
    env = {"DAGSTER_HOME": str(home), "OP_OPSTORE_URL": store_url}

    assert "consistent with 2 anchor(s)" in run_cli("audit", "verify", env_extra=env).stdout

    _tamper(store, "DELETE FROM audit_log WHERE seq = 4")
    truncated = run_cli("audit", "verify", env_extra=env, check=False)
    assert truncated.returncode != 0
    assert "truncated: fraud/model" in truncated.stderr and "chain ends at entry 3" in truncated.stderr

    append_audit_record(store, AuditRecord("other", "fraud", "batch_published", "forged.csv", {}))
    rewritten = run_cli("audit", "verify", env_extra=env, check=False)
    assert rewritten.returncode != 0 and "rewritten: entry 4" in rewritten.stderr

    _tamper(store, "UPDATE audit_log SET subject = 'edited.csv' WHERE seq = 2")
    edited = run_cli("audit", "verify", env_extra=env, check=False)
    assert edited.returncode != 0 and "edited: entry 2 no longer matches its hash" in edited.stderr


def test_a_cli_promotion_while_the_store_is_down_is_audited_once_later(data_env, tmp_path):
    rng = np.random.default_rng(3)
    n = 8000
    label = (rng.random(n) < 0.02).astype(int)
    table = pd.DataFrame(
        {"signal": rng.normal(0, 1, n) + 3 * label, "noise": rng.normal(0, 1, n), "y": label}
    )
    source = tmp_path / "features.parquet"
    table.to_parquet(source)

    promoted = run_cli(
        "fraud",
        "train",
        str(source),
        "--label",
        "y",
        "--promote",
        env_extra={"OP_OPSTORE_URL": UNREACHABLE_STORE},
    )
    assert "audit store unreachable" in promoted.stderr
    version = ModelRegistry(data_env / "models").current_version("fraud")
    assert version is not None and f"promoted {version}" in promoted.stdout

    assert "delivered 1 pending" in run_cli("audit", "deliver").stdout
    assert "delivered 0 pending" in run_cli("audit", "deliver").stdout
    entries = read_audit_log(OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}"))
    assert [(e.event, e.subject, e.actor) for e in entries] == [("model_promoted", version, "cli")]
