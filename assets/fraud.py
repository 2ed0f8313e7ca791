"""Fraud scoring assets.

Scoring, one dynamic partition per landed file:
``transactions -> features -> scores -> decisions_staging --(blocking checks)--> decisions``.
Model lifecycle, nightly: ``labelled_history -> model_candidate --(not worse)--> model``.
Domain logic lives in ``orchestration_pipelines.fraud``; this module is the Dagster wiring.
"""

from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

import duckdb
import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetObservation,
    Backoff,
    DagsterEventType,
    DynamicPartitionsDefinition,
    Failure,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    TableColumn,
    TableSchema,
    asset,
    asset_check,
    multi_asset_check,
)
from dagster_duckdb import DuckDBResource

from assets.audit_effects import audit_anchor, deliver_published_record, promotion_check_result
from orchestration_pipelines.audit import (
    AuditRecord,
    append_audit_record,
    audit_record_for_quarantine,
    deliver_pending_audit_or_warn,
    deliver_quarantine_record,
)
from orchestration_pipelines.fraud import current_model_baseline, promote_model
from orchestration_pipelines.fraud.account_state import (
    features_from_state,
    load_state,
    rebuild_account_state,
    update_account_state,
)
from orchestration_pipelines.fraud.contract import (
    ContractViolation,
    check_transactions,
    validate_transactions,
)
from orchestration_pipelines.fraud.features import FEATURE_TABLE_CONTEXT
from orchestration_pipelines.fraud.model import MODEL_NAME, promotion_verdict
from orchestration_pipelines.fraud.policy import DECISIONS
from orchestration_pipelines.fraud.resent import apply_resent_policy, published_elsewhere
from orchestration_pipelines.fraud.scoring import (
    decision_counts,
    make_decisions,
    score_features,
    with_context,
)
from orchestration_pipelines.fraud.tables import PUBLISHED_TABLE, STAGING_TABLE
from orchestration_pipelines.fraud.validation import (
    CHECK_DESCRIPTIONS,
    validate_staged_decisions,
)
from orchestration_pipelines.landing import (
    UnreadableFile,
    UnsafeName,
    is_table_file,
    path_inside,
    quarantine_file,
    read_landed_bytes,
    read_table_file,
    validate_file_name,
)
from orchestration_pipelines.learning.feedback import mark_used, read_feedback, warehouse_cases
from orchestration_pipelines.learning.fraud import train_with_feedback
from orchestration_pipelines.model_registry import ModelUnavailable
from orchestration_pipelines.publish import NothingStaged, publish_batch, read_staged, stage_rows
from orchestration_pipelines.reporting import markdown_table, precision_recall_plot
from resources.landing import LandingZoneResource
from resources.models import FraudPolicyResource, ModelRegistryResource
from resources.opstore import OperationalStoreResource
from resources.warehouse import WAREHOUSE_POOL

WORKFLOW = "fraud"
fraud_batches = DynamicPartitionsDefinition(name="fraud_batches")
LANDING_SHA_TAG = "fraud/landing_sha256"  # run tag: the content the sensor saw
SOURCE_SHA_METADATA = "source_sha256"  # materialization metadata: the content that was ingested

# Transient DuckDB lock conflicts clear up; a rejected file or a missing model does not (Failure
# raised with allow_retries=False skips these retries).
_warehouse_retry = RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL)
# The nightly retrain lands about every 24 h: warn once it is an hour late, fail after a missed night.
_nightly_retrain_freshness = FreshnessPolicy.time_window(
    fail_window=timedelta(hours=26), warn_window=timedelta(hours=25)
)
_common = {
    "key_prefix": WORKFLOW,
    "group_name": WORKFLOW,
    "owners": ["team:fraud-ops"],
    "pool": WAREHOUSE_POOL,
    "retry_policy": _warehouse_retry,
}
_batch_table = {
    **_common,
    "partitions_def": fraud_batches,
    "io_manager_key": "warehouse_io_manager",
    "metadata": {"partition_expr": "batch_id"},
    "kinds": {"duckdb", "pandas"},
}


