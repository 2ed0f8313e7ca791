"""``orchestration-pipelines maintenance train``: bring a plant's own labelled history.

Readings with any sensors the plant file declares, the machines' failure times, optionally their event
logs (maintenance windows); the models learn from the healthy windows of the first part of the
history and the rest is replayed day by day exactly as the daily partitions run, with the same report
as the benchmark, the naive threshold rule beside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

NO_EVENTS = pd.DataFrame(columns=["machine_id", "timestamp", "event", "code"])


def add_parser(sub: argparse._SubParsersAction) -> None:
    maintenance = sub.add_parser("maintenance", help="predictive maintenance outside Dagster")
    maintenance_sub = maintenance.add_subparsers(dest="maintenance_command", required=True)
    train = maintenance_sub.add_parser("train", help="train and evaluate on your own plant's history")
    train.add_argument("readings", type=Path, help="CSV/Parquet: machine_id, timestamp, sensor columns")
    train.add_argument("--failures", type=Path, required=True, help="machine_id, failure_time[, onset]")
    train.add_argument("--plant", type=Path, required=True, help="the plant file (sensors, types, machines)")
    train.add_argument("--events", type=Path, help="event log with maintenance_start / maintenance_end")
    train.add_argument("--policy", type=Path, help="alerting policy (default: the packaged one)")
    train.add_argument("--train-fraction", type=float, default=0.5, help="share of the days to train on")
    train.add_argument(
        "--unknown-onset", default="7D", help="without an onset column, leave this much before a failure out"
    )
    train.add_argument("--promote", action="store_true", help="make these models the ones scoring uses")
    train.set_defaults(func=cmd_train)


def _table(path: Path) -> pd.DataFrame:
    from orchestration_pipelines.landing import read_table_file

    return read_table_file(path)


def cmd_train(args: argparse.Namespace) -> None:
    from orchestration_pipelines.audit import append_audit_event
    from orchestration_pipelines.maintenance.anomaly import MODEL_NAME
    from orchestration_pipelines.maintenance.plant import load_plant
    from orchestration_pipelines.maintenance.policy import load_maintenance_policy
    from orchestration_pipelines.maintenance.replay import naive_evaluation, replay
    from orchestration_pipelines.model_registry import ModelRegistry
    from orchestration_pipelines.opstore import OpStore
    from orchestration_pipelines.settings import default_opstore_url, paths

    plant, policy = load_plant(args.plant), load_maintenance_policy(args.policy)
    readings = _table(args.readings)
    failures = _table(args.failures)
    failures["failure_time"] = pd.to_datetime(failures["failure_time"], utc=True, format="ISO8601")
    if "onset" in failures:
        failures["onset"] = pd.to_datetime(failures["onset"], utc=True, format="ISO8601")
    else:
        failures["onset"] = failures["failure_time"] - pd.Timedelta(args.unknown_onset)
    events = _table(args.events) if args.events else NO_EVENTS.copy()
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True, format="ISO8601")

    stamps = pd.to_datetime(readings["timestamp"], utc=True, format="ISO8601")
    first, last = stamps.min().normalize(), stamps.max().normalize() + pd.Timedelta(days=1)
    train_until = first + ((last - first) * args.train_fraction).ceil("D")
    result = replay(readings, events, failures, plant, policy, train_until)
    naive = naive_evaluation(result.features, failures, plant, policy, train_until, margin=0.15)
    report = {
        "trained_before": str(train_until),
        "window_scores": result.score_evaluation.to_dict("records"),
        "workflow": result.evaluation,
        "naive_threshold_rule": naive,
        "alert_statuses": result.alerts["status"].value_counts().to_dict() if len(result.alerts) else {},
    }
    registry = ModelRegistry(paths().models)
    card = {"plant_version": plant.version, "policy_version": policy.version, "source": str(args.readings),
            "report": report}  # fmt: skip
    version = registry.save(MODEL_NAME, result.models, card)
    print(json.dumps({"version": version, **report}, indent=2, default=str))
    if args.promote:
        previous = registry.current_version(MODEL_NAME)
        registry.promote(MODEL_NAME, version)
        append_audit_event(OpStore(default_opstore_url()), workflow="maintenance", event="model_promoted",
                           subject=version, details={"previous": previous, "source": str(args.readings)},
                           actor="cli")  # fmt: skip
        print(f"promoted {version} (previous: {previous})")
