"""Wiring: the maintenance assets, check and resources materialised day by day on a Dagster instance."""

import json
import os

import duckdb
import pandas as pd
import pytest
from dagster import AssetKey, AssetRecordsFilter, instance_for_test, materialize
from maintenance_helpers import SMALL, small_plant, train_on_history, wiring_resources, write_plant_files
from webhook_server import FlakyReceiver

from assets.maintenance import MAINTENANCE_DAILY_ASSETS, staged_alerts_valid
from orchestration_pipelines.audit import read_audit_log
from orchestration_pipelines.maintenance.alerts import HUMAN_REVIEW, WORK_ORDER
from orchestration_pipelines.maintenance.anomaly import MODEL_NAME
from orchestration_pipelines.maintenance.work_orders import MaintenanceSystem
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.opstore import OpStore

DAYS = ["2026-11-07", "2026-11-08", "2026-11-09"]


@pytest.fixture
def plant_files(data_env, tmp_path):
    return write_plant_files(data_env, tmp_path)


def _query(data_env, sql, params=()):
    with duckdb.connect(str(data_env / "warehouse.duckdb")) as con:
        return con.execute(sql, list(params)).df()


def _metadata(instance, name: str, partition: str) -> dict:
    event = instance.get_latest_materialization_event(AssetKey(["maintenance", name]))
    assert event.asset_materialization.partition == partition
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@pytest.fixture(params=["sqlite", "postgresql"])
def opstore_backend(request, data_env, monkeypatch):
    """The operational store (work orders, notifications, audit) on SQLite, then on PostgreSQL."""
    if request.param == "postgresql":
        monkeypatch.setenv("OP_OPSTORE_URL", request.getfixturevalue("postgres_database")["url"])
    return request.param


def test_days_run_in_order_carry_state_and_open_each_work_order_once(data_env, plant_files, opstore_backend):
    with instance_for_test() as instance, FlakyReceiver(failures=2) as receiver:
        resources = wiring_resources(plant_files, receiver.url)
        assert train_on_history(instance, resources).success
        for day in DAYS:
            result = materialize(
                [*MAINTENANCE_DAILY_ASSETS, staged_alerts_valid],
                partition_key=day,
                resources=resources,
                instance=instance,
            )
            assert result.success
            check = result.get_asset_check_evaluations()[0]
            assert check.passed
        # Re-running a day (a retry, a backfill) publishes the same alerts and opens nothing new.
        rerun = materialize(
            [*MAINTENANCE_DAILY_ASSETS, staged_alerts_valid],
            partition_key=DAYS[1],
            resources=resources,
            instance=instance,
        )
        assert rerun.success
        readings_meta = _metadata(instance, "readings", DAYS[1])
        [last_day] = instance.fetch_materializations(
            AssetRecordsFilter(AssetKey(["maintenance", "readings"]), asset_partitions=[DAYS[2]]), limit=1
        ).records
        # The last day parses only the file that covers it (the index knows the others' days).
        last_day_files = {k: v.value for k, v in last_day.asset_materialization.metadata.items()}
        features_meta = _metadata(instance, "features", DAYS[1])

    alerts = _query(data_env, "SELECT * FROM maintenance.alerts ORDER BY alerted_at")
    assert set(alerts["day"]) <= set(DAYS) and len(alerts)
    assert WORK_ORDER in set(alerts["status"]) and HUMAN_REVIEW in set(alerts["status"])
    assert alerts.groupby("day")["run_id"].nunique().eq(1).all()  # each day: exactly one run's rows

    orders = MaintenanceSystem(OpStore(os.environ["OP_OPSTORE_URL"]), None).work_orders()
    keys = [o["work_order_key"] for o in orders]
    assert len(keys) == len(set(keys)) == (alerts["status"] == WORK_ORDER).sum()
    assert all(o["delivery"] == "delivered" for o in orders)
    audit = read_audit_log(OpStore(os.environ["OP_OPSTORE_URL"]), "maintenance")
    assert sorted(e.subject for e in audit if e.event == "work_order_opened") == sorted(keys)  # once each
    assert [e.subject for e in audit if e.event == "alerts_published"] == [*DAYS, DAYS[1]]
    assert [e.event for e in audit].count("batch_quarantined") == 1  # the record the reason file carries
    # Orders whose machine reported maintenance done after the alert were closed, each with its entry.
    closed = {o["work_order_key"] for o in orders if o["status"] == "closed"}
    assert closed and closed == {e.subject for e in audit if e.event == "work_order_closed"}
    done = small_plant().events.query("event == 'maintenance_end'")
    for order in (o for o in orders if o["work_order_key"] in closed):
        ends = done[done["machine_id"] == order["machine_id"]]["timestamp"]
        assert (ends > pd.Timestamp(order["alerted_at"])).any()
    assert set(receiver.accepted) >= set(keys)  # every order reached the system (notifications share it)
    payload = json.loads(orders[0]["payload"])
    assert (data_env / "evidence" / "maintenance").exists()
    assert payload["evidence_png"].endswith(".png") and payload["downtime_start"]
    caught = set(alerts.loc[alerts["status"] == WORK_ORDER, "machine_id"])
    failing = set(small_plant().failures["machine_id"])
    assert caught & failing

    # Bad input: quarantined whole or row by row, never silently lost, other files unaffected.
    quarantine = data_env / "quarantine" / "maintenance"
    assert (quarantine / "broken.csv").exists() and (quarantine / "broken.csv.reason.json").exists()
    rejected = pd.concat(pd.read_csv(p) for p in (quarantine / DAYS[0]).glob("rejected_rows.*.csv"))
    assert {"unknown_machine", "impossible_value"} <= set(rejected["reason"])
    assert "duplicate" in readings_meta["problems"]  # the re-sent file's rows were dropped as duplicates
    assert (last_day_files["files"], last_day_files["files_on_other_days"]) == (["plant_b.csv"], 2)
    assert features_meta["tail_windows_read"] > 0  # the previous day's last windows, not the history
    day_rows = _query(data_env, "SELECT count(*) AS n FROM maintenance.readings WHERE day = ?", [DAYS[0]])
    expected = small_plant().readings
    in_day = expected[expected["timestamp"].dt.strftime("%Y-%m-%d") == DAYS[0]]
    assert day_rows["n"].item() == len(in_day)


