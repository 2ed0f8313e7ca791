"""Fraud scoring assets.

Scoring, one dynamic partition per landed file:
``transactions -> features -> scores -> decisions_staging --(blocking checks)--> decisions``.
Model lifecycle, nightly: ``labelled_history -> model_candidate --(not worse)--> model``.
Domain logic lives in ``orchestration_pipelines.fraud``; this module is the Dagster wiring.
"""

from datetime import timedelta

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetRecordsFilter,
    Backoff,
    DagsterInstance,
    DynamicPartitionsDefinition,
    Failure,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
    asset_check,
    multi_asset_check,
)
from dagster_duckdb import DuckDBResource

from orchestration_pipelines.audit import append_audit_event
from orchestration_pipelines.fraud import current_model_baseline, train_builtin
from orchestration_pipelines.fraud.contract import ContractViolation, validate_transactions
from orchestration_pipelines.fraud.features import compute_features
from orchestration_pipelines.fraud.history import account_history
from orchestration_pipelines.fraud.model import MODEL_NAME, promotion_verdict
from orchestration_pipelines.fraud.policy import DECISIONS
from orchestration_pipelines.fraud.scoring import decision_counts, make_decisions, score_features
from orchestration_pipelines.fraud.validation import CHECK_NAMES, validate_staged_decisions
from orchestration_pipelines.landing import UnreadableFile, file_sha256, quarantine_file, read_table_file
from orchestration_pipelines.model_registry import ModelNotFound
from orchestration_pipelines.publish import publish_partition
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
                        "share": [n / total for n in counts.values()],
                    }
                ),
                4,
            )
        ),
    }


