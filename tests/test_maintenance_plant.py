import pandas as pd
import pytest

from orchestration_pipelines.maintenance.plant import PlantConfigError, load_plant
from orchestration_pipelines.maintenance.policy import MaintenancePolicyError, load_maintenance_policy


def test_packaged_plant_declares_sensors_types_and_machines():
    plant = load_plant()
    assert plant.sensors["vibration"].unit == "mm/s"
    assert "pressure" not in plant.machine_types["spindle"].sensors
    assert plant.machine_type("SP-001").team == "machining"
    assert len(plant.source_sha256) == 64


def test_next_downtime_is_the_first_calendar_window_starting_after_the_time():
    plant = load_plant()  # Tuesday 06:00 for 4 h, Saturday 22:00 for 8 h
    monday = pd.Timestamp("2026-11-23T12:00Z")
    assert plant.next_downtime(monday) == (
        pd.Timestamp("2026-11-24T06:00Z"),
        pd.Timestamp("2026-11-24T10:00Z"),
    )
    tuesday_late = pd.Timestamp("2026-11-24T06:01Z")  # the window has begun: take the next one
    assert plant.next_downtime(tuesday_late)[0] == pd.Timestamp("2026-11-28T22:00Z")
    sunday = pd.Timestamp("2026-11-29T05:00Z")
    assert plant.next_downtime(sunday)[0] == pd.Timestamp("2026-12-01T06:00Z")


def test_a_plant_file_with_inconsistent_declarations_is_refused_with_every_problem(tmp_path):
    path = tmp_path / "plant.yaml"
    path.write_text(
        """
plant_id: p
version: 1
sensors:
  flow: {unit: l/min, min: 10, max: 5}
machine_types:
  mixer: {team: t, sensors: [flow, torque]}
machines:
  M-1: mixer
  M-2: oven
"""
    )
    with pytest.raises(PlantConfigError) as error:
        load_plant(path)
    message = str(error.value)
    assert "flow: min 10.0 is not below max 5.0" in message
    assert "torque" in message
    assert "M-2" in message


def test_a_plant_of_its_own_sensors_loads(tmp_path):
    path = tmp_path / "plant.yaml"
    path.write_text(
        """
plant_id: bottling
version: 3
reading_interval: 10s
sensors:
  torque: {unit: Nm, min: 0, max: 500}
machine_types:
  capper: {team: line-1, sensors: [torque]}
machines: {C-1: capper}
"""
    )
    plant = load_plant(path)
    assert plant.sensor_names == ["torque"]
    assert plant.reading_interval == pd.Timedelta(seconds=10)
    assert plant.downtime_windows == ()
    assert all(pd.isna(t) for t in plant.next_downtime(pd.Timestamp("2026-11-23T12:00Z")))


def test_policy_loads_and_rejects_inverted_hysteresis(tmp_path):
    policy = load_maintenance_policy()
    assert policy.exit_score <= policy.enter_score < policy.high_score
    text = (
        __import__("importlib.resources", fromlist=["files"])
        .files("orchestration_pipelines")
        .joinpath("policies/maintenance.yaml")
        .read_text()
    )
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace("exit_score: 1.1", "exit_score: 9"))
    with pytest.raises(MaintenancePolicyError, match="exit_score"):
        load_maintenance_policy(path)