def _rounded(value: float) -> MetadataValue:
    """Metrics to four decimals: more digits are noise on hold-outs of this size."""
    return MetadataValue.float(round(float(value), 4))


def _queue_metadata(counts: dict[str, int]) -> dict[str, MetadataValue]:
    total = max(sum(counts.values()), 1)
    return {
        **{f"queue_{name}": MetadataValue.int(n) for name, n in counts.items()},
        "queue_shares": MetadataValue.md(
            markdown_table(
                pd.DataFrame(
                    {
                        "queue": list(counts),
                        "cases": list(counts.values()),
                        "share": [f"{n / total:.2%}" for n in counts.values()],
                    }
                )
            )
        ),
    }


@asset(
    **_common,
    io_manager_key="warehouse_io_manager",
    kinds={"duckdb", "pandas"},
    freshness_policy=_nightly_retrain_freshness,
)
def labelled_history(
    context: AssetExecutionContext, landing: LandingZoneResource, fraud_policy: FraudPolicyResource
) -> pd.DataFrame:
    """Every labelled transaction in the history folder, checked against the data contract.

    Labels come from confirmed fraud (chargebacks, analyst verdicts); the model learns from these.
    """
    folder = landing.history(WORKFLOW)
    files = sorted(p for p in folder.glob("*") if is_table_file(p))
    if not files:
        raise Failure(
            f"no labelled history in {folder}: run `orchestration-pipelines generate-fraud-data` or copy "
            "labelled transaction files there",
            allow_retries=False,
        )
    try:
        history = validate_transactions(
            pd.concat([read_table_file(p) for p in files], ignore_index=True),
            True,
            fraud_policy.load().intake,
        )
    except (ContractViolation, UnreadableFile) as exc:
        raise Failure(f"labelled history rejected: {exc}", allow_retries=False) from exc
    context.add_output_metadata(
        {
            "files": MetadataValue.json([p.name for p in files]),
            "fraud_rate": MetadataValue.text(f"{history['is_fraud'].mean():.3%}"),
            "first_transaction": str(history["timestamp"].min()),
            "last_transaction": str(history["timestamp"].max()),
        }
    )
    return history


# Model assets stay out of the warehouse pool: holding it through minutes of training would stall
# scoring runs, and the candidate's one read of the history waits out a writer's lock with back-off.
_model_asset = {
    "key_prefix": WORKFLOW,
    "group_name": WORKFLOW,
    "kinds": {"scikitlearn"},
    "owners": ["team:ml-platform"],
    "freshness_policy": _nightly_retrain_freshness,
}


