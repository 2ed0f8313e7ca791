"""The Dagster side of raising a partition's review items, shared by every workflow's ``review_items``
asset: raise through ``orchestration_pipelines.review.raise_partition``, log, and report the counts."""

from collections.abc import Collection, Sequence

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.reporting import markdown_table
from orchestration_pipelines.review import ReviewRequest, load_review_policy, raise_partition


def raise_review_items(
    context: AssetExecutionContext,
    store: OpStore,
    requests: Sequence[ReviewRequest],
    *,
    workflow: str,
    kinds: Collection[str],
    extra_metadata: dict | None = None,
) -> MaterializeResult:
    """Raise the partition's items (nothing twice) and report items per kind, new and already open."""
    batch = context.partition_key
    raised = raise_partition(store, requests, workflow=workflow, batch_id=batch, kinds=kinds,
                             policy=load_review_policy(), run_id=context.run.run_id)  # fmt: skip
    if raised.superseded:
        context.log.warning(
            f"{batch}: {len(raised.superseded)} open item(s) whose case no longer needs a person"
        )
    context.log.info(f"{batch}: {len(raised.created)} item(s) raised, {len(raised.existing)} already open")
    per_kind = pd.DataFrame({"kind": list(raised.per_kind), "items": list(raised.per_kind.values())})
    return MaterializeResult(
        metadata={
            **{f"items_{kind}": MetadataValue.int(n) for kind, n in raised.per_kind.items()},
            "items_raised": MetadataValue.int(len(raised.created)),
            "items_already_raised": MetadataValue.int(len(raised.existing)),
            "open_items_no_longer_needed": MetadataValue.int(len(raised.superseded)),
            "review_policy_version": raised.policy_version,
            "items_per_kind": MetadataValue.md(markdown_table(per_kind)),
            **(extra_metadata or {}),
        }
    )
