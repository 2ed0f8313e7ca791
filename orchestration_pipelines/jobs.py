"""Jobs: named selections of assets that schedules, sensors and people launch.

Both fraud jobs run in one process: their steps form a straight chain (nothing to parallelise) that
hands sizeable DataFrames along, and a subprocess per step would cost more start-up time than the
steps themselves on small batches. Cross-run safety comes from the warehouse concurrency pool.
"""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job, in_process_executor

from assets.fraud import FRAUD_SCORING_ASSETS, FRAUD_TRAINING_ASSETS, account_state
from assets.fraud_lifecycle import no_stranded_batches
from assets.fraud_review import FRAUD_REVIEW_ASSETS
from assets.maintenance import MAINTENANCE_DAILY_ASSETS, MAINTENANCE_TRAINING_ASSETS
from assets.support import SUPPORT_BATCH_ASSETS, SUPPORT_REFERENCE_ASSETS

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
    selection=AssetSelection.assets(*MAINTENANCE_DAILY_ASSETS),
    executor_def=in_process_executor,
    tags={PLANT_DAYS_IN_ORDER_TAG: "one_at_a_time"},
    description="One plant day: readings, features, anomaly scores, staged alerts, check, work orders.",
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
    selection=AssetSelection.assets(*SUPPORT_BATCH_ASSETS),
    executor_def=in_process_executor,
    description="Triage one landed ticket file: contract, classification, routes, replies, outbox.",
)

support_training_job = define_asset_job(
    "support_training_job",
    selection=AssetSelection.assets(*SUPPORT_REFERENCE_ASSETS),
    executor_def=in_process_executor,
    description="Load customers, orders and labelled tickets; train the ticket classifier (promoted "
    "only if none is yet; later versions are promoted by a person).",
)
