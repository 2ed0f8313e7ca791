"""Wiring: the support assets, check, sensor and resources materialised for real on a Dagster instance."""

import json

import duckdb
import pandas as pd
import pytest
from dagster import AssetKey, build_sensor_context, instance_for_test, materialize
from llm_server import LLMTestServer

from assets.support import (
    SUPPORT_BATCH_ASSETS,
    SUPPORT_REFERENCE_ASSETS,
    low_confidence_share_stable,
    support_batches,
)
from orchestration_pipelines.audit import read_audit_log
from orchestration_pipelines.definitions import build_resources
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.support.generator import write_demo_files
from orchestration_pipelines.support.tables import TABLES, column_names
from sensors.support import support_landing_sensor


@pytest.fixture
def instance():
    with instance_for_test() as instance:
        yield instance


@pytest.fixture
def demo(data_env):
    landed = write_demo_files(
        data_env / "history" / "support",
        data_env / "landing" / "support",
        tickets=500,
        batches=1,
        batch_size=60,
        seed=3,
    )
    path = data_env / "landing" / "support" / "tickets_001.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    hostile = pd.concat(
        [frame.iloc[:1], frame.iloc[1:2].assign(ticket_id=""), frame.iloc[2:3].assign(body="", subject="")]
    )
    pd.concat([frame, hostile]).to_csv(path, index=False)  # a re-sent ticket, one without id, one empty
    return landed["tickets_001.csv"], set(frame["ticket_id"]) | {"row-61"}


def tick(instance, cursor=None):
    with build_sensor_context(instance=instance, cursor=cursor, resources=build_resources()) as context:
        result = support_landing_sensor(context)
    return result, result.cursor


def run_batch(instance, partition):
    instance.add_dynamic_partitions(support_batches.name, [partition])
    return materialize(
        [*SUPPORT_BATCH_ASSETS, *SUPPORT_REFERENCE_ASSETS, low_confidence_share_stable],
        selection=[*SUPPORT_BATCH_ASSETS, low_confidence_share_stable],
        partition_key=partition,
        resources=build_resources(),
        instance=instance,
    )


def outbox_rows(data_env, partition):
    with duckdb.connect(str(data_env / "warehouse.duckdb")) as con:
        return con.execute("SELECT * FROM support.outbox WHERE batch_id = ?", [partition]).df()


def metadata(instance, name):
    event = instance.get_latest_materialization_event(AssetKey(["support", name]))
    return {key: value.value for key, value in event.asset_materialization.metadata.items()}