def test_the_check_judges_only_this_run_and_this_day(data_env, plant_files):
    with instance_for_test() as instance:
        resources = wiring_resources(plant_files, None)
        assert train_on_history(instance, resources).success
        first = materialize(
            [*MAINTENANCE_DAILY_ASSETS, staged_alerts_valid],
            partition_key=DAYS[1],
            resources=resources,
            instance=instance,
        )
        assert first.success
        with duckdb.connect(str(data_env / "warehouse.duckdb")) as con:  # junk from another run and day
            con.execute(
                "INSERT INTO maintenance.alerts_staging BY NAME SELECT * REPLACE ('bogus' AS status, "
                "'other-run' AS run_id), now() AS staged_at FROM maintenance.alerts"
            )
            con.execute(
                "INSERT INTO maintenance.alerts_staging BY NAME SELECT * REPLACE (9.0 AS confidence, "
                "'2026-11-09' AS day, '2026-11-09' AS batch_id), now() AS staged_at FROM maintenance.alerts"
            )
            junk = con.execute("SELECT count(*) FROM maintenance.alerts_staging").fetchone()[0]
        assert junk == 2 * (first.get_asset_check_evaluations()[0].metadata["alerts_checked"].value) > 0
        second = materialize(
            [*MAINTENANCE_DAILY_ASSETS, staged_alerts_valid],
            partition_key=DAYS[1],
            resources=resources,
            instance=instance,
        )
    assert second.success and second.get_asset_check_evaluations()[0].passed
    published = _query(data_env, "SELECT DISTINCT status, run_id FROM maintenance.alerts")
    assert "bogus" not in set(published["status"]) and set(published["run_id"]) == {second.run_id}
    assert SMALL.interval == "5min"


def test_a_day_whose_previous_day_was_not_alerted_fails_instead_of_forgetting_evidence(data_env, plant_files):
    from assets.maintenance import readings

    with instance_for_test() as instance:
        resources = wiring_resources(plant_files, None)
        assert train_on_history(instance, resources).success
        assert materialize([readings], partition_key=DAYS[0], resources=resources, instance=instance).success
        out_of_order = materialize(
            [*MAINTENANCE_DAILY_ASSETS, staged_alerts_valid],
            partition_key=DAYS[1],
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )
        assert not out_of_order.success
        failure = next(e for e in out_of_order.all_events if e.is_step_failure)
        assert (
            "2026-11-07 has readings but no published alert state yet"
            in failure.step_failure_data.error.message
        )
        assert instance.get_latest_materialization_event(AssetKey(["maintenance", "work_orders"])) is None


def test_new_anomaly_models_are_promoted_only_when_not_worse_on_the_same_holdout(
    data_env, plant_files, tmp_path
):
    registry = ModelRegistry(data_env / "models")
    with instance_for_test() as instance:
        resources = wiring_resources(plant_files, None)
        assert train_on_history(instance, resources).success
        first = registry.current_version(MODEL_NAME)
        again = train_on_history(instance, resources)  # the same history: equally good, promoted
        assert again.success and again.get_asset_check_evaluations()[0].passed
        second = registry.current_version(MODEL_NAME)
        assert second != first and registry.card(MODEL_NAME, second)["baseline"]["version"] == first

        plant = json.loads(plant_files.read_text())
        plant["machine_types"]["spindle"]["sensors"].remove("current")  # the plant changed its sensors
        changed = tmp_path / "changed_plant.yaml"
        changed.write_text(json.dumps(plant))
        refused = train_on_history(instance, wiring_resources(changed, None), raise_on_error=False)
        [check] = refused.get_asset_check_evaluations()
    assert not refused.success and not check.passed
    assert "no like-for-like comparison" in check.description and "spindle" in check.description
    assert registry.current_version(MODEL_NAME) == second  # scoring keeps the models it had
    audit = read_audit_log(OpStore(os.environ["OP_OPSTORE_URL"]), "maintenance")
    assert [e.subject for e in audit if e.event == "model_promoted"] == [first, second]
