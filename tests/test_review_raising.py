"""raise_partition, shared by every workflow's review_items asset, on SQLite and PostgreSQL."""

import pytest
from review_helpers import request

from orchestration_pipelines.review import list_items, raise_partition

FRAUD_KINDS = ("fraud_analyst_review", "fraud_block_pending_approval")


def _raise(store, requests, batch_id="batch-1.csv", **kwargs):
    return raise_partition(store, requests, workflow="fraud", batch_id=batch_id, kinds=FRAUD_KINDS, **kwargs)


def test_a_partition_is_raised_in_chunks_once_and_counted_per_kind(opstore):
    first = [request(f"T{i}") for i in range(5)] + [request("R1", kind="fraud_analyst_review")]
    raised = _raise(opstore, first, chunk=2)
    assert len(raised.created) == 6 and raised.existing == [] and raised.superseded == []
    assert raised.per_kind == {"fraud_block_pending_approval": 5, "fraud_analyst_review": 1}
    other = _raise(opstore, [request("T0", batch_id="batch-2.csv")], batch_id="batch-2.csv")
    assert other.created == [] and len(other.existing) == 1  # same case and kind: the item exists

    # The re-run routes T4 elsewhere and adds T9: T4's item stays open and is counted as superseded,
    # the other partition's items are none of this partition's business.
    again = _raise(opstore, [*first[:4], first[5], request("T9")], chunk=4)
    assert (len(again.created), len(again.existing)) == (1, 5)
    assert again.superseded == [first[4].item_id] and again.per_kind["fraud_block_pending_approval"] == 5
    assert len(list_items(opstore, workflow="fraud")) == 7


def test_requests_outside_the_partition_workflow_or_kinds_raise_nothing(opstore):
    good = request("T1")
    for stray, message in (
        (request("T2", batch_id="batch-2.csv"), "not the partition"),
        (request("S1", kind="support_escalation"), "support/support_escalation"),
    ):
        with pytest.raises(ValueError, match=message):
            _raise(opstore, [good, stray])
    assert list_items(opstore) == []


@pytest.mark.parametrize(
    ("job", "asset"),
    [
        ("fraud_scoring_job", "fraud/review_items"),
        ("support_triage_job", "support/review_items"),
        ("maintenance_daily_job", "maintenance/review_items"),
    ],
)
def test_each_workflow_job_raises_its_review_items(job, asset):
    from orchestration_pipelines.definitions import defs

    keys = defs.resolve_job_def(job).asset_layer.executable_asset_keys
    assert asset in {key.to_user_string() for key in keys}
