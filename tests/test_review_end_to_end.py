"""Raised -> reviewed (approve, reject, correct, timeout) -> effect delivered once -> in the case story.

Cases of every workflow go through the real sensors and job on a real Dagster instance, against real
receivers on 127.0.0.1 that keep one effect per idempotency key, on SQLite and on PostgreSQL.
"""

from datetime import UTC, datetime, timedelta

import pandas as pd
from dagster import RunRequest, SkipReason, build_sensor_context, instance_for_test
from review_helpers import add_team, request
from webhook_server import FlakyReceiver

from orchestration_pipelines.audit import read_audit_log, verify_audit_chain
from orchestration_pipelines.definitions import build_resources
from orchestration_pipelines.fraud.policy import load_policy
from orchestration_pipelines.fraud.review import review_requests
from orchestration_pipelines.jobs import review_apply_actions_job
from orchestration_pipelines.review import case_story, decide, get_item, list_items, raise_items
from orchestration_pipelines.review.actions import list_actions
from sensors.review import review_decisions_sensor, review_timeouts_sensor

ORDER = {"machine_id": "PU-007", "team": "fluids", "alerted_at": "2026-11-26T04:00:00+00:00"}
CASES = ["T-approve", "T-reject", "T-correct", "T-timeout"]


def _scored_cases() -> pd.DataFrame:
    """Published fraud decisions as the scoring job writes them: three for an analyst, one block."""
    n = len(CASES)
    return pd.DataFrame(
        {
            "transaction_id": CASES,
            "account_id": [f"A-{i}" for i in range(n)],
            "card_id": [f"C-{i}" for i in range(n)],
            "timestamp": pd.to_datetime(["2026-11-26T08:00:00Z"] * n),
            "amount": [80.0, 15.0, 42.0, 640.0],
            "currency": ["EUR"] * n,
            "amount_eur": [80.0, 15.0, 42.0, 640.0],
            "risk_score": [0.7, 0.6, 0.55, 0.93],
            "model_probability": [0.7, 0.6, 0.55, 0.8],
            "anomaly_percentile": [0.9, 0.5, 0.4, 0.99],
            "rule_risk": [0.0, 0.0, 0.0, 0.93],
            "confidence": [0.4, 0.3, 0.3, 0.9],
            "reason_codes": ["MODEL_HIGH_RISK", "NEW_DEVICE", "NEW_COUNTRY", "CARD_TESTING_BURST"],
            "decision": ["analyst_review"] * 3 + ["block_pending_approval"],
            "model_version": ["fraud-v7"] * n,
            "policy_version": ["2026.11.1"] * n,
            "batch_id": ["transactions_2026-11-26.csv"] * n,
        }
    )


def _tick(sensor, instance):
    with build_sensor_context(instance=instance, resources=build_resources()) as context:
        return sensor(context)


def _launch(sensor, instance) -> dict:
    """What the daemon does with the sensor's request: run the job with its tags; the delivered counts."""
    request_ = _tick(sensor, instance)
    assert isinstance(request_, RunRequest), request_
    result = review_apply_actions_job.execute_in_process(
        instance=instance, resources=build_resources(), tags=request_.tags
    )
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {name: value.value for name, value in output.event_specific_data.metadata.items()}


