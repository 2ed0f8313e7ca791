"""Fraud raises its review items: the domain function on frames, and the asset on a real instance."""

import pandas as pd
import pytest
from dagster import AssetKey, instance_for_test, materialize
from fraud_helpers import write_history, write_landing_file

from assets.fraud import FRAUD_SCORING_ASSETS, account_state, fraud_batches, labelled_history
from assets.fraud_review import review_items
from orchestration_pipelines.audit import read_audit_log, verify_audit_chain
from orchestration_pipelines.definitions import build_resources
from orchestration_pipelines.fraud.policy import load_policy
from orchestration_pipelines.fraud.review import review_requests
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review import list_items


def _decisions(**overrides) -> pd.DataFrame:
    base = {
        "transaction_id": ["T1", "T2", "T3"],
        "account_id": ["A1", "A2", "A3"],
        "card_id": ["C1", "C2", "C3"],
        "timestamp": pd.to_datetime(["2026-11-01T10:00:00Z"] * 3),
        "amount": [12.5, 9000.0, 40.0],
        "currency": ["EUR", "EUR", "USD"],
        "amount_eur": [12.5, 9000.0, 37.0],
        "risk_score": [0.2, 0.95, 0.7],
        "model_probability": [0.2, 0.4, 0.7],
        "anomaly_percentile": [0.5, 0.3, 0.2],
        "rule_risk": [0.0, 0.95, 0.0],
        "confidence": [0.6, 0.9, 0.4],
        "reason_codes": ["", "CARD_TESTING_BURST;HIGH_VELOCITY", "MODEL_HIGH_RISK"],
        "decision": ["auto_clear", "block_pending_approval", "analyst_review"],
        "model_version": ["m1"] * 3,
        "policy_version": ["2026.11.1"] * 3,
        "batch_id": ["day1.csv"] * 3,
    }
    return pd.DataFrame({**base, **overrides})


def test_only_cases_for_people_become_requests_with_the_context_to_decide():
    block, review = review_requests(_decisions(), load_policy())
    assert (block.kind, block.case_id, block.automatic_decision) == (
        "fraud_block_pending_approval",
        "T2",
        "block_pending_approval",
    )
    assert review.kind == "fraud_analyst_review" and review.model_version == "m1"
    assert block.context["reason_codes"] == ["CARD_TESTING_BURST", "HIGH_VELOCITY"]
    assert block.context["amount_eur"] == 9000.0 and block.context["account_id"] == "A2"
    assert block.context["policy_thresholds"]["block_at_or_above"] == 0.9
    assert block.context["timestamp"].startswith("2026-11-01T10:00:00")
    assert block.reason == "risk 0.950 at or above the block threshold 0.9: CARD_TESTING_BURST;HIGH_VELOCITY"
    assert review.reason.startswith("risk 0.700 between 0.5 and 0.9")
    again = review_requests(_decisions(), load_policy())
    assert [r.input_sha256 for r in again] == [block.input_sha256, review.input_sha256]
    changed = review_requests(_decisions(amount=[12.5, 9000.5, 40.0]), load_policy())
    assert changed[0].input_sha256 != block.input_sha256  # the hash covers the transaction


def test_an_anomalous_low_risk_case_says_so():
    anomalous = _decisions(
        risk_score=[0.2, 0.3, 0.4],
        anomaly_percentile=[0.1, 0.2, 0.99995],
        decision=["auto_clear", "auto_clear", "analyst_review"],
    )
    (request,) = review_requests(anomalous, load_policy())
    assert request.reason.startswith("anomalous beyond the 0.9999 percentile")


@pytest.fixture
def instance():
    with instance_for_test() as instance:
        yield instance


def _score(instance, partition):
    instance.add_dynamic_partitions(fraud_batches.name, [partition])
    return materialize(
        [*FRAUD_SCORING_ASSETS, review_items],
        partition_key=partition,
        resources=build_resources(),
        instance=instance,
    )


def _latest_review_items_metadata(instance) -> dict:
    event = instance.get_latest_materialization_event(AssetKey(["fraud", "review_items"]))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_the_asset_raises_one_item_per_case_once_per_partition(
    data_env, small_world, trained_builtin, instance
):
    write_history(data_env, small_world.history)
    registry = ModelRegistry(data_env / "models")
    registry.promote("fraud", registry.save("fraud", trained_builtin.model, {"feature_set": "builtin"}))
    assert materialize(
        [labelled_history, account_state], resources=build_resources(), instance=instance
    ).success
    store = OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}")
    for day, batch in enumerate(small_world.batches[:2]):
        write_landing_file(data_env / "landing" / "fraud", f"day{day}.csv", batch)
        assert _score(instance, f"day{day}.csv").success

    day0, day1 = (
        [i for i in list_items(store) if i.context["batch_id"] == b] for b in ("day0.csv", "day1.csv")
    )
    metadata = _latest_review_items_metadata(instance)
    assert day0 and day1 and metadata["items_raised"] == len(day1)
    per_kind = metadata["items_fraud_analyst_review"] + metadata["items_fraud_block_pending_approval"]
    assert per_kind == len(day1)
    assert day0[0].model_version == registry.current_version("fraud")
    decided_on = {"risk_score", "reason_codes", "amount_eur", "account_id", "policy_thresholds"}
    assert decided_on <= set(day0[0].context)

    run_again = materialize([review_items], partition_key="day0.csv", resources=build_resources(),
                            instance=instance)  # fmt: skip
    assert run_again.success
    rerun = _latest_review_items_metadata(instance)
    assert (rerun["items_raised"], rerun["items_already_raised"]) == (0, len(day0))
    raised = [e for e in read_audit_log(store, "fraud") if e.event == "review_item_raised"]
    assert len(raised) == len(day0) + len(day1) and verify_audit_chain(store) == []

    # Re-scored after day1 was published, some day0 cases route differently (their accounts' state
    # grew): new cases get items, the items of cases that no longer need a person are counted.
    assert _score(instance, "day0.csv").success
    rescored = _latest_review_items_metadata(instance)
    now_needing = rescored["items_fraud_analyst_review"] + rescored["items_fraud_block_pending_approval"]
    assert rescored["items_raised"] + rescored["items_already_raised"] == now_needing
    assert rescored["items_already_raised"] + rescored["open_items_no_longer_needed"] == len(day0)
