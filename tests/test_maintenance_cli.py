"""``maintenance train`` on a plant of its own: other sensors, failure times without onsets."""

import json

import yaml
from maintenance_helpers import small_plant

from orchestration_pipelines.audit import read_audit_log
from orchestration_pipelines.cli import main
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.opstore import OpStore


def test_train_and_evaluate_a_plant_with_its_own_sensors(data_env, tmp_path, capsys):
    sim = small_plant()
    plant = {
        "plant_id": "own-plant",
        "version": "7",
        "reading_interval": "5min",
        "sensors": {
            "bearing_vibration": {"unit": "mm/s", "min": 0, "max": 100},
            "casing_temperature": {"unit": "degC", "min": -40, "max": 250},
        },
        "machine_types": {
            "rotating": {"team": "reliability", "sensors": ["bearing_vibration", "casing_temperature"]}
        },
        "machines": dict.fromkeys(sim.plant.machines, "rotating"),
    }
    (tmp_path / "plant.yaml").write_text(yaml.safe_dump(plant))
    readings = sim.readings[["machine_id", "timestamp", "vibration", "temperature"]].rename(
        columns={"vibration": "bearing_vibration", "temperature": "casing_temperature"}
    )
    readings.to_parquet(tmp_path / "readings.parquet", index=False)
    sim.failures[["machine_id", "failure_time"]].to_csv(tmp_path / "failures.csv", index=False)
    sim.events.to_csv(tmp_path / "events.csv", index=False)

    main(
        [
            "maintenance", "train", str(tmp_path / "readings.parquet"),
            "--failures", str(tmp_path / "failures.csv"), "--plant", str(tmp_path / "plant.yaml"),
            "--events", str(tmp_path / "events.csv"), "--unknown-onset", "1D", "--promote",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    report = json.loads(out[: out.rindex("}") + 1])
    assert report["workflow"]["failures"] >= 3
    assert {"recall_at_lead_target", "median_lead_hours", "false_alarms_per_machine_week"} <= set(
        report["workflow"]
    )
    assert set(report["naive_threshold_rule"]) == set(report["workflow"])
    assert report["window_scores"][0]["machine_type"] == "rotating"
    registry = ModelRegistry(data_env / "models")
    assert registry.current_version("maintenance_anomaly") == report["version"]
    models, card = registry.load("maintenance_anomaly")
    assert models["rotating"].sensors == ("bearing_vibration", "casing_temperature")
    assert card["plant_version"] == "7"
    events = read_audit_log(OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}"), "maintenance")
    assert [e.event for e in events] == ["model_promoted"] and events[0].actor == "cli"
