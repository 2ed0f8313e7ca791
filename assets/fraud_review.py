"""``fraud/review_items``: the published cases that wait for a person, raised in the review inbox.

Thin Dagster layer over ``orchestration_pipelines.fraud.review`` and ``orchestration_pipelines.review``:
read the partition's published ``analyst_review`` and ``block_pending_approval`` cases, raise one item
per case (idempotent, so a re-run or a re-publication raises nothing twice), report the counts.
"""

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from dagster_duckdb import DuckDBResource

from assets.fraud import _common, _connection, decisions, fraud_batches
from orchestration_pipelines.fraud.review import KIND_OF_DECISION, review_requests
from orchestration_pipelines.fraud.tables import PUBLISHED_TABLE
from orchestration_pipelines.reporting import markdown_table
from orchestration_pipelines.review import list_items, load_review_policy, raise_items
from resources.models import FraudPolicyResource
from resources.opstore import OperationalStoreResource

RAISE_CHUNK = 1000  # items per store transaction: a huge batch never holds the audit chain for long


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
    requests = review_requests(cases, fraud_policy.load())
    policy, store = load_review_policy(), opstore.store()
    created, existing = [], []
    for start in range(0, len(requests), RAISE_CHUNK):
        raised = raise_items(
            store, requests[start : start + RAISE_CHUNK], policy=policy, run_id=context.run.run_id
        )
        created += raised.created
        existing += raised.existing
    # A re-published batch may route a case differently (to no queue, or the other one): its earlier
    # item stays open for a person to close, and is counted here so the change is visible.
    wanted = {(r.case_id, r.kind) for r in requests}
    superseded = [
        item.item_id
        for item in list_items(store, workflow="fraud")
        if item.context.get("batch_id") == batch and (item.case_id, item.kind) not in wanted
    ]
    if superseded:
        context.log.warning(f"{batch}: {len(superseded)} open item(s) whose case no longer needs a person")
    kinds = pd.Series([r.kind for r in requests], dtype="object").value_counts()
    counts = {kind: int(kinds.get(kind, 0)) for kind in KIND_OF_DECISION.values()}
    context.log.info(f"{batch}: {len(created)} review item(s) raised, {len(existing)} already open")
    return MaterializeResult(
        metadata={
            **{f"items_{kind}": MetadataValue.int(n) for kind, n in counts.items()},
            "items_raised": MetadataValue.int(len(created)),
            "items_already_raised": MetadataValue.int(len(existing)),
            "open_items_no_longer_needed": MetadataValue.int(len(superseded)),
            "review_policy_version": policy.version,
            "items_per_kind": MetadataValue.md(
                markdown_table(pd.DataFrame({"kind": list(counts), "items": list(counts.values())}))
            ),
        }
    )


FRAUD_REVIEW_ASSETS = [review_items]