@asset(
    **_common,
    io_manager_key="warehouse_io_manager",
    kinds={"duckdb", "pandas"},
    freshness_policy=_nightly_retrain_freshness,
)
def labelled_history(context: AssetExecutionContext, landing: LandingZoneResource) -> pd.DataFrame:
    """Every labelled transaction in the history folder, checked against the data contract.

    Labels come from confirmed fraud (chargebacks, analyst verdicts); the model learns from these.
    """
    folder = landing.history(WORKFLOW)
    files = sorted(
        p for p in folder.glob("*") if p.suffix in (".csv", ".parquet") and not p.name.startswith(".")
    )
    if not files:
        raise Failure(
            f"no labelled history in {folder}: run `orchestration-pipelines generate-fraud-data` or copy "
            "labelled transaction files there",
            allow_retries=False,
        )
    try:
        history = validate_transactions(
            pd.concat([read_table_file(p) for p in files], ignore_index=True), True
        )
    except (ContractViolation, UnreadableFile) as exc:
        raise Failure(f"labelled history rejected: {exc}", allow_retries=False) from exc
    context.add_output_metadata(
        {
            "files": MetadataValue.json([p.name for p in files]),
            "fraud_rate": MetadataValue.float(float(history["is_fraud"].mean())),
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
    context: AssetExecutionContext, history: pd.DataFrame, model_registry: ModelRegistryResource
) -> dict:
    """A freshly trained model version, evaluated on the latest 20% of history beside the current model.

    Saved to the registry but not promoted: promotion waits for the comparison check.
    """
    registry = model_registry.registry()
    result = train_builtin(history)
    baseline = current_model_baseline(result, registry)
    card = {
        "feature_set": "builtin",
        "split": result.split,
        "metrics": result.metrics,
        "baseline": None if baseline is None else {"version": baseline.version, "metrics": baseline.metrics},
    }
    card["version"] = registry.save(MODEL_NAME, result.model, card)
    labels = result.holdout["is_fraud"].to_numpy()
    curves = {f"candidate {card['version']}": (result.model.predict(result.holdout)[0], labels)}
    if baseline is not None:
        curves[f"current {baseline.version}"] = (baseline.probability, labels)
    context.add_output_metadata(
        {
            "model_version": card["version"],
            "pr_auc": MetadataValue.float(result.metrics["pr_auc"]),
            "recall_at_1pct_fpr": MetadataValue.float(result.metrics["recall_at_1pct_fpr"]),
            "roc_auc": MetadataValue.float(result.metrics["roc_auc"]),
            "holdout_rows": MetadataValue.int(result.metrics["n_rows"]),
            "holdout_fraud_cases": MetadataValue.int(result.metrics["n_positive"]),
            "current_model_pr_auc": MetadataValue.float(baseline.metrics["pr_auc"]) if baseline else "none",
            "precision_recall": MetadataValue.md(precision_recall_plot(curves)),
        }
    )
    return card


@asset_check(
    asset=model_candidate, blocking=True, description="Refuses to promote a model worse than the current one."
)
def candidate_not_worse_than_current(model_candidate: dict) -> AssetCheckResult:
    baseline = model_candidate["baseline"]
    passed, why = promotion_verdict(model_candidate["metrics"], baseline["metrics"] if baseline else None)
    return AssetCheckResult(
        passed=passed,
        description=why,
        metadata={
            "candidate": model_candidate["version"],
            "current": baseline["version"] if baseline else "none",
        },
    )


@asset(**_model_asset, ins={"candidate": AssetIn(key=model_candidate.key)})
def model(
    context: AssetExecutionContext,
    candidate: dict,
    model_registry: ModelRegistryResource,
    opstore: OperationalStoreResource,
) -> MaterializeResult:
    """The promoted model version that scoring uses: an explicit, audited step after the check passed."""
    registry = model_registry.registry()
    previous = registry.current_version(MODEL_NAME)
    registry.promote(MODEL_NAME, candidate["version"])
    append_audit_event(
        opstore.store(),
        workflow=WORKFLOW,
        event="model_promoted",
        subject=candidate["version"],
        details={"previous": previous, "metrics": candidate["metrics"]},
        run_id=context.run.run_id,
    )
    return MaterializeResult(
        metadata={
            "model_version": candidate["version"],
            "previous_version": previous or "none",
            "pr_auc": MetadataValue.float(candidate["metrics"]["pr_auc"]),
            "recall_at_1pct_fpr": MetadataValue.float(candidate["metrics"]["recall_at_1pct_fpr"]),
        }
    )


@asset(**_batch_table)
def transactions(
    context: AssetExecutionContext, landing: LandingZoneResource, opstore: OperationalStoreResource
) -> pd.DataFrame:
    """One landed file, checked against the transaction contract.

    A file that cannot be read or breaks the contract is moved to quarantine with its reasons, the
    run fails saying why, and nothing downstream is written.
    """
    name = context.partition_key
    path = landing.landing(WORKFLOW) / name
    if not path.exists():
        raise Failure(f"landing file {path} not found (already quarantined or removed)", allow_retries=False)
    try:
        batch = validate_transactions(read_table_file(path))
    except (ContractViolation, UnreadableFile) as exc:
        errors = (
            exc.report.errors
            if isinstance(exc, ContractViolation)
            else [{"kind": "unreadable", "column": None, "message": str(exc), "examples": []}]
        )
        reason = {
            "workflow": WORKFLOW,
            "run_id": context.run.run_id,
            "sha256": file_sha256(path),
            "errors": errors,
        }
        target = quarantine_file(path, landing.quarantine(WORKFLOW), reason)
        append_audit_event(
            opstore.store(),
            workflow=WORKFLOW,
            event="batch_quarantined",
            subject=name,
            details=reason,
            run_id=context.run.run_id,
        )
        raise Failure(
            description=f"{name} rejected and moved to {target}: {exc}",
            metadata={"quarantined_to": str(target), "errors": MetadataValue.json(errors)},
            allow_retries=False,
        ) from exc
    sha = file_sha256(path)
    expected = context.run.tags.get(LANDING_SHA_TAG)
    if expected and sha != expected:
        context.log.warning(
            f"{name} changed since the sensor saw it; a new run will follow for the new content"
        )
    batch.insert(0, "batch_id", name)
    context.add_output_metadata(
        {
            "source_file": str(path),
            SOURCE_SHA_METADATA: sha,
            "accounts": MetadataValue.int(batch["account_id"].nunique()),
        }
    )
    return batch


def already_ingested(instance: DagsterInstance, name: str, sha256: str) -> bool:
    """Whether the latest ingest of partition ``name`` read exactly this content."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=transactions.key, asset_partitions=[name]), limit=1
    ).records
    if not records:
        return False
    metadata = records[0].asset_materialization.metadata
    return SOURCE_SHA_METADATA in metadata and metadata[SOURCE_SHA_METADATA].value == sha256


@asset(**_batch_table, deps=[labelled_history])
def features(
    context: AssetExecutionContext, transactions: pd.DataFrame, warehouse: DuckDBResource
) -> pd.DataFrame:
    """Risk features per transaction: velocity, amount against the account's habit, new device or
    merchant category, speed of country change, hour. Uses 30 days of account history for context."""
    with warehouse.get_connection() as con:
        history = account_history(con, transactions)
    if history is None:
        context.log.warning("no labelled history in the warehouse: features see only this batch")
    result = compute_features(transactions, history)
    result.insert(0, "batch_id", context.partition_key)
    context.add_output_metadata(
        {"history_rows_used": MetadataValue.int(0 if history is None else len(history))}
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
    except ModelNotFound as exc:
        raise Failure(str(exc), allow_retries=False) from exc
    scored = score_features(features, fraud_model, card["version"], fraud_policy.load())
    context.add_output_metadata(
        {
            "model_version": card["version"],
            "mean_risk": MetadataValue.float(float(scored["risk_score"].mean())),
        }
    )
    return scored


@asset(**_batch_table)
def decisions_staging(
    context: AssetExecutionContext, scores: pd.DataFrame, fraud_policy: FraudPolicyResource
) -> pd.DataFrame:
    """Decisions before publication: the blocking checks below must pass before ``decisions`` is written."""
    policy = fraud_policy.load()
    staged = make_decisions(scores, policy)
    context.add_output_metadata(
        {"policy_version": policy.version, **_queue_metadata(decision_counts(staged))}
    )
    return staged


@multi_asset_check(
    specs=[AssetCheckSpec(name, asset=decisions_staging, blocking=True) for name in CHECK_NAMES],
    ins={"staged": AssetIn(key=decisions_staging.key)},
    pool=WAREHOUSE_POOL,
)
def staged_decisions_checks(staged: pd.DataFrame, fraud_policy: FraudPolicyResource):
    """Schema, missing values, duplicate ids, score range and decision mix of the staged partition."""
    for name, outcome in validate_staged_decisions(staged, fraud_policy.load()).items():
        yield AssetCheckResult(
            check_name=name,
            asset_key=decisions_staging.key,
            passed=outcome.passed,
            severity=AssetCheckSeverity.ERROR,
            description=outcome.description,
            metadata=outcome.metadata,
        )


@asset(
    **{k: v for k, v in _batch_table.items() if k not in ("io_manager_key", "metadata")},
    deps=[decisions_staging],
)
def decisions(
    context: AssetExecutionContext,
    warehouse: DuckDBResource,
    opstore: OperationalStoreResource,
) -> MaterializeResult:
    """Published decisions, one queue per case (auto_clear, analyst_review, block_pending_approval),
    with the reason codes, model version and policy version that explain each one."""
    batch = context.partition_key
    with warehouse.get_connection() as con:
        rows = publish_partition(con, "fraud.decisions_staging", "fraud.decisions", "batch_id", batch)
        published = con.execute(
            "SELECT decision, count(*) FROM fraud.decisions WHERE batch_id = ? GROUP BY decision", [batch]
        ).fetchall()
        versions = con.execute(
            "SELECT any_value(model_version), any_value(policy_version) FROM fraud.decisions "
            "WHERE batch_id = ?",
            [batch],
        ).fetchall()[0]
        riskiest = con.execute(
            "SELECT transaction_id, account_id, amount, currency, round(risk_score, 3) AS risk, decision, "
            "reason_codes FROM fraud.decisions WHERE batch_id = ? ORDER BY risk_score DESC LIMIT 10",
            [batch],
        ).df()
    counts = {**dict.fromkeys(DECISIONS, 0), **dict(published)}
    append_audit_event(
        opstore.store(),
        workflow=WORKFLOW,
        event="batch_published",
        subject=batch,
        details={"rows": rows, "queues": counts, "model_version": versions[0], "policy_version": versions[1]},
        run_id=context.run.run_id,
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(rows),
            "dagster/table_name": "fraud.decisions",
            "model_version": versions[0] or "none",
            "policy_version": versions[1] or "none",
            **_queue_metadata(counts),
            "highest_risk_cases": MetadataValue.md(markdown_table(riskiest)),
        }
    )


FRAUD_ASSETS = [
    labelled_history,
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
FRAUD_TRAINING_ASSETS = [labelled_history, model_candidate, model]
