"""Predictive-maintenance assets, one daily partition per UTC day.

``readings -> features -> anomaly_scores -> alerts --(blocking check)--> work_orders``, and the model
``anomaly_model`` trained on healthy history. Features and alerts carry a bounded state from the
previous day (the last windows, the per-machine alert state), so each depends on its own previous
partition and backfills run day after day. Alerts are staged with the run id; the check judges exactly
this day's and this run's rows, and ``work_orders`` publishes those rows, opens work orders through the
maintenance system (idempotent per machine and episode) and notifies the owning team.
Domain logic lives in ``orchestration_pipelines.maintenance``; this module is the Dagster wiring.
"""

import base64
import re
from pathlib import Path

import duckdb
import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetDep,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    Backoff,
    DailyPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    TimeWindowPartitionMapping,
    asset,
    asset_check,
)
from dagster_duckdb import DuckDBResource

from assets.audit_effects import audit_anchor, deliver_published_record, promotion_check_result
from orchestration_pipelines.audit import (
    AuditRecord,
    audit_record_for_quarantine,
    deliver_pending_audit_or_warn,
    deliver_quarantine_record,
    promote_with_audit,
)
from orchestration_pipelines.landing import (
    UnreadableFile,
    quarantine_file,
    read_table_file,
    scan_landing,
)
from orchestration_pipelines.learning.maintenance import refresh_thresholds, type_policies
from orchestration_pipelines.maintenance.alerts import HUMAN_REVIEW, SUPPRESSED, WORK_ORDER, track_alerts
from orchestration_pipelines.maintenance.anomaly import (
    MODEL_NAME,
    current_model_baseline,
    degrading_windows,
    evaluate_scores,
    promotion_verdict,
    score_features,
    train_models,
)
from orchestration_pipelines.maintenance.contract import ReadingsFileRejected, check_readings, days_in_file
from orchestration_pipelines.maintenance.evidence import evidence_png
from orchestration_pipelines.maintenance.features import day_features, maintenance_windows, median_column
from orchestration_pipelines.maintenance.replay import history_features
from orchestration_pipelines.maintenance.tables import replace_day
from orchestration_pipelines.maintenance.work_orders import MaintenanceSystem, orders_closed_by_events
from orchestration_pipelines.model_registry import ModelNotFound
from orchestration_pipelines.publish import discard_staged, publish_batch, read_staged, stage_rows
from orchestration_pipelines.reporting import markdown_table
from resources.landing import LandingZoneResource
from resources.maintenance import MaintenanceConfigResource, MaintenanceSystemResource, NotifierResource
from resources.models import ModelRegistryResource
from resources.opstore import OperationalStoreResource
from resources.warehouse import WAREHOUSE_POOL

WORKFLOW = "maintenance"
maintenance_days = DailyPartitionsDefinition(start_date="2026-01-01")
_retry = RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL)
_common = {"key_prefix": WORKFLOW, "group_name": WORKFLOW, "owners": ["team:maintenance-engineering"]}
_daily = {**_common, "partitions_def": maintenance_days, "pool": WAREHOUSE_POOL, "retry_policy": _retry}
_previous_day = TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
# Per-run staging (orchestration_pipelines.publish): a day is the batch; the publish step moves exactly
# the checked rows of its run into the published tables.
ALERTS_STAGING, ALERTS_TABLE = f"{WORKFLOW}.alerts_staging", f"{WORKFLOW}.alerts"
ALERT_STATE_STAGING, ALERT_STATE_TABLE = f"{WORKFLOW}.alert_state_staging", f"{WORKFLOW}.alert_state"


def _day(context) -> pd.Timestamp:
    return pd.Timestamp(context.partition_key, tz="UTC")