def test_cases_of_every_workflow_take_effect_once_and_tell_their_story(opstore, data_env, monkeypatch):
    monkeypatch.setenv("OP_OPSTORE_URL", opstore.url)
    add_team(opstore)
    now = datetime.now(UTC)
    *analyst, block = review_requests(_scored_cases(), load_policy())
    reply = request("S-42", "support_escalation", ticket_id="S-42", reply="Your refund is on its way.")
    raise_items(opstore, [*analyst, reply], now=now)
    raise_items(opstore, [block], now=now - timedelta(hours=2))  # its one-hour deadline has passed
    alert = request("PU-007:1", "maintenance_low_confidence_alert", **ORDER)
    raise_items(opstore, [alert], now=now - timedelta(hours=13))
    item = {i.case_id: i.item_id for i in list_items(opstore, status=None)}

    decide(opstore, item["T-approve"], "ana", "approve", comment="card-testing burst")
    decide(opstore, item["T-reject"], "ana", "reject", comment="customer confirmed the purchase")
    decide(opstore, item["T-correct"], "ana", "correct", value="legitimate")
    decide(opstore, item["S-42"], "sup", "approve")

    with (
        instance_for_test() as instance,
        FlakyReceiver(failures=2) as cards,  # the card service is down for the first two requests
        FlakyReceiver() as replies,
        FlakyReceiver() as cmms,
    ):
        monkeypatch.setenv("OP_CARD_SERVICE_URL", cards.base_url)
        monkeypatch.setenv("OP_REPLY_SENDER_URL", replies.base_url)
        monkeypatch.setenv("OP_MAINTENANCE_WEBHOOK_URL", cmms.url)
        assert _launch(review_decisions_sensor, instance)["delivered"] == 3
        # Deadlines: the fraud block escalates to a senior analyst, the doubtful alert gets its visit.
        assert _launch(review_timeouts_sensor, instance)["delivered"] == 1
        assert get_item(opstore, item["T-timeout"]).status == "escalated"
        assert get_item(opstore, item["T-timeout"]).required_role == "senior_analyst"
        decide(opstore, item["T-timeout"], "sen", "approve", comment="escalated: confirmed")
        assert _launch(review_decisions_sensor, instance)["delivered"] == 1
        assert isinstance(_tick(review_decisions_sensor, instance), SkipReason)
        assert _tick(review_timeouts_sensor, instance).skip_message == "no item is overdue"
        again = review_apply_actions_job.execute_in_process(instance=instance, resources=build_resources())
        assert again.success  # a manual re-run finds nothing to send

    assert sorted(cards.accepted) == sorted(
        [
            f"{item['T-approve']}:block_card",
            f"{item['T-reject']}:release_card",
            f"{item['T-timeout']}:block_card",
        ]
    )
    assert [r["path"] for r in cards.requests].count("/block_card") == 4  # two 503s, then one per case
    assert list(replies.accepted) == [f"{item['S-42']}:send_reply"]
    assert replies.accepted[f"{item['S-42']}:send_reply"]["context"]["reply"] == "Your refund is on its way."
    assert list(cmms.accepted) == [f"{item['PU-007:1']}:open_work_order"]
    actions = list_actions(opstore)
    assert len(actions) == 5 and {a.status for a in actions} == {"delivered"}
    delivered = [e for e in read_audit_log(opstore) if e.event == "action_delivered"]
    assert sorted(e.details["action_id"] for e in delivered) == sorted(a.action_id for a in actions)
    statuses = {case: get_item(opstore, item_id).status for case, item_id in item.items()}
    assert statuses == {
        "T-approve": "applied",
        "T-reject": "applied",
        "T-correct": "decided",  # a correction is a label, not an effect
        "T-timeout": "applied",
        "S-42": "applied",
        "PU-007:1": "applied",
    }
    assert verify_audit_chain(opstore) == []

    story = {case: [(e.source, e.what) for e in case_story(opstore, case)] for case in item}
    approved = story["T-approve"]
    assert approved[0] == ("automatic", approved[0][1]) and "raised fraud_analyst_review" in approved[0][1]
    assert approved[1:] == [
        ("review", "approve on fraud_analyst_review"),
        ("action", "block_card enqueued"),
        ("action", "block_card delivered"),
    ]
    assert story["T-reject"][-1] == ("action", "release_card delivered")
    assert story["T-correct"][-1] == ("review", "correct legitimate on fraud_analyst_review")
    timed_out = [what for _, what in story["T-timeout"]]
    assert timed_out[1:] == [
        "escalate on fraud_block_pending_approval",
        "approve on fraud_block_pending_approval",
        "block_card enqueued",
        "block_card delivered",
    ]
    assert story["PU-007:1"][-3:] == [
        ("review", "approve on maintenance_low_confidence_alert"),  # the policy's default, on timeout
        ("action", "open_work_order enqueued"),
        ("action", "open_work_order delivered"),
    ]
    assert story["S-42"][-1] == ("action", "send_reply delivered")
