"""Replies and the outbox: every input ticket id ends in exactly one final state, nothing is sent."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from support_helpers import tickets, trained_classifier, triage_setup, with_names

from orchestration_pipelines.support.contract import read_ticket_file, validate_tickets
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


def test_the_whole_list_of_bad_input_in_one_file_leaves_every_input_id_in_one_final_state(tmp_path):
    """Every kind of bad input of the issue at once, read from the bytes of a landed file."""
    clean = tickets(40, seed=52).drop(columns=["intent", "urgency", "misleading"]).astype(str)
    header = ",".join(clean.columns)
    good_lines = [",".join(f'"{v}"' for v in row) for row in clean.itertuples(index=False)]
    first = clean.iloc[0].to_dict()

    def line(**overrides) -> str:
        return ",".join(f'"{v}"' for v in (first | overrides).values())

    lines = [
        *good_lines,
        line(ticket_id="X-empty-body", body=""),
        line(ticket_id="X-empty", subject="", body=""),
        line(ticket_id="X-lang", language="tlh"),
        line(ticket_id="X-giant", body="my parcel is late " * 3000),
        line(ticket_id=""),  # missing id: row-44 (its position)
        line(ticket_id="row-44"),  # a real id that looks like that placeholder
        line(ticket_id="   "),
        line(ticket_id="X-dup"),
        line(ticket_id="X-dup"),
        line(ticket_id="X-dup-diff", body="first"),
        line(ticket_id="X-dup-diff", body="second"),
        line(ticket_id=" X-spaced "),
        line(ticket_id="X-spaced", body="the same id once its spaces are gone, other content"),
    ]
    raw_bytes = (header + "\n" + "\n".join(lines) + "\n").encode()
    raw_bytes += (
        b'"X-bad-\xff-id","C-00001","email","de","R\xfcckerstattung","Geld \xfe","2026-11-20T10:00:00Z",""\n'
    )
    raw_bytes += b'"X-bad-body","C-00001","email","de","Frage","Geld zur\xfcck","2026-11-20T10:00:00Z",""\n'
    path = tmp_path / "batch.csv"
    path.write_bytes(raw_bytes)

    raw = read_ticket_file(path)
    outbox = run_local_path(raw)

    assert len(raw) == len(lines) + 2
    assert outbox["ticket_id"].is_unique
    assert set(outbox["status"]) <= set(OUTBOX_STATUSES)
    states = outbox.set_index("ticket_id")["status"]
    every_input = {*clean["ticket_id"], "X-empty-body", "X-empty", "X-lang", "X-giant", "X-dup", "X-dup-diff"}
    assert every_input <= set(states.index)
    # the two rows without an id and the real "row-44" are three different final states
    assert "row-44" in states.index and states.index.str.startswith("row-").sum() == 3
    assert states["X-empty"] == "rejected" and states["X-dup-diff"] == "rejected"
    assert states["X-spaced"] == "rejected"  # ' X-spaced ' and 'X-spaced' differ only by spaces
    assert states["X-giant"] != "rejected" and states["X-bad-body"] != "rejected"
    bad_id = [i for i in states.index if i.startswith("X-bad-") and i != "X-bad-body"]
    assert bad_id == ["X-bad-\ufffd-id"]
    assert len(states) == 40 + 6 + 3 + 1 + 2  # clean, named bad ones, id-less and row-44, spaced, bytes
    outbox.to_json()  # nothing undecodable is left to break a writer
