"""Review items on SQLite and PostgreSQL: raising, deciding, refusing, four eyes, races, timeouts."""

import json
import threading
from datetime import timedelta

import pytest
from review_helpers import T0, add_team, request

from orchestration_pipelines.audit import read_audit_log, verify_audit_chain
from orchestration_pipelines.review import (
    DecisionRefused,
    apply_timeouts,
    decide,
    get_item,
    item_history,
    list_items,
    raise_items,
)


@pytest.fixture
def store(opstore):
    add_team(opstore)
    return opstore


def _rows(store, sql, params=()):
    with store.transaction() as cur:
        return cur.execute(sql, params).fetchall()


def _audit_events(store, subject):
    return [e.event for e in read_audit_log(store) if e.subject == subject]


def test_raising_is_idempotent_by_case_and_kind_and_audited_once(store):
    first = raise_items(store, [request("tx-1"), request("tx-2", "fraud_analyst_review")], now=T0)
    again = raise_items(store, [request("tx-1"), request("tx-3")], now=T0 + timedelta(hours=1))
    assert len(first.created) == 2 and first.existing == []
    assert again.existing == [request("tx-1").item_id] and len(again.created) == 1
    item = get_item(store, request("tx-1").item_id)
    assert (item.status, item.required_role, item.version, item.decision) == ("open", "analyst", 1, None)
    assert item.deadline_at == (T0 + timedelta(hours=1)).isoformat(timespec="microseconds")
    assert item.context["amount_eur"] == 120.0 and item.policy_version.startswith("human-review@")
    assert _audit_events(store, "tx-1") == ["review_item_raised"]
    raised = next(e for e in read_audit_log(store) if e.subject == "tx-1")
    assert raised.details["automatic_decision"] == "block_pending_approval"
    assert (
        raised.details["input_sha256"] == item.input_sha256 and raised.details["model_version"] == "fraud-v1"
    )


def test_a_malformed_request_raises_nothing(store):
    bad = [request("tx-1"), request("tx 2; drop")]
    with pytest.raises(ValueError, match="case id"):
        raise_items(store, bad)
    wrong_workflow = request("tx-3").__class__(**{**request("tx-3").__dict__, "workflow": "support"})
    with pytest.raises(ValueError, match="belong to workflow fraud"):
        raise_items(store, [wrong_workflow])
    assert list_items(store) == []


def test_an_approval_enqueues_the_mapped_action_and_is_recorded_once(store):
    (item_id,) = raise_items(store, [request("tx-1")], now=T0).created
    outcome = decide(store, item_id, "ana", "approve", comment="card testing pattern", now=T0)
    assert (outcome.item.status, outcome.item.decision, outcome.item.version) == ("decided", "approve", 2)
    assert outcome.action_keys == [f"{item_id}:block_card"]
    (action,) = _rows(
        store, "SELECT action, status, attempts, payload_json, workflow, case_id FROM actions_outbox"
    )
    assert action[:3] == ("block_card", "pending", 0) and action[4:] == ("fraud", "tx-1")
    assert json.loads(action[3])["context"]["amount_eur"] == 120.0
    with pytest.raises(DecisionRefused, match="already decided: approve"):
        decide(store, item_id, "bob", "reject")
    assert [(e.actor, e.action, e.outcome) for e in item_history(store, item_id)] == [
        ("ana", "approve", "accepted"),
        ("bob", "reject", "refused"),
    ]
    assert _audit_events(store, "tx-1") == ["review_item_raised", "review_approve", "review_refused"]
    assert len(_rows(store, "SELECT 1 FROM actions_outbox")) == 1 and verify_audit_chain(store) == []


def test_a_role_without_the_right_is_refused_and_the_refusal_is_audited(store):
    (item_id,) = raise_items(store, [request("tx-1")]).created
    for reviewer, reason in (
        ("sup", r"sup \(support_agent\) may not approve fraud_block_pending_approval"),
        ("adm", r"adm \(admin\) may not approve"),
        ("ghost", "unknown reviewer 'ghost'"),
    ):
        with pytest.raises(DecisionRefused, match=reason) as refused:
            decide(store, item_id, reviewer, "approve")
        assert refused.value.event_id in {e.event_id for e in item_history(store, item_id)}
    assert get_item(store, item_id).version == 1  # untouched
    assert _audit_events(store, "tx-1") == ["review_item_raised", *["review_refused"] * 3]
    assert _rows(store, "SELECT count(*) FROM actions_outbox") == [(0,)]


def test_a_disabled_reviewer_can_no_longer_decide(store):
    from orchestration_pipelines.review import disable_reviewer

    (item_id,) = raise_items(store, [request("tx-1")]).created
    disable_reviewer(store, "ana")
    with pytest.raises(DecisionRefused, match="reviewer 'ana' is disabled"):
        decide(store, item_id, "ana", "approve")


