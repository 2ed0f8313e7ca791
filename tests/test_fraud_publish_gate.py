"""The publish gate on a real instance: each run's batch is judged alone, racing runs of one batch,
and every effect (publish, promotion, quarantine) with exactly one audit entry when the store was down."""

import json
import threading
from unittest import mock

import pandas as pd
import pytest
from dagster import ReexecutionOptions, execute_job, instance_for_test, materialize, reconstructable
from fraud_helpers import write_history, write_landing_file
from test_fraud_assets import materialization_metadata, query, score, train

import assets.fraud
from assets.fraud import FRAUD_TRAINING_ASSETS, candidate_not_worse_than_current
from orchestration_pipelines.audit import OUTBOX, deliver_pending_audit, read_audit_log
from orchestration_pipelines.definitions import build_resources
from orchestration_pipelines.landing import file_sha256
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.opstore import OpStore

UNREACHABLE_STORE = "postgresql://postgres@127.0.0.1:9/nothing_listens_here"


@pytest.fixture
def instance():
    with instance_for_test() as instance:
        yield instance


@pytest.fixture
def trained(data_env, small_world, instance):
    write_history(data_env, small_world.history)
    assert train(instance).success
    return data_env


def card_testing_mix(batch: pd.DataFrame, normal: int = 15, burst: int = 22) -> pd.DataFrame:
    """A small batch where one card is tested with tiny amounts: most of it belongs in the block queue."""
    probe = batch.iloc[[0] * burst].copy()
    probe["transaction_id"] = [f"PROBE-{i}" for i in range(burst)]
    probe["timestamp"] = [
        pd.Timestamp(batch["timestamp"].iloc[0]) + pd.Timedelta(seconds=10 * i) for i in range(burst)
    ]
    probe["amount"] = 1.5
    return pd.concat([batch.iloc[1 : normal + 1], probe], ignore_index=True)


def opstore(data_env) -> OpStore:
    return OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}")


def audit_subjects(data_env, event: str) -> list[str]:
    return [e.subject for e in read_audit_log(opstore(data_env), "fraud") if e.event == event]


