"""Jobs: named selections of assets that schedules, sensors and people launch, and one op job that
applies the effects of review decisions (it reads and writes the outbox, not any asset).

Both fraud jobs run in one process: their steps form a straight chain (nothing to parallelise) that
hands sizeable DataFrames along, and a subprocess per step would cost more start-up time than the
steps themselves on small batches. Cross-run safety comes from the warehouse concurrency pool.
"""

from datetime import UTC, datetime, timedelta

from dagster import (
    AssetSelection,
    Config,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    define_asset_job,
    in_process_executor,
    job,
    op,
)

from assets.fraud import FRAUD_SCORING_ASSETS, FRAUD_TRAINING_ASSETS, account_state
from assets.fraud_lifecycle import no_stranded_batches
from assets.fraud_review import FRAUD_REVIEW_ASSETS
from assets.maintenance import MAINTENANCE_DAILY_ASSETS, MAINTENANCE_TRAINING_ASSETS
from assets.maintenance_review import MAINTENANCE_REVIEW_ASSETS
from assets.support import SUPPORT_BATCH_ASSETS, SUPPORT_REFERENCE_ASSETS
from assets.support_review import SUPPORT_REVIEW_ASSETS
from orchestration_pipelines.connectors import connectors_by_action
from orchestration_pipelines.review.actions import deliver_pending_actions
from resources.connectors import CardServiceResource, ReplySenderResource
from resources.maintenance import MaintenanceSystemResource
from resources.opstore import OperationalStoreResource

fraud_scoring_job = define_asset_job(
    "fraud_scoring_job",
    # The stranded-batches check looks across batches: the landing sensor reports it, not each run.
    selection=AssetSelection.assets(*FRAUD_SCORING_ASSETS, *FRAUD_REVIEW_ASSETS)
    - AssetSelection.checks(no_stranded_batches),
    executor_def=in_process_executor,
    description="Score one landed batch: ingest, features, scores, staged decisions, checks, publish, "
    "then raise review items for the cases that wait for a person.",
)

fraud_training_job = define_asset_job(
    "fraud_training_job",
    selection=AssetSelection.assets(*FRAUD_TRAINING_ASSETS),
    executor_def=in_process_executor,
    description="Retrain the fraud model on labelled history (and rebuild the account state from it); "
    "promote it only if it is not worse.",
)

fraud_account_state_rebuild_job = define_asset_job(
    "fraud_account_state_rebuild_job",
    selection=AssetSelection.assets(account_state),
    executor_def=in_process_executor,
    description="Rebuild the fraud account state from labelled history and published decisions.",
)

# A plant day continues the day before it (carried feature tail and alert state), so the instance's run
# queue admits one run with this tag at a time (deploy/*.yaml): a backfill's runs, queued in partition
# order, then run day after day.
PLANT_DAYS_IN_ORDER_TAG = "maintenance/plant_days"

maintenance_daily_job = define_asset_job(
    "maintenance_daily_job",
    selection=AssetSelection.assets(*MAINTENANCE_DAILY_ASSETS, *MAINTENANCE_REVIEW_ASSETS),
    executor_def=in_process_executor,
    tags={PLANT_DAYS_IN_ORDER_TAG: "one_at_a_time"},
    description="One plant day: readings, features, anomaly scores, staged alerts, check, work orders, "
    "then review items for the low-confidence alerts.",
)

maintenance_training_job = define_asset_job(
    "maintenance_training_job",
    selection=AssetSelection.assets(*MAINTENANCE_TRAINING_ASSETS),
    executor_def=in_process_executor,
    description="Train the per-type anomaly models on healthy maintenance history; promote them only "
    "if they are not worse than the current ones on the same hold-out.",
)

support_triage_job = define_asset_job(
    "support_triage_job",
    selection=AssetSelection.assets(*SUPPORT_BATCH_ASSETS, *SUPPORT_REVIEW_ASSETS),
    executor_def=in_process_executor,
    description="Triage one landed ticket file: contract, classification, routes, replies, outbox, then "
    "review items for the replies awaiting approval and the tickets escalated to a person.",
)

support_training_job = define_asset_job(
    "support_training_job",
    selection=AssetSelection.assets(*SUPPORT_REFERENCE_ASSETS),
    executor_def=in_process_executor,
    description="Load customers, orders and labelled tickets; train the ticket classifier (promoted "
    "only if none is yet; later versions are promoted by a person); calibrate the candidate router "
    "policy on its hold-out (run in shadow by the triage, promoted by a person).",
)


class DeliverActionsConfig(Config):
    max_attempts: int = 5  # delivery passes before an action fails and goes to a person
    backoff_seconds: float = 60.0  # wait after the first failed pass; doubles after each


@op(
    out=Out(Nothing),
    description="Deliver every due action of the outbox through its connector, once per idempotency key.",
)
def deliver_review_actions(
    context: OpExecutionContext,
    config: DeliverActionsConfig,
    opstore: OperationalStoreResource,
    card_service: CardServiceResource,
    reply_sender: ReplySenderResource,
    maintenance_system: MaintenanceSystemResource,
):
    connectors = connectors_by_action(
        card_service.connector(), reply_sender.connector(), maintenance_system.system()
    )
    summary = deliver_pending_actions(
        opstore.store(),
        connectors,
        now=datetime.now(UTC),
        max_attempts=config.max_attempts,
        backoff=timedelta(seconds=config.backoff_seconds),
        run_id=context.run_id,
    )
    for outcome in summary.outcomes:
        if outcome.outcome != "delivered":
            context.log.warning(f"{outcome.action} {outcome.action_id}: {outcome.outcome}: {outcome.detail}")
    yield Output(
        None,
        metadata={**summary.counts, "actions": MetadataValue.md(summary.markdown())},
    )


@job(
    executor_def=in_process_executor,
    description="Apply decided review actions: block or release cards, send replies, open work orders.",
    tags={"team": "review-ops"},
)
def review_apply_actions_job():
    deliver_review_actions()