@asset(**_model_asset, ins={"history": AssetIn(key=labelled_history.key)})
def model_candidate(
    context: AssetExecutionContext,
    history: pd.DataFrame,
    model_registry: ModelRegistryResource,
    opstore: OperationalStoreResource,
    warehouse: DuckDBResource,
) -> dict:
    """A freshly trained model version, evaluated on the latest 20% of history beside the current model.

    Analysts' corrected labels (the operational store's feedback) train it too, and are marked used by
    this version. Saved to the registry but not promoted: promotion waits for the comparison check.
    """
    registry = model_registry.registry()
    store = opstore.store()
    feedback = read_feedback(store, WORKFLOW)
    scored = None
    if len(feedback):
        with _connection(warehouse) as con:
            scored = warehouse_cases(con, "fraud.transactions", "transaction_id", feedback["case_id"])
    result, use = train_with_feedback(history, feedback, scored)
    baseline = current_model_baseline(result, registry)
    card = {
        "feature_set": "builtin",
        "split": result.split,
        "metrics": result.metrics,
        "selection": result.selection,
        "baseline": None if baseline is None else baseline.card_entry(),
        "feedback": use.card_entry(),
    }
    card["version"] = registry.save(MODEL_NAME, result.model, card)
    if use.used_ids:
        mark_used(store, use.used_ids, card["version"])
    labels = result.holdout["is_fraud"].to_numpy()
    curves = {f"candidate {card['version']}": (result.model.predict(result.holdout)[0], labels)}
    if baseline is not None and baseline.probability is not None:
        curves[f"current {baseline.version}"] = (baseline.probability, labels)
    if baseline is None:
        current = "none"
    else:
        current = baseline.version + (" (not comparable)" if baseline.not_comparable else "")
    context.add_output_metadata(
        {
            "model_version": card["version"],
            "pr_auc": _rounded(result.metrics["pr_auc"]),
            "pr_auc_95ci": str(result.metrics.get("pr_auc_ci", "narrow: many fraud cases")),
            "recall_at_1pct_fpr": _rounded(result.metrics["recall_at_1pct_fpr"]),
            "recall_at_1pct_fpr_95ci": str(result.metrics.get("recall_at_1pct_fpr_ci", "narrow")),
            "roc_auc": _rounded(result.metrics["roc_auc"]),
            "holdout_rows": MetadataValue.int(result.metrics["n_rows"]),
            "holdout_fraud_cases": MetadataValue.int(result.metrics["n_positive"]),
            "selected_config": MetadataValue.json(result.selection["chosen"]),
            "selection_why": result.selection["why"],
            "current_model": current,
            "current_model_pr_auc": _rounded(baseline.metrics["pr_auc"])
            if baseline and baseline.metrics
            else "none",
            "precision_recall": MetadataValue.md(precision_recall_plot(curves)),
            "feedback_rows_used": MetadataValue.int(len(use.used_ids)),
            "feedback_by_label": MetadataValue.json(use.by_label),
            "feedback_unmatched": MetadataValue.int(len(use.unmatched_ids)),
        }
    )
    return card


@asset_check(
    asset=model_candidate,
    blocking=True,
    description=(
        "Refuses to promote a candidate worse than the current model on the same hold-out (saying when a "
        "difference is within bootstrap noise), or one that cannot be compared like for like."
    ),
)
def candidate_not_worse_than_current(model_candidate: dict) -> AssetCheckResult:
    verdict = promotion_verdict(model_candidate["metrics"], model_candidate["baseline"])
    return promotion_check_result(model_candidate, verdict)


@asset(**_model_asset, ins={"candidate": AssetIn(key=model_candidate.key)})
def model(
    context: AssetExecutionContext,
    candidate: dict,
    model_registry: ModelRegistryResource,
    opstore: OperationalStoreResource,
) -> MaterializeResult:
    """The promoted model version that scoring uses: an explicit, audited step after the check passed."""
    registry = model_registry.registry()
    store = opstore.store()
    deliver_pending_audit_or_warn(store, context.log, registry=registry)
    record, entry = promote_model(
        store,
        candidate["version"],
        registry=registry,
        actor="system",
        run_id=context.run.run_id,
        details={"metrics": candidate["metrics"]},
    )
    return MaterializeResult(
        metadata={
            "model_version": candidate["version"],
            "previous_version": record.details["previous"] or "none",
            **audit_anchor(entry, retries_left=False),
            "pr_auc": _rounded(candidate["metrics"]["pr_auc"]),
            "recall_at_1pct_fpr": _rounded(candidate["metrics"]["recall_at_1pct_fpr"]),
        }
    )