def check_evaluations(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def published_batches(data_env) -> list[str]:
    return [b for (b,) in query(data_env, "SELECT DISTINCT batch_id FROM fraud.decisions ORDER BY 1")]


def test_each_batch_is_judged_alone_in_a_shared_staging_table(trained, small_world, instance):
    landing = trained / "landing" / "fraud"
    day0, day1, day2 = small_world.batches
    for name, batch in [("day0.csv", day0), ("day1.csv", day1)]:
        write_landing_file(landing, name, batch)
        result = score(instance, name)
        assert result.success, name
        mix = check_evaluations(result)["decision_mix_within_policy"].metadata
        assert mix["batch_rows"].value == len(batch)  # its own rows, not every batch staged so far
    # The same file re-sent under a new name is quarantined on its own (the packaged policy), and never
    # reaches the staging table where it could fail the id checks of later batches.
    write_landing_file(landing, "day1-resent.csv", day1)
    resent = score(instance, "day1-resent.csv")
    assert not resent.success and not check_evaluations(resent)
    assert audit_subjects(trained, "batch_quarantined") == ["day1-resent.csv"]

    bad = card_testing_mix(day2)
    write_landing_file(landing, "bad-mix.csv", bad)
    failed = score(instance, "bad-mix.csv")
    assert not failed.success
    evaluations = check_evaluations(failed)
    assert {n for n, e in evaluations.items() if not e.passed} == {"decision_mix_within_policy"}
    mix = evaluations["decision_mix_within_policy"]
    assert "block share" in mix.description
    blocked = mix.metadata["cases_block_pending_approval"].value
    assert blocked.endswith(f"/{len(bad)}") and int(blocked.split("/")[0]) >= 10
    assert mix.metadata["share_block_pending_approval"].value > 0.25

    write_landing_file(landing, "day2.csv", day2)
    assert score(instance, "day2.csv").success  # neither the re-sent nor the failed batch blocks it

    assert published_batches(trained) == ["day0.csv", "day1.csv", "day2.csv"]
    staged = query(trained, "SELECT batch_id, count(*) FROM fraud.decisions_staging GROUP BY 1")
    assert staged == [("bad-mix.csv", len(bad))]  # the failed run's rows stay for inspection
    assert audit_subjects(trained, "batch_published") == [
        "day0.csv",
        "day1.csv",
        "day2.csv",
    ]
    published = materialization_metadata(instance, ["fraud", "decisions"], "day2.csv")
    entry = read_audit_log(opstore(trained))[-1]
    assert (published["audit_seq"], published["audit_hash"]) == (entry.seq, entry.entry_hash)
    assert published["source_sha256"] == file_sha256(landing / "day2.csv")
    columns = {c for (c,) in query(trained, "SELECT column_name FROM (DESCRIBE fraud.decisions)")}
    assert {"run_id", "card_id", "device_id", "merchant_category", "country", "channel"} <= columns


def _race(instance, data_env, first: pd.DataFrame, second: pd.DataFrame):
    """Run A stages ``first`` and waits; the file changes to ``second`` and run B goes all the way; then A
    finishes. Returns both results."""
    landing = data_env / "landing" / "fraud"
    write_landing_file(landing, "day.csv", first)
    staged, finished = threading.Barrier(2, timeout=300), threading.Barrier(2, timeout=300)
    real_stage_rows = assets.fraud.stage_rows

    def stage_then_wait(*args, **kwargs):
        rows = real_stage_rows(*args, **kwargs)
        if threading.current_thread().name == "run-A":
            staged.wait()
            finished.wait()
        return rows

    results = {}
    with mock.patch.object(assets.fraud, "stage_rows", stage_then_wait):
        run_a = threading.Thread(target=lambda: results.update(a=score(instance, "day.csv")), name="run-A")
        run_a.start()
        staged.wait()
        write_landing_file(landing, "day.csv", second)
        results["b"] = score(instance, "day.csv")
        finished.wait()
        run_a.join(timeout=300)
    return results["a"], results["b"]


def test_an_older_content_never_overwrites_a_newer_one_that_published(trained, small_world, instance):
    older, newer = small_world.batches[0], small_world.batches[1]
    run_a, run_b = _race(instance, trained, older, newer)
    assert run_b.success and not run_a.success
    failure = next(e for e in run_a.all_events if e.event_type_value == "STEP_FAILURE")
    assert "superseded" in failure.event_specific_data.error.message
    assert all(e.passed for e in run_a.get_asset_check_evaluations())  # A's own rows were fine
    ids = {t for (t,) in query(trained, "SELECT transaction_id FROM fraud.decisions")}
    assert ids == set(newer["transaction_id"])
    assert audit_subjects(trained, "batch_published") == ["day.csv"]
    published = materialization_metadata(instance, ["fraud", "decisions"], "day.csv")
    assert published["source_sha256"] == file_sha256(trained / "landing" / "fraud" / "day.csv")
    assert published["published_run_id"] == run_b.run_id


def test_unchecked_rows_of_a_racing_run_never_publish(trained, small_world, instance):
    checked = small_world.batches[0]
    run_a, run_b = _race(instance, trained, checked, card_testing_mix(small_world.batches[1]))
    assert not run_b.success and run_a.success
    assert not check_evaluations(run_b)["decision_mix_within_policy"].passed
    assert check_evaluations(run_a)["decision_mix_within_policy"].metadata["batch_rows"].value == len(checked)
    ids = {t for (t,) in query(trained, "SELECT transaction_id FROM fraud.decisions")}
    assert ids == set(checked["transaction_id"])
    staged = query(trained, "SELECT DISTINCT run_id FROM fraud.decisions_staging")
    assert staged == [(run_b.run_id,)]


def test_publish_while_the_store_is_down_is_delivered_once_when_it_is_back(
    trained, small_world, instance, monkeypatch
):
    landing = trained / "landing" / "fraud"
    write_landing_file(landing, "day0.csv", small_world.batches[0])
    write_landing_file(landing, "day1.csv", small_world.batches[1])
    with monkeypatch.context() as down:
        down.setenv("OP_OPSTORE_URL", UNREACHABLE_STORE)
        result = score(instance, "day0.csv")
    # Retried for the delivery only, then reported as published with its record pending.
    assert result.success
    starts = [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    assert len(starts) == 3
    assert query(trained, "SELECT count(*) FROM fraud.decisions")[0][0] == len(small_world.batches[0])
    assert materialization_metadata(instance, ["fraud", "decisions"], "day0.csv")["audit_pending"] is True
    assert query(trained, f"SELECT count(*) FROM {OUTBOX} WHERE delivered_seq IS NULL") == [(1,)]
    assert audit_subjects(trained, "batch_published") == []

    assert score(instance, "day1.csv").success  # the next publish delivers the pending record first
    assert audit_subjects(trained, "batch_published") == ["day0.csv", "day1.csv"]
    assert query(trained, f"SELECT count(*) FROM {OUTBOX} WHERE delivered_seq IS NULL") == [(0,)]


def test_quarantine_and_promotion_while_the_store_is_down(trained, small_world, instance, monkeypatch):
    registry = ModelRegistry(trained / "models")
    first = registry.current_version("fraud")
    bad = small_world.batches[1].copy()
    bad.loc[1, "transaction_id"] = bad.loc[0, "transaction_id"]
    write_landing_file(trained / "landing" / "fraud", "bad.csv", bad)
    # Training reads reviewers' corrections from the store, so the candidate is trained while it is up;
    # its promotion then happens while the store is down.
    assert training_run(instance, selection=[assets.fraud.model_candidate]).success
    with monkeypatch.context() as down:
        down.setenv("OP_OPSTORE_URL", UNREACHABLE_STORE)
        assert not score(instance, "bad.csv").success
        assert training_run(instance, selection=[assets.fraud.model]).success  # promoted, store down
    reason = json.loads((trained / "quarantine" / "fraud" / "bad.csv.reason.json").read_text())
    assert reason["file"] == "bad.csv" and reason["audit"]["event"] == "batch_quarantined"
    assert materialization_metadata(instance, ["fraud", "model"])["audit_pending"] is True
    assert registry.current_version("fraud") != first
    assert audit_subjects(trained, "batch_quarantined") == []

    store = opstore(trained)
    for _ in range(2):  # the reconciler is idempotent
        deliver_pending_audit(store, registry=registry, quarantine_root=trained / "quarantine")
    assert audit_subjects(trained, "batch_quarantined") == ["bad.csv"]
    assert audit_subjects(trained, "model_promoted") == [first, registry.current_version("fraud")]
    quarantined = [e for e in read_audit_log(store) if e.event == "batch_quarantined"]
    assert [e.event_id for e in quarantined] == [reason["audit"]["event_id"]]


def training_run(instance, selection):
    """Part of the training job, with resources from the environment as it is now."""
    return materialize(
        [*FRAUD_TRAINING_ASSETS, candidate_not_worse_than_current],
        selection=selection,
        resources=build_resources(),
        instance=instance,
        raise_on_error=False,
    )


def scoring_job():
    """The scoring job with resources from the environment at reconstruction time."""
    from orchestration_pipelines.definitions import build_definitions

    return build_definitions().resolve_job_def("fraud_scoring_job")


def test_a_reexecution_from_failure_checks_and_publishes_the_rows_its_parent_staged(
    trained, small_world, instance, tmp_path, monkeypatch
):
    from importlib import resources

    text = resources.files("orchestration_pipelines").joinpath("policies/fraud.yaml").read_text()
    strict, fixed = tmp_path / "strict.yaml", tmp_path / "fixed.yaml"
    strict.write_text(text.replace("max_block_share: 0.02", "max_block_share: 0.0"))
    fixed.write_text(text)
    batch = small_world.batches[0]
    write_landing_file(trained / "landing" / "fraud", "day.csv", batch)
    instance.add_dynamic_partitions("fraud_batches", ["day.csv"])
    job = reconstructable(scoring_job)
    monkeypatch.setenv("OP_FRAUD_POLICY_PATH", str(strict))
    with execute_job(job, instance, tags={"dagster/partition": "day.csv"}) as first:
        assert not first.success
        parent, parent_tags = first.run_id, first.dagster_run.tags
    assert query(
        trained, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'decisions'"
    ) == [(0,)]

    # The policy is fixed; only the failed check and the publish step run again, on the parent's rows.
    monkeypatch.setenv("OP_FRAUD_POLICY_PATH", str(fixed))
    retry_options = ReexecutionOptions.from_failure(parent, instance)
    # The UI and the daemon's run retries copy the parent's tags; execute_job leaves that to its caller.
    with execute_job(job, instance, tags=parent_tags, reexecution_options=retry_options) as retry:
        assert retry.success
        steps = {e.step_key for e in retry.all_events if e.event_type_value == "STEP_SUCCESS"}
        assert "fraud__decisions_staging" not in steps and "fraud__decisions" in steps
        published = materialization_metadata(instance, ["fraud", "decisions"], "day.csv")
    assert published["published_run_id"] == parent
    assert query(trained, "SELECT DISTINCT run_id FROM fraud.decisions") == [(parent,)]
    assert query(trained, "SELECT count(*) FROM fraud.decisions")[0][0] == len(batch)
