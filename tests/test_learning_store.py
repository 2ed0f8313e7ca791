"""Feedback rows as a reviewer's correction leaves them in a real operational store, read and marked
used by the retrains (SQLite and PostgreSQL), and the training assets wired to them."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, instance_for_test, materialize
from fraud_helpers import write_history
from review_helpers import T0, add_team
from review_helpers import request as review_request
from test_cli import run_cli

from assets.fraud import FRAUD_TRAINING_ASSETS
from assets.support import SUPPORT_REFERENCE_ASSETS
from orchestration_pipelines.audit import read_audit_log
from orchestration_pipelines.definitions import build_resources
from orchestration_pipelines.fraud.generator import generate_transactions, make_population
from orchestration_pipelines.learning import fraud as fraud_learning
from orchestration_pipelines.learning.feedback import (
    latest_corrections,
    mark_used,
    read_feedback,
    warehouse_cases,
)
from orchestration_pipelines.learning.maintenance import THRESHOLDS_MODEL, refresh_thresholds, type_policies
from orchestration_pipelines.maintenance.policy import load_maintenance_policy
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review import decide, raise_items
from orchestration_pipelines.support.classifier import train_classifier
from orchestration_pipelines.support.generator import generate_tickets, write_demo_files


def _review_item(cur, item_id, workflow, case_id, decision, value, at):
    cur.execute(
        "INSERT INTO review_items (item_id, workflow, kind, case_id, status, required_role, deadline_at,"
        " reason, context_json, input_sha256, model_version, policy_version, decision, decided_value,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, 'decided', 'analyst', ?, 'test', '{}', ?, 'v1',"
        " 'p1', ?, ?, ?, ?)",
        (item_id, workflow, f"kind-{item_id}", case_id, at, "0" * 64, decision, value, at, at),
    )


def record_correction(store, feedback_id, workflow, case_id, label_field, value, at="2026-11-26T09:00:00"):
    """The review item and feedback row a ``correct`` decision writes (columns of the shared contract)."""
    at = f"{at}.000000+00:00"
    with store.transaction() as cur:
        _review_item(cur, f"item-{feedback_id}", workflow, case_id, "correct", value, at)
        cur.execute(
            "INSERT INTO feedback (feedback_id, workflow, case_id, item_id, label_field, corrected_value,"
            " reviewer, created_at) VALUES (?, ?, ?, ?, ?, ?, 'ana', ?)",
            (feedback_id, workflow, case_id, f"item-{feedback_id}", label_field, value, at),
        )


def record_approval(store, workflow, case_id, at="2026-11-26T09:00:00.000000+00:00"):
    with store.transaction() as cur:
        _review_item(cur, f"item-ok-{case_id}", workflow, case_id, "approve", None, at)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        return OpStore(f"sqlite:///{tmp_path / 'opstore.sqlite'}")
    return OpStore(request.getfixturevalue("postgres_database")["url"])


def test_feedback_rows_are_read_per_workflow_and_marked_used(store):
    record_correction(store, "fb-1", "fraud", "T1", "is_fraud", "fraud", "2026-11-26T09:00:00")
    record_correction(store, "fb-2", "fraud", "T2", "is_fraud", "legitimate", "2026-11-26T10:00:00")
    record_correction(store, "fb-3", "support", "S1", "intent", "refund", "2026-11-26T11:00:00")

    fraud = read_feedback(store, "fraud")
    assert fraud["feedback_id"].tolist() == ["fb-1", "fb-2"]
    assert fraud["created_at"].tolist() == [
        pd.Timestamp("2026-11-26T09:00:00Z"),
        pd.Timestamp("2026-11-26T10:00:00Z"),
    ]
    assert fraud["used_by_model_version"].isna().all()
    assert read_feedback(store, "fraud", since="2026-11-26T09:30:00Z")["feedback_id"].tolist() == ["fb-2"]

    mark_used(store, ["fb-2", "fb-2"], "20261126T120000-abcdef01")
    mark_used(store, ["fb-1", "fb-2"], "20261127T020000-abcdef02")  # the newest version trained with it
    assert read_feedback(store, "fraud")["used_by_model_version"].tolist() == ["20261127T020000-abcdef02"] * 2
    assert read_feedback(store, "support")["used_by_model_version"].tolist() == [None]
    with pytest.raises(ValueError, match="model version is required"):
        mark_used(store, ["fb-1"], "")


def test_corrected_cases_are_found_in_the_warehouse_only_when_their_table_exists(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        assert warehouse_cases(con, "support.raw_tickets", "ticket_id", ["S1"]) is None
        con.execute("CREATE SCHEMA support")
        con.execute("CREATE TABLE support.raw_tickets AS SELECT 'S' || i AS ticket_id, i FROM range(5) t(i)")
        found = warehouse_cases(con, "support.raw_tickets", "ticket_id", ["S1", "S3", "S3", "X"])
        assert sorted(found["ticket_id"]) == ["S1", "S3"]


def _materialized(instance, prefix, name):
    event = instance.get_latest_materialization_event(AssetKey([prefix, name]))
    return {key: value.value for key, value in event.asset_materialization.metadata.items()}


def test_support_classifier_retrains_with_corrected_intents_from_the_store(data_env):
    write_demo_files(
        data_env / "history" / "support",
        data_env / "landing" / "support",
        tickets=500,
        batches=0,
        batch_size=1,
        seed=3,
    )
    tickets = pd.read_csv(data_env / "history" / "support" / "tickets.csv")
    store = OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}")
    billing = tickets[tickets["intent"] == "billing"]["ticket_id"].iloc[:2].tolist()
    record_correction(store, "fb-1", "support", billing[0], "intent", "refund")
    record_correction(store, "fb-2", "support", billing[1], "intent", "refund")
    record_correction(store, "fb-3", "support", "T-never-landed", "intent", "refund")

    with instance_for_test() as instance:
        assert materialize(SUPPORT_REFERENCE_ASSETS, resources=build_resources(), instance=instance).success
        metadata = _materialized(instance, "support", "classifier")
    assert metadata["feedback_rows_used"] == 2 and metadata["feedback_unmatched"] == 1
    assert metadata["feedback_by_intent"] == {"refund": 2}
    _, card = ModelRegistry(data_env / "models").load("support_classifier", metadata["version"])
    assert card["feedback"]["feedback_ids"] == ["fb-1", "fb-2"]
    used = read_feedback(store, "support").set_index("feedback_id")["used_by_model_version"]
    assert used.to_dict() == {"fb-1": metadata["version"], "fb-2": metadata["version"], "fb-3": None}


def test_unknown_intent_in_the_store_fails_the_retrain_and_names_the_row(data_env):
    write_demo_files(
        data_env / "history" / "support",
        data_env / "landing" / "support",
        tickets=300,
        batches=0,
        batch_size=1,
        seed=4,
    )
    store = OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}")
    record_correction(store, "fb-typo", "support", "H000001", "intent", "refnud")
    with instance_for_test() as instance:
        result = materialize(
            SUPPORT_REFERENCE_ASSETS, resources=build_resources(), instance=instance, raise_on_error=False
        )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "fb-typo: 'refnud'" in str(failure.step_failure_data.error)
    assert read_feedback(store, "support")["used_by_model_version"].tolist() == [None]


def test_nightly_fraud_retrain_uses_analyst_labels_and_marks_them(data_env):
    history = generate_transactions(make_population(400, seed=9), "2026-10-01", 30, seed=9, id_prefix="H")
    write_history(data_env, history)
    store = OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}")
    legit = history[history["is_fraud"] == 0]["transaction_id"].iloc[:3].tolist()
    for number, transaction in enumerate(legit):
        record_correction(store, f"fb-{number}", "fraud", transaction, "is_fraud", "fraud")
    record_correction(store, "fb-x", "fraud", "T-not-scored", "is_fraud", "fraud")

    with instance_for_test() as instance:
        assert materialize(FRAUD_TRAINING_ASSETS, resources=build_resources(), instance=instance).success
        metadata = _materialized(instance, "fraud", "model_candidate")
    assert metadata["feedback_rows_used"] == 3 and metadata["feedback_unmatched"] == 1
    assert metadata["feedback_by_label"] == {"fraud": 3, "legitimate": 0}
    version = metadata["model_version"]
    _, card = ModelRegistry(data_env / "models").load("fraud", version)
    assert card["feedback"]["overridden_history_labels"] == 3 and card["feedback"]["changed_labels"] == 3
    used = read_feedback(store, "fraud").set_index("feedback_id")["used_by_model_version"].to_dict()
    assert used == {"fb-0": version, "fb-1": version, "fb-2": version, "fb-x": None}


def test_false_alarm_marks_promote_a_threshold_set_once_and_mark_it_used(store, tmp_path):
    policy, machines = load_maintenance_policy(), {"PU-001": "pump", "CO-001": "compressor"}
    registry = ModelRegistry(tmp_path / "models")
    assert refresh_thresholds(store, registry, policy, machines)[1] is None  # no marks: nothing saved
    assert type_policies(registry, policy) == {}

    for number in range(2):
        record_correction(
            store,
            f"fb-{number}",
            "maintenance",
            f"PU-001:20261120T0{number}00",
            "alert_outcome",
            "false_alarm",
        )
    record_correction(store, "fb-ok", "maintenance", "CO-001:20261120T0100", "alert_outcome", "true_fault")
    thresholds, version = refresh_thresholds(store, registry, policy, machines, run_id="run-1")

    assert registry.current_version(THRESHOLDS_MODEL) == version
    stricter = type_policies(registry, policy)
    assert list(stricter) == ["pump"] and stricter["pump"].enter_score > policy.enter_score
    [entry] = [e for e in read_audit_log(store, "maintenance") if e.subject == version]
    assert entry.event == "model_promoted" and entry.details["per_type"] == thresholds.per_type
    used = read_feedback(store, "maintenance").set_index("feedback_id")["used_by_model_version"].to_dict()
    assert used == {"fb-0": version, "fb-1": version, "fb-ok": version}
    # the same marks again: the same set, no new version
    assert refresh_thresholds(store, registry, policy, machines) == (thresholds, version)


def test_router_recalibrates_from_reviewed_tickets_through_the_cli(data_env):
    labelled = generate_tickets(400, 5)
    classifier, _ = train_classifier(labelled, text_columns=("subject", "body"), intent="intent")
    registry = ModelRegistry(data_env / "models")
    registry.promote(
        "support_classifier", registry.save("support_classifier", classifier, {"intents": classifier.intents})
    )
    # 60 tickets answered locally at 0.86..0.94: reviewers corrected half of them, approved the rest
    routes = pd.DataFrame(
        {
            "batch_id": "b1",
            "ticket_id": [f"T{i}" for i in range(60)],
            "local_intent": "shipping",
            "local_confidence": np.linspace(0.86, 0.94, 60),
            "intent": "shipping",
            "answered_by": "local",
        }
    )
    with duckdb.connect(str(data_env / "warehouse.duckdb")) as con:
        con.execute("CREATE SCHEMA support")
        con.register("reviewed_routes", routes)
        con.execute("CREATE TABLE support.routes AS SELECT * FROM reviewed_routes")
    store = OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}")
    for i in range(60):
        if i % 2:
            record_correction(store, f"fb-{i}", "support", f"T{i}", "intent", "refund")
        else:
            record_approval(store, "support", f"T{i}")

    report = json.loads(run_cli("router", "recalibrate", "--version", "2025-01.2+reviews").stdout)

    assert report["reviewed_tickets"] == 60
    local = report["tiers"][0]
    assert (local["tier"], local["threshold_before"], local["threshold_after"]) == ("local", 0.85, 0.95)
    assert report["policy"]["version"] == "2025-01.2+reviews"
    assert report["policy"]["confidence"]["local_min"] == 0.95


def test_store_down_fails_the_retrain_before_training_and_keeps_the_current_model(data_env, monkeypatch):
    """Training without the corrections would ship a model that forgot them: the retrain fails instead,
    and the freshness policy on the model assets shows the missed night."""
    history = generate_transactions(make_population(200, seed=2), "2026-10-01", 10, seed=2, id_prefix="H")
    write_history(data_env, history)
    monkeypatch.setenv("OP_OPSTORE_URL", "postgresql://nobody@127.0.0.1:1/none")  # nothing listens there
    with instance_for_test() as instance:
        result = materialize(
            FRAUD_TRAINING_ASSETS, resources=build_resources(), instance=instance, raise_on_error=False
        )
    assert not result.success
    failed = {e.step_key: str(e.step_failure_data.error) for e in result.all_events if e.is_step_failure}
    assert "127.0.0.1" in failed["fraud__model_candidate"] and "port 1" in failed["fraud__model_candidate"]
    assert not (data_env / "models" / "fraud").exists()  # nothing trained, nothing saved


def test_corrections_decided_in_the_review_inbox_become_training_labels(store):
    add_team(store)
    raised = raise_items(
        store,
        [review_request("T1", "fraud_analyst_review"), review_request("S1", "support_escalation")],
        now=T0,
    )
    fraud_item, support_item = raised.created
    decide(store, fraud_item, "ana", "correct", "legitimate", now=T0)
    decide(store, support_item, "sup", "correct", "refund", now=T0)

    fraud = read_feedback(store, "fraud")
    assert fraud[["case_id", "label_field", "corrected_value", "reviewer"]].values.tolist() == [
        ["T1", "is_fraud", "legitimate", "ana"]
    ]
    labels = latest_corrections(fraud, "is_fraud", fraud_learning.LABEL_VALUES)
    assert labels[["case_id", "value"]].values.tolist() == [["T1", 0]]
    support = read_feedback(store, "support")
    assert support[["case_id", "label_field", "corrected_value"]].values.tolist() == [
        ["S1", "intent", "refund"]
    ]
    mark_used(store, support["feedback_id"], "20261127T020000-abcdef02")
    assert read_feedback(store, "support")["used_by_model_version"].tolist() == ["20261127T020000-abcdef02"]