def test_a_correction_stores_labelled_feedback_and_no_action(store):
    (item_id,) = raise_items(store, [request("tx-1", "fraud_analyst_review")], now=T0).created
    with pytest.raises(DecisionRefused, match="'maybe' is not a is_fraud value"):
        decide(store, item_id, "ana", "correct", value="maybe")
    outcome = decide(store, item_id, "ana", "correct", value="legitimate", now=T0)
    assert (outcome.item.decision, outcome.item.decided_value, outcome.action_keys) == (
        "correct",
        "legitimate",
        [],
    )
    assert _rows(
        store, "SELECT workflow, case_id, item_id, label_field, corrected_value, reviewer FROM feedback"
    ) == [("fraud", "tx-1", item_id, "is_fraud", "legitimate", "ana")]
    assert _rows(store, "SELECT count(*) FROM actions_outbox") == [(0,)]


def test_four_eyes_waits_for_a_second_distinct_approver_with_a_senior_among_them(store):
    big, small = raise_items(store, [request("tx-big", amount_eur=8000.0), request("tx-small")]).created
    first = decide(store, big, "ana", "approve")
    assert first.item.status == "open" and first.action_keys == []
    assert first.awaiting == "1 more distinct approver(s), one of them a senior_analyst"
    with pytest.raises(DecisionRefused, match="ana already approved"):
        decide(store, big, "ana", "approve")
    with pytest.raises(DecisionRefused, match="last of 2 approvals must come from a senior_analyst"):
        decide(store, big, "bob", "approve")
    second = decide(store, big, "sen", "approve")
    assert (second.item.status, second.action_keys) == ("decided", [f"{big}:block_card"])
    assert [a["reviewer"] for a in second.item.approvals] == ["ana", "sen"]
    assert second.event.actor_role == "senior_analyst"
    assert decide(store, small, "bob", "approve").item.status == "decided"  # below the amount: one is enough


def test_a_reject_after_a_first_approval_closes_the_item(store):
    (big,) = raise_items(store, [request("tx-big", amount_eur=8000.0)]).created
    decide(store, big, "ana", "approve")
    outcome = decide(store, big, "bob", "reject")
    assert (outcome.item.decision, outcome.action_keys) == ("reject", [f"{big}:release_card"])


def test_assign_and_comment(store):
    (item_id,) = raise_items(store, [request("tx-1")]).created
    with pytest.raises(DecisionRefused, match="sup holds no role that may decide"):
        decide(store, item_id, "adm", "assign", value="sup")
    assigned = decide(store, item_id, "adm", "assign", value="bob")
    assert (assigned.item.status, assigned.item.assigned_to) == ("assigned", "bob")
    assert [i.item_id for i in list_items(store, status="assigned")] == [item_id]
    decide(store, item_id, "bob", "reject")
    commented = decide(store, item_id, "adm", "comment", comment="customer called, confirmed")
    assert commented.item.status == "decided" and commented.event.comment == "customer called, confirmed"


def test_a_decision_on_a_version_the_reviewer_no_longer_sees_is_refused_and_recorded(store):
    """The first approval of a four-eyes block changes the item; a second reviewer still looking at
    version 1 must not approve on top of it without seeing that first approval."""
    (big,) = raise_items(store, [request("tx-big", amount_eur=8000.0)]).created
    decide(store, big, "ana", "approve", expected_version=1)
    with pytest.raises(DecisionRefused, match="changed since version 1 \\(now 2\\)") as refused:
        decide(store, big, "sen", "approve", expected_version=1)
    assert refused.value.event_id in {e.event_id for e in item_history(store, big)}
    item = get_item(store, big)
    assert (item.status, item.version, [a["reviewer"] for a in item.approvals]) == ("open", 2, ["ana"])
    assert decide(store, big, "sen", "comment", comment="looking", expected_version=1).item.version == 2
    assert decide(store, big, "sen", "approve", expected_version=2).item.status == "decided"


def test_concurrent_decisions_on_one_item_give_exactly_one_outcome(store):
    (item_id,) = raise_items(store, [request("tx-race")]).created
    results, barrier = [], threading.Barrier(6)

    def attempt(reviewer: str, action: str) -> None:
        barrier.wait()
        try:
            results.append(("accepted", decide(store, item_id, reviewer, action).event.action))
        except DecisionRefused as exc:
            results.append(("refused", exc.reason))

    attempts = [("ana", "approve"), ("bob", "reject"), ("sen", "approve"), ("ana", "reject"),
                ("bob", "approve"), ("sen", "reject")]  # fmt: skip
    threads = [threading.Thread(target=attempt, args=a) for a in attempts]
    [t.start() for t in threads]
    [t.join() for t in threads]
    accepted = [r for r in results if r[0] == "accepted"]
    assert len(accepted) == 1 and len(results) == 6
    assert all(r[1].startswith("already decided") for r in results if r[0] == "refused")
    item = get_item(store, item_id)
    assert item.decision == accepted[0][1] and item.version == 2
    assert len(_rows(store, "SELECT 1 FROM actions_outbox")) == 1
    outcomes = [e.outcome for e in item_history(store, item_id)]
    assert outcomes.count("accepted") == 1 and outcomes.count("refused") == 5
    assert verify_audit_chain(store) == []