@asset(**_batch_table)
def transactions(
    context: AssetExecutionContext,
    landing: LandingZoneResource,
    opstore: OperationalStoreResource,
    warehouse: DuckDBResource,
    fraud_policy: FraudPolicyResource,
) -> pd.DataFrame:
    """One landed file, checked against the transaction contract and the policy's intake rules.

    A file that cannot be read, breaks the contract or repeats published transactions (as the policy
    says) is moved to quarantine with its reasons, the run fails with a table of the problems, and
    nothing downstream is written. The partition key is a file name and never leaves the landing folder.
    """
    try:
        name = validate_file_name(context.partition_key)
        path = path_inside(landing.landing(WORKFLOW), name)
    except UnsafeName as exc:
        raise Failure(str(exc), allow_retries=False) from None
    if not path.exists():
        raise Failure(f"landing file {path} not found (already quarantined or removed)", allow_retries=False)
    intake = fraud_policy.load().intake
    payload, sha = read_landed_bytes(path)
    try:
        batch, notes = check_transactions(read_table_file(path, payload), intake=intake)
        with _connection(warehouse) as con:
            resent = published_elsewhere(con, batch["transaction_id"], name)
        batch, skipped = apply_resent_policy(batch, resent, intake.resent_transactions)
    except (ContractViolation, UnreadableFile) as exc:
        errors = (
            exc.report.errors
            if isinstance(exc, ContractViolation)
            else [{"kind": "unreadable", "column": None, "message": str(exc), "examples": []}]
        )
        reason = {"workflow": WORKFLOW, "run_id": context.run.run_id, "sha256": sha, "errors": errors}
        reason = audit_record_for_quarantine(WORKFLOW, name, reason, context.run.run_id)
        target = quarantine_file(path, landing.quarantine(WORKFLOW), reason)
        deliver_quarantine_record(opstore.store(), reason, context.log)
        _reject(context, name, target, errors)
    del payload  # a large file's bytes need not outlive its parsed frame
    notes += skipped
    expected = context.run.tags.get(LANDING_SHA_TAG)
    if expected and sha != expected:
        context.log.warning(
            f"{name} changed since the sensor saw it; a new run will follow for the new content"
        )
    if notes:
        # One entry per run and batch, however often the step is retried.
        append_audit_record(
            opstore.store(),
            AuditRecord(
                event_id=f"batch_accepted_with_notes:{context.run.run_id}:{name}",
                workflow=WORKFLOW,
                event="batch_accepted_with_notes",
                subject=name,
                details={"sha256": sha, "notes": notes},
                run_id=context.run.run_id,
            ),
        )
    batch.insert(0, "batch_id", name)
    context.add_output_metadata(
        {
            "source_file": str(path),
            SOURCE_SHA_METADATA: sha,
            "accounts": MetadataValue.int(batch["account_id"].nunique()),
            **_intake_metadata(notes),
        }
    )
    return batch


def _problems_table(problems: list[dict]) -> MetadataValue:
    frame = pd.DataFrame(problems, columns=["kind", "column", "message", "examples"])
    frame["column"] = frame["column"].fillna("")
    frame["examples"] = frame["examples"].map(lambda values: ", ".join(map(str, values or [])))
    return MetadataValue.md(markdown_table(frame))


def _intake_metadata(notes: list[dict]) -> dict[str, MetadataValue]:
    """What was accepted with a caveat: naive timestamps taken as UTC, re-sent rows skipped."""
    if not notes:
        return {}
    by_kind = {note["kind"]: note for note in notes}
    metadata = {"intake_notes": _problems_table(notes)}
    if "naive_timestamps_assumed_utc" in by_kind:
        metadata["naive_timestamps_assumed_utc"] = MetadataValue.int(
            by_kind["naive_timestamps_assumed_utc"]["rows"]
        )
    if "resent_rows_skipped" in by_kind:
        skipped = by_kind["resent_rows_skipped"]
        metadata["resent_rows_skipped"] = MetadataValue.int(skipped["rows"])
        metadata["resent_examples"] = MetadataValue.json(skipped["examples"])
        metadata["resent_from_batches"] = MetadataValue.json(skipped["batches"])
    return metadata


def _reject(context: AssetExecutionContext, name: str, target: Path, errors: list[dict]) -> NoReturn:
    """An expected rejection: the problems as a table on the partition and the failure, no traceback chain."""
    problems = _problems_table(errors)
    context.log_event(
        AssetObservation(
            asset_key=context.asset_key,
            partition=name,
            metadata={"quarantined_to": str(target), "problems": problems},
        )
    )
    raise Failure(
        description=f"{name} rejected and moved to {target}: " + "; ".join(e["message"] for e in errors),
        metadata={"quarantined_to": str(target), "problems": problems},
        allow_retries=False,
    ) from None