def _read(con: duckdb.DuckDBPyConnection, table: str, where: str, params: list, columns: str = "*"):
    """Rows of ``maintenance.<table>``, or None before the table's first day."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [WORKFLOW, table],
    ).fetchone()[0]
    return (
        con.execute(f"SELECT {columns} FROM {WORKFLOW}.{table} WHERE {where}", params).df()
        if exists
        else None
    )


def _landing_index(con: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    """Readings files seen before: name -> size, mtime_ns, sha256 (a ``scan_landing`` cursor) and days."""
    rows = _read(con, "landing_files", "true", [])
    if rows is None:
        return {}
    return {
        r["name"]: {
            "size": r["size"],
            "mtime_ns": r["mtime_ns"],
            "sha256": r["sha256"],
            "days": r["days"].split(","),
        }
        for r in rows.to_dict("records")
    }


def _remember_landing_days(con: duckdb.DuckDBPyConnection, files: list[tuple]) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {WORKFLOW}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {WORKFLOW}.landing_files (name VARCHAR PRIMARY KEY, size BIGINT, "
        "mtime_ns BIGINT, sha256 VARCHAR, days VARCHAR)"
    )
    if files:
        con.executemany(f"INSERT OR REPLACE INTO {WORKFLOW}.landing_files VALUES (?, ?, ?, ?, ?)", files)


def _events(landing: LandingZoneResource) -> pd.DataFrame:
    frames = [read_table_file(f.path) for f in scan_landing(landing.landing(WORKFLOW) / "events")]
    if not frames:
        return pd.DataFrame(columns=["machine_id", "timestamp", "event", "code"])
    events = pd.concat(frames, ignore_index=True)
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True, format="ISO8601")
    return events


@asset(**_common, kinds={"scikitlearn"})
def anomaly_model_candidate(
    context: AssetExecutionContext,
    landing: LandingZoneResource,
    maintenance_config: MaintenanceConfigResource,
    model_registry: ModelRegistryResource,
) -> dict:
    """Anomaly models per machine type, trained on the healthy windows of ``history/maintenance``
    (readings*, events*, and failures* with labelled onsets to leave out) before its last quarter, and
    evaluated on that quarter beside the current model. Saved to the registry, not promoted: promotion
    waits for the comparison check."""
    folder = landing.history(WORKFLOW)
    found = {
        kind: [read_table_file(p) for p in sorted(folder.glob(f"{kind}*"))]
        for kind in ("readings", "events", "failures")
    }
    if not found["readings"]:
        raise Failure(f"no readings history in {folder}", allow_retries=False)
    plant, policy = maintenance_config.plant(), maintenance_config.policy()
    events = (
        pd.concat(found["events"], ignore_index=True)
        if found["events"]
        else pd.DataFrame(columns=["machine_id", "timestamp", "event", "code"])
    )
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True, format="ISO8601")
    failures = (
        pd.concat(found["failures"], ignore_index=True)
        if found["failures"]
        else pd.DataFrame(columns=["machine_id", "onset", "failure_time"])
    )
    for column in ("onset", "failure_time"):
        failures[column] = pd.to_datetime(failures[column], utc=True, format="ISO8601")
    features = history_features(pd.concat(found["readings"], ignore_index=True), events, plant, policy)
    healthy = ~degrading_windows(features, failures, policy.window)
    holdout = features["window_start"] >= features["window_start"].quantile(0.75)
    training = healthy & ~holdout
    # The version saved is the one evaluated (as for fraud): it never saw its hold-out, so the next
    # candidate's hold-out, later in time, is new to both models and the comparison is like for like.
    models = train_models(features, plant, policy, training)
    evaluation = evaluate_scores(score_features(features[holdout], models), ~healthy[holdout])
    registry = model_registry.registry()
    try:
        current, current_card = registry.load(MODEL_NAME)
    except ModelNotFound:
        baseline = None
    else:
        baseline = current_model_baseline(current, current_card, models, features[holdout], ~healthy[holdout])
    card = {
        "plant_version": plant.version,
        "policy_version": policy.version,
        "trained_through": str(features.loc[training, "window_start"].max()),
        "holdout_evaluation": evaluation.to_dict("records"),
        "labelled_failures": len(failures),
        "baseline": baseline,
    }
    card["version"] = registry.save(MODEL_NAME, models, card)
    context.add_output_metadata(
        {
            "model_version": card["version"],
            "healthy_windows": MetadataValue.int(int(training.sum())),
            "holdout_evaluation": MetadataValue.md(markdown_table(evaluation)),
            "current_model": "none" if baseline is None else baseline["version"],
            "current_model_on_holdout": MetadataValue.md(
                markdown_table(pd.DataFrame(baseline["evaluation"]))
                if baseline and "evaluation" in baseline
                else (baseline or {}).get("not_comparable", "no current model")
            ),
        }
    )
    return card


@asset_check(
    asset=anomaly_model_candidate,
    blocking=True,
    description=(
        "Refuses to promote anomaly models that score the candidate's hold-out worse than the current "
        "ones (ROC-AUC, degrading and healthy windows above 1, per machine type), or that cannot be "
        "compared like for like."
    ),
)
def anomaly_candidate_not_worse(anomaly_model_candidate: dict) -> AssetCheckResult:
    candidate = anomaly_model_candidate
    verdict = promotion_verdict(candidate["holdout_evaluation"], candidate["baseline"])
    return promotion_check_result(candidate, verdict)


@asset(**_common, kinds={"scikitlearn"}, ins={"candidate": AssetIn(key=anomaly_model_candidate.key)})
def anomaly_model(
    context: AssetExecutionContext,
    candidate: dict,
    maintenance_config: MaintenanceConfigResource,
    model_registry: ModelRegistryResource,
    opstore: OperationalStoreResource,
) -> MaterializeResult:
    """The promoted anomaly models that scoring uses: promoted (with its audit record in the registry
    pointer) only after the comparison check passed; planners' false-alarm marks refresh the alert
    thresholds per machine type at the same time."""
    registry, store = model_registry.registry(), opstore.store()
    plant, policy = maintenance_config.plant(), maintenance_config.policy()
    deliver_pending_audit_or_warn(store, context.log, registry=registry)
    record, entry = promote_with_audit(
        registry,
        store,
        workflow=WORKFLOW,
        model_name=MODEL_NAME,
        version=candidate["version"],
        details={"evaluation": candidate["holdout_evaluation"]},
        run_id=context.run.run_id,
    )
    thresholds, thresholds_version = refresh_thresholds(
        store, registry, policy, plant.machines, context.run.run_id
    )
    return MaterializeResult(
        metadata={
            "model_version": candidate["version"],
            "previous_version": record.details["previous"] or "none",
            **audit_anchor(entry, retries_left=False),
            "holdout_evaluation": MetadataValue.md(
                markdown_table(pd.DataFrame(candidate["holdout_evaluation"]))
            ),
            "feedback_rows_used": MetadataValue.int(len(thresholds.feedback_ids)),
            "feedback_marks_per_type": MetadataValue.json(thresholds.marks),
            "alert_thresholds_version": thresholds_version or "none (no false-alarm marks)",
            "alert_thresholds_per_type": MetadataValue.json(thresholds.per_type),
        }
    )


@asset(**_daily, kinds={"duckdb", "pandas"})
def readings(
    context: AssetExecutionContext,
    landing: LandingZoneResource,
    maintenance_config: MaintenanceConfigResource,
    warehouse: DuckDBResource,
    opstore: OperationalStoreResource,
) -> MaterializeResult:
    """The day's readings from every landed file that covers it, checked against the plant.

    Which days a file covers is read once (its timestamp column) and kept in ``maintenance.landing_files``
    by name and content hash, so a day parses only the files that cover it, however many have landed.

    Exact duplicates (also across files: a re-sent file under a new name) are dropped; untrusted rows
    and values go to ``quarantine/maintenance/<day>/`` with their reasons; a file that cannot be read
    as readings at all is quarantined whole. Other machines and other days are never blocked.
    """
    day, plant = _day(context), maintenance_config.plant()
    kept, rejected, problems, used, newly_indexed, elsewhere = [], [], [], [], [], []
    with warehouse.get_connection() as con:
        index = _landing_index(con)
    for landed in scan_landing(landing.landing(WORKFLOW) / "readings", known=index):
        days = index[landed.name]["days"] if landed.name in index else None
        if index.get(landed.name, {}).get("sha256") != landed.sha256:
            try:
                days = days_in_file(landed.path) or None  # no readable time at all: parse, then quarantine
            except ValueError:
                days = None
            if days:
                newly_indexed.append(
                    (landed.name, landed.size, landed.mtime_ns, landed.sha256, ",".join(days))
                )
        if days and context.partition_key not in days:
            elsewhere.append(landed.name)  # its readings are all on other days: not parsed
            continue
        try:
            check = check_readings(read_table_file(landed.path), plant)
        except (ReadingsFileRejected, UnreadableFile) as exc:
            reason = {
                "workflow": WORKFLOW,
                "run_id": context.run.run_id,
                "sha256": landed.sha256,
                "errors": getattr(exc, "problems", [{"kind": "unreadable", "message": str(exc)}]),
            }
            reason = audit_record_for_quarantine(WORKFLOW, landed.name, reason, context.run.run_id)
            target = quarantine_file(landed.path, landing.quarantine(WORKFLOW), reason)
            deliver_quarantine_record(opstore.store(), reason, context.log)
            context.log.warning(f"{landed.name} quarantined to {target}: {exc}")
            continue
        rows = check.for_day(day)
        if rows.empty:
            continue
        used.append(landed.name)
        kept.append(rows)
        in_day = pd.to_datetime(check.rejected["timestamp"], utc=True, errors="coerce", format="ISO8601")
        rejected.append(
            check.rejected[in_day.isna() | (in_day.dt.normalize() == day)].assign(file=landed.name)
        )
        problems += [{**p, "file": landed.name} for p in check.problems if p["kind"] != "spans_days"]
    if len(kept) > 1:  # across files: a reading re-sent in another file, or two files disagreeing
        combined = check_readings(pd.concat(kept, ignore_index=True), plant)
        problems += [{**p, "file": "(all files)"} for p in combined.problems if p["kind"] != "spans_days"]
        rejected.append(combined.rejected.assign(file="(all files)"))
        day_readings = combined.readings
    else:  # one file's rows are already checked, deduplicated and sorted
        day_readings = kept[0] if kept else pd.DataFrame(columns=["machine_id", "timestamp"])
    quarantined = pd.concat(rejected, ignore_index=True) if rejected else pd.DataFrame()
    if len(quarantined):
        folder = landing.quarantine(WORKFLOW) / context.partition_key
        folder.mkdir(parents=True, exist_ok=True)
        quarantined.to_csv(folder / f"rejected_rows.{context.run.run_id}.csv", index=False)
    with warehouse.get_connection() as con:
        _remember_landing_days(con, newly_indexed)
        replace_day(
            con, f"{WORKFLOW}.readings", day_readings.assign(day=context.partition_key), context.partition_key
        )
    silent = sorted(set(plant.machines) - set(day_readings["machine_id"]))
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(len(day_readings)),
            "files": MetadataValue.json(used),
            "files_on_other_days": MetadataValue.int(len(elsewhere)),
            "machines_reporting": MetadataValue.int(day_readings["machine_id"].nunique()),
            "machines_silent_all_day": MetadataValue.json(silent),
            "rows_or_values_quarantined": MetadataValue.int(len(quarantined)),
            "problems": MetadataValue.md(
                markdown_table(pd.DataFrame(problems)[["file", "kind", "message"]]) if problems else "_none_"
            ),
        }
    )


@asset(
    **_daily,
    kinds={"duckdb", "pandas"},
    deps=[readings, AssetDep(AssetKey([WORKFLOW, "features"]), partition_mapping=_previous_day)],
)
def features(
    context: AssetExecutionContext,
    landing: LandingZoneResource,
    maintenance_config: MaintenanceConfigResource,
    warehouse: DuckDBResource,
) -> MaterializeResult:
    """Window medians and rolling trends per machine; reads the day plus the previous day's last windows."""
    day, plant, policy = _day(context), maintenance_config.plant(), maintenance_config.policy()
    medians = [median_column(s) for s in plant.sensor_names]
    tail_start = day - (policy.rolling_windows - 1) * policy.window
    with warehouse.get_connection() as con:
        # Through Arrow: a third of the CPU of ``.df()`` on a day of a large plant's readings.
        day_readings = (
            con.sql(f"SELECT * FROM {WORKFLOW}.readings WHERE day = ?", params=[context.partition_key])
            .to_arrow_table()
            .to_pandas()
        )
        tail = _read(
            con,
            "features",
            "window_start >= ? AND window_start < ?",
            [tail_start, day],
            columns=f"machine_id, window_start, {', '.join(medians)}",
        )
        if tail is not None:
            tail["window_start"] = pd.to_datetime(tail["window_start"], utc=True)
        day_readings["timestamp"] = pd.to_datetime(day_readings["timestamp"], utc=True)
        result, _ = day_features(
            day_readings, day, plant, policy, maintenance_windows(_events(landing)), tail
        )
        replace_day(
            con, f"{WORKFLOW}.features", result.assign(day=context.partition_key), context.partition_key
        )
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(len(result)),
            "tail_windows_read": MetadataValue.int(0 if tail is None else len(tail)),
            "dropout_windows": MetadataValue.int(int(result["dropout"].sum())),
            "maintenance_windows": MetadataValue.int(int(result["in_maintenance"].sum())),
        }
    )