def test_a_landed_batch_runs_from_sensor_to_outbox_without_an_llm(data_env, demo, instance):
    _, input_ids = demo
    assert materialize(SUPPORT_REFERENCE_ASSETS, resources=build_resources(), instance=instance).success
    result, cursor = tick(instance)
    [request] = result.run_requests
    assert request.partition_key == "tickets_001.csv"

    assert run_batch(instance, request.partition_key).success

    outbox = outbox_rows(data_env, request.partition_key)
    assert outbox["ticket_id"].is_unique and set(outbox["ticket_id"]) == input_ids
    assert set(outbox["status"]) <= {"ready", "awaiting_approval", "human_review", "rejected"}
    assert (outbox["status"] == "rejected").sum() == 2
    refunds = outbox[(outbox["intent"] == "refund") & outbox["reply"].notna()]
    assert not refunds.empty and (refunds["status"] == "awaiting_approval").all()
    assert outbox["cost_usd"].eq(0).all() and set(outbox["route"].dropna()) <= {"local", "human"}
    assert metadata(instance, "classifier")["promoted"] is True
    assert "per_language" in metadata(instance, "classifier")
    assert 0 <= metadata(instance, "classification")["low_confidence_share"] <= 1
    assert set(metadata(instance, "routes")["route_shares"]) <= {"local", "human"}
    assert metadata(instance, "outbox")["tickets"] == len(input_ids)
    for table in TABLES:  # inserts are positional: every frame must have the declared columns in order
        written = [column.name for column in metadata(instance, table)["dataframe_columns"].columns]
        assert written == column_names(table), table
    events = {e.event for e in read_audit_log(OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}"), "support")}
    assert {"model_promoted", "outbox_written"} <= events

    again, _ = tick(instance, cursor)
    assert again.run_requests == []
    after_reset, _ = tick(instance, None)  # a lost cursor: the content was already ingested
    assert after_reset.run_requests == [] and "already ingested" in after_reset.skip_reason.skip_message


def test_with_llm_tiers_unsure_tickets_go_to_the_gateway_and_the_agent_drafts(
    data_env, demo, instance, monkeypatch
):
    def respond(body):
        if "tools" in body:  # the agent: a cited answer without tools
            return json.dumps(
                {
                    "reply": "Dear [CUSTOMER_NAME_1], see KB-301 for what happens next.",
                    "cited_articles": ["KB-301"],
                }
            )
        return json.dumps({"intent": "shipping", "urgency": "normal"})

    with LLMTestServer(respond) as server:
        for tier in ("SMALL", "STRONG"):
            monkeypatch.setenv(f"OP_LLM_{tier}_BASE_URL", server.base_url)
            monkeypatch.setenv(f"OP_LLM_{tier}_MODEL", f"{tier.lower()}-model")
            monkeypatch.setenv(f"OP_LLM_{tier}_REQUESTS_PER_MINUTE", "60000")
        assert materialize(SUPPORT_REFERENCE_ASSETS, resources=build_resources(), instance=instance).success
        assert run_batch(instance, "tickets_001.csv").success

    outbox = outbox_rows(data_env, "tickets_001.csv")
    by_llm = outbox[outbox["route"].isin(["small", "strong"])]
    assert not by_llm.empty and server.requests
    drafted = by_llm[by_llm["reply"].notna()]
    assert not drafted.empty and drafted["reply"].str.contains("KB-301").all()
    assert (by_llm["cost_usd"] > 0).all()
    assert metadata(instance, "routes")["llm_cost_per_ticket_usd"] > 0
    assert metadata(instance, "replies")["agent_drafts"] >= len(drafted)
    names = pd.read_csv(data_env / "history" / "support" / "customers.csv")["name"]
    sent = "\n".join(r.raw_body for r in server.requests)
    assert not any(name in sent for name in names)


def test_an_unreadable_file_is_quarantined_with_its_reason(data_env, instance):
    landing = data_env / "landing" / "support"
    landing.mkdir(parents=True)
    (landing / "broken.parquet").write_bytes(b"not a parquet file")
    instance.add_dynamic_partitions(support_batches.name, ["broken.parquet"])
    result = materialize(
        [SUPPORT_BATCH_ASSETS[0]],
        partition_key="broken.parquet",
        resources=build_resources(),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    reason = json.loads((data_env / "quarantine" / "support" / "broken.parquet.reason.json").read_text())
    assert reason["file"] == "broken.parquet" and reason["sha256"]


def test_a_batch_in_which_every_ticket_is_rejected_still_ends_in_the_outbox(data_env, demo, instance):
    assert materialize(SUPPORT_REFERENCE_ASSETS, resources=build_resources(), instance=instance).success
    landing = data_env / "landing" / "support"
    frame = pd.read_csv(landing / "tickets_001.csv", dtype=str, keep_default_na=False).head(3)
    frame.assign(customer_id="").to_csv(landing / "all_bad.csv", index=False)

    assert run_batch(instance, "all_bad.csv").success

    outbox = outbox_rows(data_env, "all_bad.csv")
    assert (
        sorted(outbox["ticket_id"]) == sorted(frame["ticket_id"]) and (outbox["status"] == "rejected").all()
    )


def test_a_partition_key_that_leaves_the_landing_folder_is_refused(data_env, instance):
    """A hostile key never reads, moves or quarantines a file outside the landing folder."""
    outside = data_env.parent / "outside"
    outside.mkdir()
    victim = outside / "victim.csv"
    victim.write_text("id,customer_id\n1,C1\n")
    key = "../../../outside/victim.csv"
    instance.add_dynamic_partitions(support_batches.name, [key])
    result = materialize(
        [SUPPORT_BATCH_ASSETS[0]],
        partition_key=key,
        resources=build_resources(),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "unsafe file name" in failure.event_specific_data.error.message
    assert victim.read_text() == "id,customer_id\n1,C1\n"
    assert not (data_env / "quarantine").exists()


UNREACHABLE_STORE = "postgresql://postgres@127.0.0.1:9/nothing_listens_here"


def support_audit(data_env, event: str) -> list:
    store = OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}")
    return [e for e in read_audit_log(store, "support") if e.event == event]


def test_outbox_quarantine_and_promotion_keep_their_audit_records_while_the_store_is_down(
    data_env, demo, instance, monkeypatch
):
    """Each effect carries its audit record; a store outage delays the entries and never loses them."""
    landing = data_env / "landing" / "support"
    (landing / "broken.parquet").write_bytes(b"not a parquet file")
    instance.add_dynamic_partitions(support_batches.name, ["tickets_001.csv", "broken.parquet"])
    resources = build_resources()
    assert materialize(SUPPORT_REFERENCE_ASSETS, resources=resources, instance=instance).success
    before_outbox = [a for a in SUPPORT_BATCH_ASSETS if a.key != AssetKey(["support", "outbox"])]
    assert materialize(
        [*SUPPORT_BATCH_ASSETS, *SUPPORT_REFERENCE_ASSETS],
        selection=before_outbox,
        partition_key="tickets_001.csv",
        resources=resources,
        instance=instance,
    ).success
    with monkeypatch.context() as down:
        down.setenv("OP_OPSTORE_URL", UNREACHABLE_STORE)
        while_down = build_resources()
        assert materialize(
            [*SUPPORT_BATCH_ASSETS, *SUPPORT_REFERENCE_ASSETS],
            selection=[SUPPORT_BATCH_ASSETS[-1]],
            partition_key="tickets_001.csv",
            resources=while_down,
            instance=instance,
        ).success
        assert not materialize(
            [SUPPORT_BATCH_ASSETS[0]],
            partition_key="broken.parquet",
            resources=while_down,
            instance=instance,
            raise_on_error=False,
        ).success
        # A retrain needs the reviewers' corrections, which live in the store: it fails rather than
        # forget them, and so does the router candidate it would feed; the plain tables still refresh.
        references = materialize(
            SUPPORT_REFERENCE_ASSETS, resources=while_down, instance=instance, raise_on_error=False
        )
        assert not references.success
        assert {e.step_key for e in references.get_step_failure_events()} == {"support__classifier"}
        assert {e.asset_key.path[-1] for e in references.get_asset_materialization_events()} == {
            "customers",
            "orders",
            "labelled_tickets",
        }
    assert len(outbox_rows(data_env, "tickets_001.csv")) > 0  # the effect happened
    assert metadata(instance, "outbox")["audit_pending"] is True
    reason = json.loads((data_env / "quarantine" / "support" / "broken.parquet.reason.json").read_text())
    assert reason["audit"]["event"] == "batch_quarantined"
    assert support_audit(data_env, "outbox_written") == support_audit(data_env, "batch_quarantined") == []

    # The store is back: the next outbox step delivers what waited, each exactly once.
    for _ in range(2):
        assert materialize(
            [*SUPPORT_BATCH_ASSETS, *SUPPORT_REFERENCE_ASSETS],
            selection=[SUPPORT_BATCH_ASSETS[-1]],
            partition_key="tickets_001.csv",
            resources=resources,
            instance=instance,
        ).success
    written = support_audit(data_env, "outbox_written")
    assert [e.subject for e in written] == ["tickets_001.csv"] * 3  # one per outbox written, none lost
    assert len({e.event_id for e in written}) == 3
    assert [e.subject for e in support_audit(data_env, "batch_quarantined")] == ["broken.parquet"]
    promotions = support_audit(data_env, "model_promoted")
    assert len(promotions) == 1  # the first classifier; later versions are not promoted automatically
    assert "audit_seq" in metadata(instance, "outbox")
