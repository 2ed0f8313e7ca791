"""``maintenance/review_items``: the day's low-confidence alerts, raised in the review inbox.

Thin Dagster layer over ``orchestration_pipelines.maintenance.review`` and ``assets.review_raising``:
read the day's published ``human_review`` alerts and scored windows, write each alert's evidence PNG
under the evidence folder (``OP_EVIDENCE_DIR``, the folder the inbox serves), then raise one item per
alert (idempotent: a re-run rewrites the same PNGs and raises nothing twice), report the counts.
"""

import os
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from dagster_duckdb import DuckDBResource

from assets.maintenance import _common, maintenance_days, work_orders
from assets.review_raising import raise_review_items
from orchestration_pipelines.maintenance.alerts import HUMAN_REVIEW
from orchestration_pipelines.maintenance.review import KIND, WORKFLOW, low_confidence_reviews
from orchestration_pipelines.settings import paths
from resources.maintenance import MaintenanceConfigResource
from resources.opstore import OperationalStoreResource
from resources.warehouse import WAREHOUSE_POOL


def _write_evidence(root: Path, relative: str, png: bytes) -> None:
    """Whole or not at all: the inbox may serve the file while a re-run rewrites it."""
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".png.partial")
    partial.write_bytes(png)
    os.replace(partial, target)


@asset(
    **_common,
    name="review_items",
    partitions_def=maintenance_days,
    deps=[work_orders],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "sqlalchemy"},
    description="Review items for the day's low-confidence alerts (a planner decides instead of a work "
    "order being opened), with the machine, its signals, score, confidence and the evidence plot.",
)
def review_items(
    context: AssetExecutionContext,
    maintenance_config: MaintenanceConfigResource,
    warehouse: DuckDBResource,
    opstore: OperationalStoreResource,
) -> MaterializeResult:
    day = context.partition_key
    with warehouse.get_connection() as con:
        alerts = con.execute(
            f"SELECT * FROM {WORKFLOW}.alerts WHERE day = ? AND status = ?", [day, HUMAN_REVIEW]
        ).df()
        machines = sorted(set(alerts["machine_id"]))
        scored = con.execute(
            f"SELECT * FROM {WORKFLOW}.anomaly_scores WHERE day = ? AND list_contains(?, machine_id)",
            [day, machines],
        ).df()
    alerts["alerted_at"] = pd.to_datetime(alerts["alerted_at"], utc=True)
    scored["window_start"] = pd.to_datetime(scored["window_start"], utc=True)
    reviews = low_confidence_reviews(
        alerts, scored, maintenance_config.plant(), maintenance_config.policy(), day
    )
    root = paths().evidence
    for review in reviews:
        _write_evidence(root, review.evidence_path, review.evidence_png)
    return raise_review_items(
        context,
        opstore.store(),
        [review.request for review in reviews],
        workflow=WORKFLOW,
        kinds=[KIND],
        extra_metadata={"evidence_plots": MetadataValue.int(len(reviews))},
    )


MAINTENANCE_REVIEW_ASSETS = [review_items]