def test_timeouts_escalate_or_apply_the_default_once(store):
    raised = raise_items(
        store,
        [
            request("tx-slow", "fraud_analyst_review"),
            request("ticket-9", "support_high_risk_reply"),
            request("pump-3:2026-11-26", "maintenance_low_confidence_alert"),
            request("tx-fresh", "fraud_analyst_review"),
        ],
        now=T0,
    ).created
    slow, reply, alert, _ = raised
    later = T0 + timedelta(hours=10)  # its 4 h deadline is still ahead at 13 h
    fresh = raise_items(store, [request("tx-new", "fraud_analyst_review")], now=later).created
    done = apply_timeouts(store, T0 + timedelta(hours=13))
    assert sorted(done) == sorted([(slow, "escalate"), (raised[3], "escalate"), (reply, "reject"),
                                   (alert, "approve")])  # fmt: skip
    escalated = get_item(store, slow)
    assert (escalated.status, escalated.required_role) == ("escalated", "senior_analyst")
    assert escalated.deadline_at == (T0 + timedelta(hours=15)).isoformat(timespec="microseconds")
    assert get_item(store, reply).decision == "reject" and get_item(store, alert).decision == "approve"
    assert _rows(store, "SELECT action, item_id FROM actions_outbox") == [("open_work_order", alert)]
    assert get_item(store, fresh[0]).status == "open"
    assert apply_timeouts(store, T0 + timedelta(hours=13)) == []  # idempotent
    assert {i.item_id for i in list_items(store, role="senior_analyst")} == {slow, raised[3]}
    history = item_history(store, slow)
    assert [(e.actor, e.action, e.actor_role) for e in history] == [("system:timeout", "escalate", "policy")]
    assert "review_escalate" in _audit_events(store, "tx-slow")


def test_queue_filters(store):
    requests = [
        request("tx-1"),
        request("t-1", "support_escalation"),
        request("t-2", "support_high_risk_reply"),
    ]
    raise_items(store, requests, now=T0)
    assert [i.case_id for i in list_items(store, role="analyst")] == ["tx-1"]
    assert [i.case_id for i in list_items(store, workflow="support")] == [
        "t-2",
        "t-1",
    ]  # soonest deadline first
    assert [i.case_id for i in list_items(store, due_before=T0 + timedelta(hours=2))] == ["tx-1"]
    assert list_items(store, status="decided") == []
    assert len(list_items(store, status=None)) == 3


def test_racing_raisers_of_overlapping_cases_raise_each_item_once(store):
    cases = [request(f"tx-{i}") for i in range(30)]
    barrier, errors, created = threading.Barrier(3), [], []

    def raise_all(order) -> None:
        barrier.wait()
        try:
            created.extend(raise_items(store, order).created)
        except Exception as exc:  # a deadlock or a duplicate would land here
            errors.append(exc)

    orders = [cases, cases[::-1], cases[10:] + cases[:10]]
    threads = [threading.Thread(target=raise_all, args=(order,)) for order in orders]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == [] and sorted(created) == sorted(r.item_id for r in cases)
    raised = [e for e in read_audit_log(store) if e.event == "review_item_raised"]
    assert len(raised) == 30 and verify_audit_chain(store) == []


def _refuse_audit_appends(store) -> None:
    """A real trigger makes every audit append fail, as a full disk or a revoked grant would."""
    with store.transaction(exclusive=True) as cur:
        if store.dialect == "sqlite":
            cur.execute(
                "CREATE TRIGGER no_audit BEFORE INSERT ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END"
            )
        else:
            cur.execute(
                "CREATE FUNCTION no_audit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$"
            )
            cur.execute("CREATE TRIGGER no_audit BEFORE INSERT ON audit_log EXECUTE FUNCTION no_audit()")


def test_a_decision_whose_audit_entry_fails_leaves_no_trace(store):
    (item_id,) = raise_items(store, [request("tx-1")]).created
    _refuse_audit_appends(store)
    with pytest.raises(Exception, match="audit log unavailable"):
        decide(store, item_id, "ana", "approve")
    with pytest.raises(Exception, match="audit log unavailable"):
        raise_items(store, [request("tx-2")])
    item = get_item(store, item_id)
    assert (item.status, item.version, item.decision) == ("open", 1, None)
    assert item_history(store, item_id) == [] and list_items(store, status=None) == [item]
    assert _rows(store, "SELECT count(*) FROM actions_outbox") == [(0,)]
