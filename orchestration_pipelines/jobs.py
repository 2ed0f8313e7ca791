"""Jobs: named selections of assets that schedules, sensors and people launch.

Both fraud jobs run in one process: their steps form a straight chain (nothing to parallelise) that
hands sizeable DataFrames along, and a subprocess per step would cost more start-up time than the
steps themselves on small batches. Cross-run safety comes from the warehouse concurrency pool.
"""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job, in_process_executor

from assets.fraud import FRAUD_SCORING_ASSETS, FRAUD_TRAINING_ASSETS
from assets.support import SUPPORT_BATCH_ASSETS

fraud_scoring_job = define_asset_job(
    "fraud_scoring_job",
    selection=AssetSelection.assets(*FRAUD_SCORING_ASSETS),
    executor_def=in_process_executor,
    description="Score one landed batch: ingest, features, scores, staged decisions, checks, publish.",
)

fraud_training_job = define_asset_job(
    "fraud_training_job",
    selection=AssetSelection.assets(*FRAUD_TRAINING_ASSETS),
    executor_def=in_process_executor,
    description="Retrain the fraud model on labelled history; promote it only if it is not worse.",
)

support_triage_job = define_asset_job(
    "support_triage_job",
    selection=AssetSelection.assets(*SUPPORT_BATCH_ASSETS),
    executor_def=in_process_executor,
    description="Triage one landed ticket file: contract, classification, routes, replies, outbox.",
)
