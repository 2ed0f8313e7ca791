"""``support/review_items``: the tickets that wait for a person, raised in the review inbox.

Thin Dagster layer over ``orchestration_pipelines.support.review`` and ``assets.review_raising``: read
the batch's outbox rows ``awaiting_approval`` and ``human_review`` with their ticket, classification,
route and reply, raise one item per ticket (idempotent: a re-run raises nothing twice), report counts.
"""

from dagster import AssetExecutionContext, MaterializeResult, asset
from dagster_duckdb import DuckDBResource

from assets.review_raising import raise_review_items
from assets.support import _common, outbox, support_batches
from orchestration_pipelines.support.review import KIND_OF_STATUS, WORKFLOW, review_requests
from orchestration_pipelines.support.tables import SCHEMA
from resources.opstore import OperationalStoreResource
from resources.warehouse import WAREHOUSE_POOL

CASES_SQL = f"""
SELECT o.batch_id, o.ticket_id, o.customer_id, t.channel, t.language, t.created_at, t.order_id, t.subject,
       t.body, o.status, o.reply, o.intent, o.route, o.answered_by, o.why, r.local_intent,
       r.local_confidence, r.urgency, c.urgency_confidence, c.intent_probabilities, r.risk,
       r.reason AS route_reason, r.escalated, r.router_policy_version, r.support_policy_version,
       r.classifier_version, r.prompt, p.source AS reply_source, p.article_ids, p.order_ids
FROM {SCHEMA}.outbox o
JOIN {SCHEMA}.raw_tickets t
  ON t.batch_id = o.batch_id AND t.ticket_id = o.ticket_id AND t.contract_status = 'accepted'
LEFT JOIN {SCHEMA}.routes r ON r.batch_id = o.batch_id AND r.ticket_id = o.ticket_id
LEFT JOIN {SCHEMA}.classification c ON c.batch_id = o.batch_id AND c.ticket_id = o.ticket_id
LEFT JOIN {SCHEMA}.replies p ON p.batch_id = o.batch_id AND p.ticket_id = o.ticket_id
WHERE o.batch_id = ? AND o.status IN (?, ?)
ORDER BY o.ticket_id
"""


@asset(
    **_common,
    name="review_items",
    partitions_def=support_batches,
    deps=[outbox],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "sqlalchemy"},
    description="Review items for the batch's replies awaiting approval (refunds, legal threats, account "
    "changes) and its tickets escalated to a person, with the redacted ticket, intent and urgency with "
    "their probabilities, route and reason, and the drafted reply with the articles it cites.",
)
def review_items(
    context: AssetExecutionContext, warehouse: DuckDBResource, opstore: OperationalStoreResource
) -> MaterializeResult:
    with warehouse.get_connection() as con:
        cases = con.execute(CASES_SQL, [context.partition_key, *KIND_OF_STATUS]).df()
    return raise_review_items(
        context, opstore.store(), review_requests(cases), workflow=WORKFLOW, kinds=KIND_OF_STATUS.values()
    )


SUPPORT_REVIEW_ASSETS = [review_items]
