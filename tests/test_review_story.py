"""The story of one case: arrival, automatic decision, people's decisions (refused ones too), effects."""

import pytest
from review_helpers import add_team, request

from orchestration_pipelines.audit import append_audit_event
from orchestration_pipelines.review import DecisionRefused, case_story, decide, raise_items
from orchestration_pipelines.review.items import utc_iso


def test_the_story_runs_from_arrival_to_the_delivered_effect(opstore):
    add_team(opstore)
    append_audit_event(opstore, workflow="fraud", event="batch_published", subject="batch-1.csv",
                       details={"rows": 3, "model_version": "fraud-v1"}, run_id="run-1")  # fmt: skip
    append_audit_event(opstore, workflow="fraud", event="batch_published", subject="batch-2.csv", details={})
    (item_id,) = raise_items(opstore, [request("tx-1", batch_id="batch-1.csv")]).created
    raise_items(opstore, [request("tx-2", batch_id="batch-2.csv")])
    with pytest.raises(DecisionRefused):
        decide(opstore, item_id, "sup", "approve")
    decide(opstore, item_id, "ana", "approve", comment="burst of small payments")
    with opstore.transaction() as cur:  # what the delivery of the actions outbox records
        cur.execute(
            "UPDATE actions_outbox SET status = 'delivered', attempts = 1, delivered_at = ? "
            "WHERE item_id = ?",
            (utc_iso(), item_id),
        )

    story = case_story(opstore, "tx-1")
    assert [(e.source, e.what.split(" ")[0]) for e in story] == [
        ("arrival", "batch_published"),
        ("automatic", "decided"),
        ("review", "approve"),
        ("review", "approve"),
        ("action", "block_card"),
        ("action", "block_card"),
    ]
    arrival, automatic, refused, approved, enqueued, delivered = story
    assert arrival.what == "batch_published batch-1.csv (run run-1)"
    assert automatic.what.startswith("decided block_pending_approval; raised fraud_block_pending_approval")
    assert automatic.why == "risk 0.93 at or above the block threshold"
    assert automatic.versions["model_version"] == "fraud-v1"
    assert automatic.versions["policy_version"].startswith("human-review@")
    assert automatic.versions["input_sha256"] == request("tx-1").input_sha256
    assert refused.actor == "sup (support_agent)"
    assert "REFUSED: sup (support_agent) may not approve" in refused.what
    assert approved.actor == "ana (analyst)" and approved.why == "burst of small payments"
    assert enqueued.what == "block_card enqueued" and enqueued.actor == "ana"
    assert delivered.what == "block_card delivered"
    assert all(e.source != "arrival" or "batch-2" not in e.what for e in story)
    assert case_story(opstore, "tx-unknown") == []