@asset(**_common, deps=[labelled_history], kinds={"duckdb"})
def account_state(warehouse: DuckDBResource) -> MaterializeResult:
    """What the features know of each account's and card's past (counts, amount statistics, devices,
    merchant categories and countries seen, recent transactions), rebuilt from labelled history and
    published decisions. Each publish of ``fraud/decisions`` updates it in the same transaction."""
    with warehouse.get_connection() as con:
        covered = rebuild_account_state(con)
    return MaterializeResult(
        metadata={
            "dagster/table_name": "fraud.account_state",
            "dagster/row_count": MetadataValue.int(covered["accounts"]),
            "cards": MetadataValue.int(covered["cards"]),
            "transactions_summarised": MetadataValue.int(covered["transactions"]),
        }
    )


@asset(**_batch_table, deps=[account_state])
def features(
    context: AssetExecutionContext, transactions: pd.DataFrame, warehouse: DuckDBResource
) -> pd.DataFrame:
    """Risk features per transaction: velocity, amount against the account's habit, new device or
    merchant category, speed of country change, hour. Reads the batch's accounts' stored state, so its
    cost follows the batch, not the history. Keyed by ``transaction_id``; the transaction's other
    columns stay in ``fraud/transactions``."""
    with warehouse.get_connection() as con:
        state = load_state(con, transactions, context.partition_key)
    if not state.transactions:
        context.log.warning("no account state for this batch's accounts: features see only this batch")
    result = features_from_state(transactions, state, FEATURE_TABLE_CONTEXT)
    result.insert(0, "batch_id", context.partition_key)
    context.add_output_metadata(
        {
            "accounts_with_state": MetadataValue.int(len(state.accounts)),
            "history_transactions_summarised": MetadataValue.int(state.transactions),
        }
    )
    return result


@asset(**_batch_table, deps=[model])  # lineage only: the model is loaded from the registry
def scores(
    context: AssetExecutionContext,
    features: pd.DataFrame,
    model_registry: ModelRegistryResource,
    fraud_policy: FraudPolicyResource,
) -> pd.DataFrame:
    """Risk per transaction from the promoted model, the anomaly detector and the policy rules,
    with the reason codes that explain it."""
    try:
        fraud_model, card = model_registry.registry().load(MODEL_NAME)
    except ModelUnavailable as exc:
        raise Failure(str(exc), allow_retries=False) from exc
    scored = score_features(features, fraud_model, card["version"], fraud_policy.load())
    context.add_output_metadata(
        {
            "model_version": card["version"],
            "mean_risk": _rounded(float(scored["risk_score"].mean())),
        }
    )
    return scored


@contextmanager
def _connection(warehouse: DuckDBResource) -> Iterator[duckdb.DuckDBPyConnection]:
    """``warehouse.get_connection()``, closed on an error too: the resource closes it only on success, and a
    connection left open blocks every other connection of the process with a different configuration."""
    with warehouse.get_connection() as con, closing(con):
        yield con


def _run_lineage(context) -> list[str]:
    """This run's id, then its parent's and so on: a re-execution from failure reuses earlier steps."""
    run, lineage = context.run, [context.run.run_id]
    while run.parent_run_id:
        run = context.instance.get_run_by_id(run.parent_run_id)
        lineage.append(run.run_id)
    return lineage


def _materialization_in_lineage(context, key: AssetKey) -> tuple[str, dict] | None:
    """(run id, metadata) of the nearest materialization of ``key`` in this run or its ancestors."""
    for run_id in _run_lineage(context):
        for entry in context.instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
            if entry.asset_materialization.asset_key == key:
                return run_id, {k: v.value for k, v in entry.asset_materialization.metadata.items()}
    return None


def _staging_run_id(context) -> str:
    """The run whose staged rows this run checks and publishes (itself unless it re-executes)."""
    staged = _materialization_in_lineage(context, decisions_staging.key)
    if staged is None:
        raise Failure(f"{context.partition_key}: no staged decisions in this run", allow_retries=False)
    return staged[0]


