"""The support router calibrated on the workflow's own hold-out, run in shadow, promoted with evidence."""

from dataclasses import replace

import duckdb
import pandas as pd
import pytest
from dagster import AssetKey, instance_for_test, materialize

from assets.support import SUPPORT_BATCH_ASSETS, SUPPORT_REFERENCE_ASSETS, support_batches
from orchestration_pipelines.audit import read_audit_log
from orchestration_pipelines.cli import main
from orchestration_pipelines.definitions import build_resources
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.router import active_router_policy, load_router_policy
from orchestration_pipelines.shadow import UnknownVersion, compare, list_experiments
from orchestration_pipelines.support.generator import write_demo_files
from orchestration_pipelines.support.router_calibration import (
    NoShadowEvidence,
    RouterCandidate,
    calibrate_candidate,
    candidate_policy,
    promote_router_candidate,
    register_candidate,
)


@pytest.fixture
def instance():
    with instance_for_test() as instance:
        yield instance


@pytest.fixture
def store(data_env):
    write_demo_files(
        data_env / "history" / "support",
        data_env / "landing" / "support",
        tickets=500,
        batches=2,
        batch_size=60,
        seed=3,
    )
    return OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}")


def metadata(instance, name):
    event = instance.get_latest_materialization_event(AssetKey(["support", name]))
    return {key: value.value for key, value in event.asset_materialization.metadata.items()}


def train(instance):
    assert materialize(SUPPORT_REFERENCE_ASSETS, resources=build_resources(), instance=instance).success


def triage(instance, partition):
    instance.add_dynamic_partitions(support_batches.name, [partition])
    assert materialize(
        [*SUPPORT_BATCH_ASSETS, *SUPPORT_REFERENCE_ASSETS],
        selection=SUPPORT_BATCH_ASSETS,
        partition_key=partition,
        resources=build_resources(),
        instance=instance,
    ).success


def routes(data_env, partition):
    with duckdb.connect(str(data_env / "warehouse.duckdb")) as con:
        return con.execute("SELECT * FROM support.routes WHERE batch_id = ?", [partition]).df()


def test_the_local_threshold_is_the_lowest_that_keeps_the_target_accuracy():
    confident = [("a", "a", 0.9)] * 80  # always right
    unsure = [("a", "b", 0.5)] * 10 + [("a", "a", 0.5)] * 10  # half wrong
    holdout = pd.DataFrame(confident + unsure, columns=["intent", "local_intent", "local_confidence"])
    active = load_router_policy()
    candidate = calibrate_candidate(holdout, active, "v-test", target_accuracy=0.9)
    # accepting the unsure tickets too gives 0.9 accuracy, but not with 95% confidence over 100 items
    assert candidate.policy.local_min == candidate.policy.budget_fallback_local_min
    assert 0.5 < candidate.policy.local_min <= 0.9
    assert candidate.evidence["expected"]["local"] == {"share": 0.8, "accuracy": 1.0}
    assert candidate.evidence["items"] == 100 and candidate.differs_from_active
    assert "no LLM tier" in candidate.evidence["calibrated"]
    assert candidate.policy.small_min == active.small_min and candidate.policy.version == "v-test"


def test_training_registers_a_candidate_that_is_not_active(data_env, store, instance):
    train(instance)
    meta = metadata(instance, "router_candidate")
    classifier_version = metadata(instance, "classifier")["version"]
    candidate = candidate_policy(store)
    assert candidate.version == meta["candidate_version"] == f"calibrated-{classifier_version}"
    assert active_router_policy(store).version == load_router_policy().version  # not promoted
    shipped = load_router_policy()
    assert meta["differs_from_active"] == (
        candidate.local_min != shipped.local_min
        or candidate.budget_fallback_local_min != shipped.budget_fallback_local_min
    )
    assert meta["reason"] and "no LLM tier" in meta["calibrated"]
    assert meta["items_used"] == 100  # the 20% hold-out of 500 labelled tickets
    assert meta["thresholds_before"]["local_min"] == shipped.local_min
    assert meta["thresholds_after"]["local_min"] == candidate.local_min
    shares = meta["expected_per_route"]
    assert shares["local"]["share"] + shares["human"]["share"] == pytest.approx(1)
    assert "router_candidate" in {e.event for e in read_audit_log(store, "support")}


def test_the_triage_runs_the_candidate_in_shadow_acts_on_the_active_and_promotion_needs_its_results(
    data_env, store, instance
):
    train(instance)
    shipped = load_router_policy()
    # a candidate that would send every ticket to a person: the triage must not act on it
    cautious = replace(shipped, version="cautious", local_min=1.01, budget_fallback_local_min=1.01)
    register_candidate(store, RouterCandidate(cautious, True, "test", {}), actor="test")

    with pytest.raises(NoShadowEvidence):
        promote_router_candidate(store, "cautious", "ann", "before any shadow run")
    with pytest.raises(UnknownVersion):
        promote_router_candidate(store, "no-such-version", "ann", "typo")
    with pytest.raises(SystemExit, match="no shadow results"):
        main(["router", "promote", "cautious", "--actor", "ann"])

    triage(instance, "tickets_001.csv")
    experiment = f"router_policy:router:{shipped.version}->cautious"
    assert metadata(instance, "routes")["shadow_experiment"] == experiment
    assert list_experiments(store) == [experiment]
    comparison = compare(store, experiment)
    routed = routes(data_env, "tickets_001.csv")
    assert comparison.items == len(routed) > 0
    assert comparison.candidate_routes == {"human": 1.0}
    assert (routed["router_policy_version"] == shipped.version).all()
    assert routed["route"].value_counts(normalize=True).to_dict() == pytest.approx(comparison.active_routes)
    assert (routed["route"] == "local").any()  # acted on the active policy, not the candidate

    main(["router", "promote", "cautious", "--actor", "ann", "--reason", "shadow reviewed"])
    assert active_router_policy(store).version == "cautious"
    [promotion] = [e for e in read_audit_log(store, "support") if e.event == "promotion"]
    assert promotion.actor == "ann" and promotion.details["evidence"]["experiment"] == experiment

    triage(instance, "tickets_002.csv")  # the promoted policy routes; nothing left to shadow
    after = routes(data_env, "tickets_002.csv")
    assert (after["router_policy_version"] == "cautious").all() and (after["route"] == "human").all()
    assert metadata(instance, "routes")["shadow_experiment"] == "none"
