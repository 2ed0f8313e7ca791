"""Replies and the outbox: every input ticket id ends in exactly one final state, nothing is sent."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from support_helpers import tickets, trained_classifier, triage_setup, with_names

from orchestration_pipelines.support.contract import validate_tickets
from orchestration_pipelines.support.knowledge import KnowledgeBase
from orchestration_pipelines.support.outbox import OUTBOX_STATUSES, compose_outbox, draft_replies
from orchestration_pipelines.support.triage import triage_tickets


def run_local_path(raw: pd.DataFrame) -> pd.DataFrame:
    contract = validate_tickets(raw)
    accepted = with_names(contract.accepted)
    routed = triage_tickets(accepted, trained_classifier(), triage_setup())
    replies = draft_replies(accepted, routed, KnowledgeBase.load())
    return compose_outbox(accepted, contract.rejected, routed, replies)


def test_every_input_id_of_a_messy_batch_ends_in_exactly_one_final_state():
    clean = tickets(120, seed=51).drop(columns=["intent", "urgency", "misleading"])
    messy = pd.concat(
        [
            clean,
            clean.iloc[:3],  # re-sent copies
            clean.iloc[3:4].assign(body="changed body"),  # same id, other content
            clean.iloc[4:5].assign(ticket_id=""),  # no id
            clean.iloc[5:6].assign(ticket_id="X-empty", subject="", body=""),
            clean.iloc[6:7].assign(ticket_id="X-giant", body="my parcel is late " * 2000),
            clean.iloc[7:8].assign(ticket_id="X-lang", language="tlh"),
        ],
        ignore_index=True,
    ).astype({"created_at": str})

    outbox = run_local_path(messy)

    input_ids = {i for i in messy["ticket_id"] if i} | {f"row-{len(clean) + 4}"}
    assert outbox["ticket_id"].is_unique and set(outbox["ticket_id"]) == input_ids
    assert set(outbox["status"]) <= set(OUTBOX_STATUSES)
    states = outbox.set_index("ticket_id")["status"]
    assert states[clean["ticket_id"].iloc[3]] == "rejected" and states["X-empty"] == "rejected"
    giant = outbox.set_index("ticket_id").loc["X-giant"]
    assert giant["status"] != "rejected" and giant["why"], giant.to_dict()
    assert states["X-lang"] == "human_review"  # undetermined language: no local answer, no LLM configured


def test_high_risk_replies_wait_for_approval_and_every_message_says_why_and_what_it_used():
    batch = tickets(150, seed=52)
    outbox = run_local_path(
        batch.drop(columns=["intent", "urgency", "misleading"]).astype({"created_at": str})
    )
    truth = batch.set_index("ticket_id")["intent"]
    with_reply = outbox[outbox["reply"].notna()].set_index("ticket_id")

    assert not with_reply.empty
    approval = with_reply["intent"].isin(["refund", "account_access", "cancellation", "legal_complaint"])
    assert (with_reply.loc[approval, "status"] == "awaiting_approval").all()
    assert (with_reply.loc[~approval, "status"] == "ready").all()
    legal = truth.index[truth == "legal_complaint"]
    assert (outbox.set_index("ticket_id").loc[legal, "status"] == "human_review").mean() > 0.9
    for row in with_reply.itertuples():
        used = json.loads(row.data_used)
        assert used["article_ids"] and used["article_ids"][0] in row.reply
        assert used["classifier_version"] == "test-version" and row.why


def test_an_outbox_that_would_hold_a_ticket_twice_is_refused():
    contract = validate_tickets(tickets(5, seed=53).astype({"created_at": str}))
    accepted = with_names(contract.accepted)
    routed = triage_tickets(accepted, trained_classifier(), triage_setup())
    replies = draft_replies(accepted, routed, KnowledgeBase.load())
    doubled = pd.DataFrame([{"ticket_id": accepted["ticket_id"].iloc[0], "reason": "also rejected"}])
    with pytest.raises(AssertionError, match="exactly once"):
        compose_outbox(accepted, doubled, routed, replies)