@asset(**_daily, kinds={"duckdb", "scikitlearn"}, deps=[features, anomaly_model])
def anomaly_scores(
    context: AssetExecutionContext, warehouse: DuckDBResource, model_registry: ModelRegistryResource
) -> MaterializeResult:
    """Anomaly score per machine and window from the promoted per-type models (NaN when not scorable)."""
    try:
        models, card = model_registry.registry().load(MODEL_NAME)
    except ModelNotFound as exc:
        raise Failure(str(exc), allow_retries=False) from exc
    with warehouse.get_connection() as con:
        day_features_ = con.execute(
            f"SELECT * FROM {WORKFLOW}.features WHERE day = ?", [context.partition_key]
        ).df()
        day_features_["window_start"] = pd.to_datetime(day_features_["window_start"], utc=True)
        scored = score_features(day_features_, models).assign(model_version=card["version"])
        replace_day(con, f"{WORKFLOW}.anomaly_scores", scored, context.partition_key)
    return MaterializeResult(
        metadata={
            "model_version": card["version"],
            "windows_scored": MetadataValue.int(int(scored["anomaly_score"].notna().sum())),
            "windows_above_1": MetadataValue.int(int((scored["anomaly_score"] > 1).sum())),
        }
    )


def _evidence_md(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


@asset(
    **_daily,
    kinds={"duckdb"},
    deps=[anomaly_scores, AssetDep(AssetKey([WORKFLOW, "alerts"]), partition_mapping=_previous_day)],
)
def alerts(
    context: AssetExecutionContext,
    landing: LandingZoneResource,
    maintenance_config: MaintenanceConfigResource,
    maintenance_system: MaintenanceSystemResource,
    model_registry: ModelRegistryResource,
    warehouse: DuckDBResource,
) -> MaterializeResult:
    """Alerts with confidence and the per-machine alert state for the next day, both staged with this
    run's id for the blocking check. Work orders whose machine reported maintenance done since are
    closed first; machines with a work order still open are suppressed."""
    day, plant, policy = _day(context), maintenance_config.plant(), maintenance_config.policy()
    previous = (day - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    open_since, closed_at = _close_orders_after_maintenance(
        maintenance_system.system(), _events(landing), day + pd.Timedelta(days=1), context.run.run_id
    )
    with warehouse.get_connection() as con:
        scored = con.execute(
            f"SELECT * FROM {WORKFLOW}.anomaly_scores WHERE day = ?", [context.partition_key]
        ).df()
        scored["window_start"] = pd.to_datetime(scored["window_start"], utc=True)
        state = _read(con, "alert_state", "day = ?", [previous], columns="* EXCLUDE (day)")
        previous_readings = _read(con, "readings", "day = ?", [previous], columns="count(*) AS n")
        if state is None and previous_readings is not None and previous_readings["n"].item():
            raise Failure(
                f"{previous} has readings but no published alert state yet: its alerts must be published "
                "first, or today's evidence would silently start fresh. Run the days in order (see "
                "README, backfills).",
                allow_retries=False,
            )
        raised, next_state = track_alerts(
            scored,
            plant,
            policy,
            state,
            open_work_orders=open_since,
            closed_work_orders=closed_at,
            type_policies=type_policies(model_registry.registry(), policy),
        )
        for table, rows in ((ALERTS_STAGING, raised), (ALERT_STATE_STAGING, next_state)):
            stage_rows(
                con, table, rows.assign(day=context.partition_key), context.partition_key, context.run.run_id
            )
    counts = {s: int((raised["status"] == s).sum()) for s in (WORK_ORDER, HUMAN_REVIEW, SUPPRESSED)}
    metadata = {f"alerts_{status}": MetadataValue.int(n) for status, n in counts.items()}
    metadata["previous_day_state"] = (
        "carried" if state is not None and len(state) else "none (evidence starts fresh)"
    )
    metadata["work_orders_closed_by_maintenance"] = MetadataValue.int(len(closed_at))
    if len(raised):
        top = raised.sort_values("confidence", ascending=False).iloc[0]
        windows = scored[scored["machine_id"] == top["machine_id"]]
        metadata["evidence"] = MetadataValue.md(_evidence_md(evidence_png(windows, top, policy), "evidence"))
        metadata["alerts"] = MetadataValue.md(
            markdown_table(raised[["machine_id", "alerted_at", "status", "confidence", "top_sensor"]])
        )
    return MaterializeResult(metadata=metadata)


@asset_check(asset=alerts, blocking=True, description="Judges exactly this day's alerts staged by this run.")
def staged_alerts_valid(
    context: AssetCheckExecutionContext,
    maintenance_config: MaintenanceConfigResource,
    warehouse: DuckDBResource,
) -> AssetCheckResult:
    day, policy, plant = _day(context), maintenance_config.policy(), maintenance_config.plant()
    with warehouse.get_connection() as con:
        staged = read_staged(con, ALERTS_STAGING, context.partition_key, context.run.run_id)
    alerted = pd.to_datetime(staged["alerted_at"], utc=True)
    problems = {
        "alert outside its day": int(
            (~alerted.between(day, day + pd.Timedelta(days=1) + policy.window)).sum()
        ),
        "unknown status": int((~staged["status"].isin([WORK_ORDER, HUMAN_REVIEW, SUPPRESSED])).sum()),
        "confidence outside [0, 1]": int((~staged["confidence"].between(0, 1)).sum()),
        "work order without downtime in a plant with a calendar": int(
            ((staged["status"] == WORK_ORDER) & staged["downtime_start"].isna()).sum()
        )
        if plant.downtime_windows
        else 0,
        "unknown machine": int((~staged["machine_id"].isin(list(plant.machines))).sum()),
        "repeated episode and status": int(staged.duplicated(["episode_id", "status"]).sum()),
    }
    failed = {name: n for name, n in problems.items() if n}
    return AssetCheckResult(
        passed=not failed,
        description="; ".join(f"{n} {name}" for name, n in failed.items()) or f"{len(staged)} alerts valid",
        metadata={"alerts_checked": len(staged), "run_id": context.run.run_id},
    )


def _close_orders_after_maintenance(
    system: MaintenanceSystem, events: pd.DataFrame, until: pd.Timestamp, run_id: str
) -> tuple[dict[str, pd.Timestamp], dict[str, pd.Timestamp]]:
    """Close the open work orders whose machine reported maintenance done before ``until`` (each with
    its audit entry); returns (machine -> earliest open order's alert time, machine -> closing time)
    for the suppression of the day's alerts."""
    orders = system.open_order_list()
    closing = orders_closed_by_events(orders, events, until)
    for done in closing.itertuples(index=False):
        system.close_work_order(
            done.work_order_key,
            {"machine_id": done.machine_id, "closed_at": done.closed_at, "maintenance": done.code},
            run_id,
        )
    still_open = orders[~orders["work_order_key"].isin(closing["work_order_key"])]
    return (
        orders.groupby("machine_id")["alerted_at"].min().to_dict(),
        closing[~closing["machine_id"].isin(still_open["machine_id"])]
        .groupby("machine_id")["closed_at"]
        .max()
        .to_dict(),
    )


def _publication_record(day: str, run_id: str, policy_version: str):
    """The ``alerts_published`` record, written to the outbox by the publish transaction."""

    def record(con: duckdb.DuckDBPyConnection, rows: int) -> AuditRecord:
        statuses = con.execute(
            f"SELECT status, count(*) FROM {ALERTS_TABLE} WHERE batch_id = ? GROUP BY 1", [day]
        ).fetchall()
        return AuditRecord(
            event_id=f"alerts_published:{run_id}:{day}",
            workflow=WORKFLOW,
            event="alerts_published",
            subject=day,
            details={"rows": rows, "statuses": dict(statuses), "policy_version": policy_version},
            run_id=run_id,
        )

    return record


def _publish_alert_state(con: duckdb.DuckDBPyConnection, day: str, run_id: str) -> None:
    """In the publish transaction: the day's alert state becomes the one this run staged."""
    staged = f"SELECT * EXCLUDE (batch_id, run_id, staged_at) FROM {ALERT_STATE_STAGING}"
    con.execute(f"CREATE TABLE IF NOT EXISTS {ALERT_STATE_TABLE} AS {staged} LIMIT 0")
    con.execute(f"DELETE FROM {ALERT_STATE_TABLE} WHERE day = ?", [day])
    con.execute(
        f"INSERT INTO {ALERT_STATE_TABLE} BY NAME {staged} WHERE batch_id = ? AND run_id = ?", [day, run_id]
    )
    con.execute(f"DELETE FROM {ALERT_STATE_STAGING} WHERE batch_id = ? AND run_id = ?", [day, run_id])


def _when(downtime_start: pd.Timestamp) -> str:
    return (
        "none in the calendar, schedule by hand"
        if pd.isna(downtime_start)
        else f"{downtime_start:%a %d %b %H:%M}"
    )


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


@asset(**_daily, deps=[alerts])
def work_orders(
    context: AssetExecutionContext,
    landing: LandingZoneResource,
    maintenance_config: MaintenanceConfigResource,
    maintenance_system: MaintenanceSystemResource,
    notifier: NotifierResource,
    opstore: OperationalStoreResource,
    warehouse: DuckDBResource,
) -> MaterializeResult:
    """Publishes the checked alerts of this day and run (with the alert state the next day continues
    from and the audit record, in one transaction; an older run of the day never overwrites a newer
    one), opens a work order with evidence for each confident one (proposed into the next downtime
    window) and notifies the owning team; the others wait in human review (status column)."""
    policy, day, run_id = maintenance_config.policy(), context.partition_key, context.run.run_id
    store = opstore.store()
    with warehouse.get_connection() as con:
        deliver_pending_audit_or_warn(
            store, context.log, warehouse=con, quarantine_root=landing.quarantine(WORKFLOW)
        )
        publication = publish_batch(
            con,
            staging=ALERTS_STAGING,
            published=ALERTS_TABLE,
            batch_id=day,
            run_id=run_id,
            run_created_at=context.instance.get_run_record_by_id(run_id).create_timestamp,
            source_sha256=None,
            audit_record=_publication_record(day, run_id, policy.version),
            in_transaction=[_publish_alert_state],
            may_be_empty=True,
        )
        if publication.status == "superseded":
            for staging in (ALERTS_STAGING, ALERT_STATE_STAGING):  # valid, but they can never publish
                discard_staged(con, staging, day, run_id)
            raise Failure(
                f"{day}: superseded, run {publication.published_run_id} (created later) already published "
                "this day; nothing was changed and no work order was opened",
                metadata={"superseded_by_run": publication.published_run_id},
                allow_retries=False,
            )
        entry = deliver_published_record(con, store, publication.event_id, context.log)
        published = con.execute(f"SELECT * FROM {ALERTS_TABLE} WHERE batch_id = ?", [day]).df()
        scored = con.execute(f"SELECT * FROM {WORKFLOW}.anomaly_scores WHERE day = ?", [day]).df()
    for column in ("alerted_at", "downtime_start", "downtime_end"):
        published[column] = pd.to_datetime(published[column], utc=True)
    scored["window_start"] = pd.to_datetime(scored["window_start"], utc=True)
    system, team_notifier = maintenance_system.system(), notifier.notifier()
    evidence_dir = Path(landing.root) / "evidence" / WORKFLOW
    evidence_dir.mkdir(parents=True, exist_ok=True)
    opened, plots = [], {}
    for alert in published[published["status"] == WORK_ORDER].itertuples(index=False):
        row = pd.Series(alert._asdict())
        png = evidence_png(scored[scored["machine_id"] == alert.machine_id], row, policy)
        path = evidence_dir / f"{_safe(alert.episode_id)}.png"
        path.write_bytes(png)
        payload = {
            "machine_id": alert.machine_id,
            "team": alert.team,
            "episode_id": alert.episode_id,
            "alerted_at": alert.alerted_at,
            "confidence": alert.confidence,
            "top_sensor": alert.top_sensor,
            "downtime_start": alert.downtime_start,
            "downtime_end": alert.downtime_end,
            "evidence_png": str(path),
            "policy_version": alert.policy_version,
        }
        delivery = system.open_work_order(
            alert.episode_id,
            alert.machine_id,
            alert.team,
            alert.alerted_at.isoformat(),
            payload,
            context.run.run_id,
        )
        team_notifier.notify(
            alert.episode_id,
            alert.team,
            f"Work order for {alert.machine_id}",
            f"{alert.top_sensor} departs from its healthy level since {alert.alerted_at:%Y-%m-%d %H:%M} UTC "
            f"(confidence {alert.confidence:.2f}); downtime proposed: {_when(alert.downtime_start)}.",
        )
        opened.append(
            {
                "machine_id": alert.machine_id,
                "episode_id": alert.episode_id,
                "new": delivery.created,
                "delivered": delivery.delivered,
                "downtime_start": str(alert.downtime_start),
            }
        )
        plots.setdefault("evidence", _evidence_md(png, alert.episode_id))
    return MaterializeResult(
        metadata={
            "published_run_id": run_id,
            **audit_anchor(entry, retries_left=context.retry_number < _retry.max_retries),
            "alerts_published": MetadataValue.int(len(published)),
            "work_orders": MetadataValue.int(len(opened)),
            "human_review": MetadataValue.int(int((published["status"] == HUMAN_REVIEW).sum())),
            "suppressed": MetadataValue.int(int((published["status"] == SUPPRESSED).sum())),
            "work_order_list": MetadataValue.md(markdown_table(pd.DataFrame(opened)) if opened else "_none_"),
            **{k: MetadataValue.md(v) for k, v in plots.items()},
        }
    )


MAINTENANCE_DAILY_ASSETS = [readings, features, anomaly_scores, alerts, work_orders]
MAINTENANCE_TRAINING_ASSETS = [anomaly_model_candidate, anomaly_model]
MAINTENANCE_ASSETS = [*MAINTENANCE_TRAINING_ASSETS, *MAINTENANCE_DAILY_ASSETS]
MAINTENANCE_CHECKS = [anomaly_candidate_not_worse, staged_alerts_valid]
