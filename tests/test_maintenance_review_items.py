"""Maintenance raises its review items: the domain function on frames, and the asset day by day."""

import json
import os
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, instance_for_test, materialize
from maintenance_helpers import policy, small_plant, train_on_history, wiring_resources
from review_helpers import add_team
from test_maintenance_assets import DAYS, plant_files  # noqa: F401  (the fixture)

from assets.maintenance import MAINTENANCE_DAILY_ASSETS, staged_alerts_valid
from assets.maintenance_review import review_items
from orchestration_pipelines.audit import read_audit_log, verify_audit_chain
from orchestration_pipelines.maintenance.alerts import HUMAN_REVIEW, WORK_ORDER
from orchestration_pipelines.maintenance.features import median_column, rolling_column
from orchestration_pipelines.maintenance.review import low_confidence_reviews
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review import decide, list_items
from orchestration_pipelines.review.web.evidence import evidence_file

PNG = b"\x89PNG\r\n\x1a\n"


def _scored(machine: str, sensors, start="2026-11-08T06:00Z", windows=16) -> pd.DataFrame:
    times = pd.date_range(start, periods=windows, freq="15min", tz="UTC")
    frame = pd.DataFrame({"machine_id": machine, "window_start": times, "model_version": "m-7"})
    frame["anomaly_score"] = np.linspace(0.5, 2.5, windows)
    for i, sensor in enumerate(sensors):
        frame[median_column(sensor)] = np.arange(windows) + 10.0 * i
        frame[rolling_column(sensor)] = np.arange(windows) + 10.0 * i + 0.5
    return frame


def _alerts(**overrides) -> pd.DataFrame:
    base = {
        "machine_id": ["PU-001", "PU-002"],
        "machine_type": ["pump", "pump"],
        "team": ["pumps"] * 2,
        "episode_id": ["PU-001:20260808T0830", "PU-002:20260808T0830"],
        "alerted_at": pd.to_datetime(["2026-11-08T08:30Z"] * 2),
        "anomaly_score": [1.9, 4.0],
        "confidence": [0.31, 0.9],
        "status": [HUMAN_REVIEW, WORK_ORDER],
        "top_sensor": ["vibration", "temperature"],
        "downtime_start": pd.NaT,
        "downtime_end": pd.NaT,
        "policy_version": ["p-3"] * 2,
    }
    return pd.DataFrame({**base, **overrides})


def test_only_low_confidence_alerts_become_requests_with_signals_and_evidence():
    plant = small_plant().plant
    sensors = plant.machine_types["pump"].sensors
    scored = pd.concat([_scored("PU-001", sensors), _scored("PU-002", sensors)], ignore_index=True)
    (review,) = low_confidence_reviews(_alerts(), scored, plant, policy(), "2026-11-08")
    request = review.request
    assert (request.kind, request.case_id, request.model_version) == (
        "maintenance_low_confidence_alert",
        "PU-001:20260808T0830",
        "m-7",
    )
    context = request.context
    assert (context["machine_id"], context["confidence"], context["anomaly_score"]) == ("PU-001", 0.31, 1.9)
    unit = plant.sensors["vibration"].unit  # 08:30 is the 11th window; vibration the pump's 2nd sensor
    assert context["signals"]["vibration"] == {"median": 20.0, "trend": 20.5, "unit": unit}
    assert set(context["signals"]) == set(sensors) and context["batch_id"] == "2026-11-08"
    assert context["evidence_path"] == review.evidence_path == f"maintenance/2026-11-08/{request.item_id}.png"
    assert review.evidence_png.startswith(PNG) and "0.31" in request.reason
    json.dumps(context)
    again = low_confidence_reviews(_alerts(), scored, plant, policy(), "2026-11-08")
    assert again[0].request.input_sha256 == request.input_sha256
    louder = scored.assign(anomaly_score=scored["anomaly_score"] + 0.1)
    (changed,) = low_confidence_reviews(_alerts(), louder, plant, policy(), "2026-11-08")
    assert changed.request.input_sha256 != request.input_sha256  # the hash covers the scored windows
    assert low_confidence_reviews(_alerts().iloc[:0], scored.iloc[:0], plant, policy(), "2026-11-08") == []
    for outside in ("../../etc", "2026-11-08/..", "2026-13-01"):
        with pytest.raises(ValueError, match="not a day"):
            low_confidence_reviews(_alerts(), scored, plant, policy(), outside)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, data_env, monkeypatch, tmp_path):
    """The run's operational store (SQLite, then PostgreSQL) and an evidence folder of its own."""
    monkeypatch.setenv("OP_EVIDENCE_DIR", str(tmp_path / "served-evidence"))
    if request.param == "postgresql":
        monkeypatch.setenv("OP_OPSTORE_URL", request.getfixturevalue("postgres_database")["url"])
    return os.environ["OP_OPSTORE_URL"]


