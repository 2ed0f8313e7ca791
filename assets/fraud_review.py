"""``fraud/review_items``: the published cases that wait for a person, raised in the review inbox.

Thin Dagster layer over ``orchestration_pipelines.fraud.review`` and ``assets.review_raising``: read the
partition's published ``analyst_review`` and ``block_pending_approval`` cases, raise one item per case
(idempotent, so a re-run or a re-publication raises nothing twice), report the counts. A re-published
batch may route a case differently: its earlier item stays open for a person and is counted.
"""

from dagster import AssetExecutionContext, MaterializeResult, asset
from dagster_duckdb import DuckDBResource

from assets.fraud import _common, _connection, decisions, fraud_batches
from assets.review_raising import raise_review_items
from orchestration_pipelines.fraud.review import KIND_OF_DECISION, WORKFLOW, review_requests
from orchestration_pipelines.fraud.tables import PUBLISHED_TABLE
from resources.models import FraudPolicyResource
from resources.opstore import OperationalStoreResource


@asset(
    **_common,
    name="review_items",
    partitions_def=fraud_batches,
    deps=[decisions],
    kinds={"duckdb", "sqlalchemy"},
    description="Review items for the batch's analyst_review and block_pending_approval cases, with the "
    "score, reason codes, amount, account and policy thresholds a reviewer decides on.",
)
def review_items(
    context: AssetExecutionContext,
    warehouse: DuckDBResource,
    opstore: OperationalStoreResource,
    fraud_policy: FraudPolicyResource,
) -> MaterializeResult:
    batch = context.partition_key
    with _connection(warehouse) as con:
        cases = con.execute(
            f"SELECT * FROM {PUBLISHED_TABLE} WHERE batch_id = ? AND decision IN (?, ?) "
            "ORDER BY transaction_id",
            [batch, *KIND_OF_DECISION],
        ).df()
    return raise_review_items(
        context,
        opstore.store(),
        review_requests(cases, fraud_policy.load()),
        workflow=WORKFLOW,
        kinds=KIND_OF_DECISION.values(),
    )


FRAUD_REVIEW_ASSETS = [review_items]