@asset(**{k: v for k, v in _batch_table.items() if k not in ("io_manager_key", "metadata")})
def decisions_staging(
    context: AssetExecutionContext,
    transactions: pd.DataFrame,
    scores: pd.DataFrame,
    fraud_policy: FraudPolicyResource,
    warehouse: DuckDBResource,
) -> MaterializeResult:
    """Decisions before publication with their transactions' context, staged under this run's id: the
    blocking checks below judge exactly these rows, and only they can be published."""
    policy = fraud_policy.load()
    staged = make_decisions(with_context(transactions, scores), policy)
    with _connection(warehouse) as con:
        rows = stage_rows(con, STAGING_TABLE, staged, context.partition_key, context.run.run_id)
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(rows),
            "run_id": context.run.run_id,
            "policy_version": policy.version,
            **_queue_metadata(decision_counts(staged)),
        }
    )


@multi_asset_check(
    specs=[
        AssetCheckSpec(name, asset=decisions_staging, blocking=True, description=description)
        for name, description in CHECK_DESCRIPTIONS.items()
    ],
    pool=WAREHOUSE_POOL,
)
def staged_decisions_checks(
    context: AssetCheckExecutionContext, warehouse: DuckDBResource, fraud_policy: FraudPolicyResource
):
    """Schema, missing values, duplicate ids, score range and decision mix of exactly the rows this run
    staged for its partition (never other batches or other runs of the same batch)."""
    batch, run_id = context.partition_key, _staging_run_id(context)
    with _connection(warehouse) as con:
        staged = read_staged(con, STAGING_TABLE, batch, run_id)
        elsewhere = published_elsewhere(con, staged["transaction_id"], batch)
    for name, outcome in validate_staged_decisions(staged, fraud_policy.load(), elsewhere).items():
        yield AssetCheckResult(
            check_name=name,
            asset_key=decisions_staging.key,
            passed=outcome.passed,
            severity=AssetCheckSeverity.ERROR,
            description=outcome.description,
            metadata={**outcome.metadata, "batch_id": batch, "staged_by_run": run_id},
        )


def _publication_record(batch: str, run_id: str) -> Callable[[duckdb.DuckDBPyConnection, int], AuditRecord]:
    def record(con: duckdb.DuckDBPyConnection, rows: int) -> AuditRecord:
        queues, versions = _published_summary(con, batch)
        return AuditRecord(
            event_id=f"batch_published:{run_id}:{batch}",
            workflow=WORKFLOW,
            event="batch_published",
            subject=batch,
            details={
                "rows": rows,
                "queues": queues,
                "model_version": versions[0],
                "policy_version": versions[1],
            },
            run_id=run_id,
        )

    return record


def _published_summary(con: duckdb.DuckDBPyConnection, batch: str) -> tuple[dict[str, int], tuple]:
    published = con.execute(
        f"SELECT decision, count(*) FROM {PUBLISHED_TABLE} WHERE batch_id = ? GROUP BY decision", [batch]
    ).fetchall()
    versions = con.execute(
        "SELECT any_value(model_version), any_value(policy_version) "
        f"FROM {PUBLISHED_TABLE} WHERE batch_id = ?",
        [batch],
    ).fetchall()[0]
    return {**dict.fromkeys(DECISIONS, 0), **dict(published)}, versions


# The cases people work on: the riskiest blocks and reviews, one row per account (with how many of its
# cases share that queue), so one account's burst does not fill the preview.
_CASES_FOR_PEOPLE_SQL = f"""
WITH queued AS (
    SELECT *, row_number() OVER (PARTITION BY decision, account_id ORDER BY risk_score DESC) AS nth,
              count(*) OVER (PARTITION BY decision, account_id) AS account_cases
    FROM {PUBLISHED_TABLE}
    WHERE batch_id = ? AND decision IN ('block_pending_approval', 'analyst_review')
), queue_leaders AS (
    SELECT *, row_number() OVER (PARTITION BY decision ORDER BY risk_score DESC) AS rank_in_queue
    FROM queued WHERE nth = 1
)
SELECT decision, transaction_id, account_id, account_cases, amount, currency,
       round(risk_score, 3) AS risk, reason_codes
FROM queue_leaders WHERE rank_in_queue <= ?
ORDER BY decision = 'block_pending_approval' DESC, risk_score DESC
"""
PREVIEW_CASES_PER_QUEUE = 5