def _run_day(instance, resources, day):
    return materialize(
        [*MAINTENANCE_DAILY_ASSETS, staged_alerts_valid, review_items],
        partition_key=day,
        resources=resources,
        instance=instance,
    )


def _metadata(instance) -> dict:
    event = instance.get_latest_materialization_event(AssetKey(["maintenance", "review_items"]))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_the_asset_raises_each_low_confidence_alert_once_with_its_evidence_plot(
    data_env,
    plant_files,  # noqa: F811
    store_url,
    tmp_path,
):
    store, evidence_dir = OpStore(store_url), tmp_path / "served-evidence"
    with instance_for_test() as instance:
        resources = wiring_resources(plant_files, None)
        assert train_on_history(instance, resources).success
        for day in DAYS:
            assert _run_day(instance, resources, day).success
        with duckdb.connect(str(data_env / "warehouse.duckdb")) as con:
            alerts = con.execute("SELECT day, episode_id FROM maintenance.alerts WHERE status = ?",
                                 [HUMAN_REVIEW]).df()  # fmt: skip
        items = list_items(store, workflow="maintenance")
        assert len(alerts) and {(i.context["batch_id"], i.case_id) for i in items} == set(
            zip(alerts["day"], alerts["episode_id"], strict=True)
        )
        for item in items:
            assert (item.kind, item.required_role) == (
                "maintenance_low_confidence_alert",
                "maintenance_planner",
            )
            deadline = datetime.fromisoformat(item.deadline_at) - datetime.fromisoformat(item.created_at)
            assert deadline == timedelta(hours=12)
            assert {"machine_id", "signals", "anomaly_score", "confidence", "top_sensor"} <= set(item.context)
            assert item.context["confidence"] < 0.5 and item.model_version != "unknown"
            path = item.context["evidence_path"]
            assert not os.path.isabs(path)  # relative to the served folder, which the inbox resolves
            served = evidence_file(evidence_dir, path)
            assert served is not None and served.read_bytes().startswith(PNG)

        # Re-running the middle day, its neighbours present, raises nothing new and rewrites its plots.
        middle = [i for i in items if i.context["batch_id"] == DAYS[1]]
        assert _run_day(instance, resources, DAYS[1]).success
        rerun = _metadata(instance)
        assert (rerun["items_raised"], rerun["items_already_raised"]) == (0, len(middle))
        assert rerun["open_items_no_longer_needed"] == 0
    assert len(list_items(store, workflow="maintenance")) == len(items)
    assert not list(evidence_dir.rglob("*.partial"))
    raised = [e for e in read_audit_log(store, "maintenance") if e.event == "review_item_raised"]
    assert len(raised) == len(items) and verify_audit_chain(store) == []

    add_team(store)
    outcome = decide(store, items[0].item_id, "plan", "correct", "false_alarm")
    assert outcome.item.decision == "correct" and outcome.feedback_id
    assert items[0].item_id not in {i.item_id for i in list_items(store, workflow="maintenance")}