def _cases_for_people(con: duckdb.DuckDBPyConnection, batch: str) -> pd.DataFrame:
    return con.execute(_CASES_FOR_PEOPLE_SQL, [batch, PREVIEW_CASES_PER_QUEUE]).df()


def _column_schema(con: duckdb.DuckDBPyConnection, table: str) -> MetadataValue:
    """The published table's columns and types, shown on the asset's page in the UI."""
    columns = con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall()
    return MetadataValue.table_schema(TableSchema([TableColumn(name, kind) for name, kind in columns]))


@asset(
    **{k: v for k, v in _batch_table.items() if k not in ("io_manager_key", "metadata")},
    deps=[decisions_staging],
)
def decisions(
    context: AssetExecutionContext,
    warehouse: DuckDBResource,
    opstore: OperationalStoreResource,
    landing: LandingZoneResource,
) -> MaterializeResult:
    """Published decisions, one queue per case (auto_clear, analyst_review, block_pending_approval),
    with the reason codes, model version and policy version that explain each one."""
    batch, run_id = context.partition_key, _staging_run_id(context)
    ingested = _materialization_in_lineage(context, transactions.key)
    source_sha = (ingested[1] if ingested else {}).get(SOURCE_SHA_METADATA) or context.run.tags.get(
        LANDING_SHA_TAG
    )
    store = opstore.store()
    with _connection(warehouse) as con:
        deliver_pending_audit_or_warn(
            store, context.log, warehouse=con, quarantine_root=landing.quarantine(WORKFLOW)
        )
        try:
            publication = publish_batch(
                con,
                staging=STAGING_TABLE,
                published=PUBLISHED_TABLE,
                batch_id=batch,
                run_id=run_id,
                run_created_at=context.instance.get_run_record_by_id(run_id).create_timestamp,
                source_sha256=source_sha,
                audit_record=_publication_record(batch, run_id),
                in_transaction=[update_account_state],
            )
        except NothingStaged as exc:
            raise Failure(str(exc), allow_retries=False) from exc
        if publication.status == "superseded":
            raise Failure(
                f"{batch}: superseded, run {publication.published_run_id} (created later, newer content) "
                "already published this batch; nothing was changed",
                metadata={"superseded_by_run": publication.published_run_id},
                allow_retries=False,
            )
        entry = deliver_published_record(con, store, publication.event_id, context.log)
        counts, versions = _published_summary(con, batch)
        for_people = _cases_for_people(con, batch)
        column_schema = _column_schema(con, PUBLISHED_TABLE)
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(publication.rows),
            "dagster/table_name": PUBLISHED_TABLE,
            SOURCE_SHA_METADATA: source_sha or "unknown",
            "published_run_id": run_id,
            **audit_anchor(entry, retries_left=context.retry_number < _warehouse_retry.max_retries),
            "model_version": versions[0] or "none",
            "policy_version": versions[1] or "none",
            **_queue_metadata(counts),
            "highest_risk_cases": MetadataValue.md(markdown_table(for_people)),
            "dagster/column_schema": column_schema,
        }
    )


FRAUD_ASSETS = [
    labelled_history,
    account_state,
    model_candidate,
    model,
    transactions,
    features,
    scores,
    decisions_staging,
    decisions,
]
FRAUD_CHECKS = [candidate_not_worse_than_current, staged_decisions_checks]
FRAUD_SCORING_ASSETS = [transactions, features, scores, decisions_staging, decisions]
FRAUD_TRAINING_ASSETS = [labelled_history, account_state, model_candidate, model]
