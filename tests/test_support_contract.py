"""The ticket contract: bad input is rejected or handled with a reason, and no ticket is dropped."""

from __future__ import annotations

import pandas as pd
import pytest

from orchestration_pipelines.support.contract import (
    MAX_BODY_CHARS,
    read_ticket_file,
    validate_tickets,
)
from orchestration_pipelines.support.generator import generate_tickets


def ticket(ticket_id: str, **overrides) -> dict[str, str]:
    return {
        "ticket_id": ticket_id,
        "customer_id": "C-00001",
        "channel": "email",
        "language": "en",
        "subject": "Where is my parcel?",
        "body": "Order O-100001 has not arrived.",
        "created_at": "2026-11-20T10:00:00Z",
        "order_id": "O-100001",
    } | overrides


def test_a_hostile_batch_ends_with_every_id_in_exactly_one_final_state():
    rows = [
        ticket("T-ok"),
        ticket("T-empty-body", body=""),
        ticket("T-empty", subject="", body="   "),
        ticket("T-lang", language="xx-klingon"),
        ticket("T-giant", body="refund " * 5000),
        ticket(""),
        ticket("  "),
        ticket("T-dup-same"),
        ticket("T-dup-same"),
        ticket("T-dup-diff", body="first version"),
        ticket("T-dup-diff", body="second version"),
        ticket("T-dup-one-bad"),
        ticket("T-dup-one-bad", customer_id=""),
        ticket("T-no-customer", customer_id=""),
        ticket("T-bad-time", created_at="yesterday-ish"),
        ticket("T-naive", created_at="2026-11-20 10:00:00", channel="Fax"),
    ]
    result = validate_tickets(pd.DataFrame(rows))

    states = result.final_states()
    assert states["ticket_id"].is_unique
    input_ids = {r["ticket_id"].strip() for r in rows if r["ticket_id"].strip()}
    assert input_ids | {"row-5", "row-6"} == set(states["ticket_id"])
    accepted = result.accepted.set_index("ticket_id")
    reasons = result.rejected.set_index("ticket_id")["reason"]
    assert set(accepted.index) == {"T-ok", "T-empty-body", "T-lang", "T-giant", "T-dup-same", "T-naive"}
    assert "empty body" in accepted.loc["T-empty-body", "notes"]
    assert (
        accepted.loc["T-lang", "language"] == "und" and "unknown language" in accepted.loc["T-lang", "notes"]
    )
    assert len(accepted.loc["T-giant", "body"]) == MAX_BODY_CHARS
    assert "truncated from 34999" in accepted.loc["T-giant", "notes"]
    assert "2 identical copies merged" in accepted.loc["T-dup-same", "notes"]
    assert "read as UTC" in accepted.loc["T-naive", "notes"] and accepted.loc["T-naive", "channel"] == "other"
    assert str(accepted["created_at"].dt.tz) == "UTC"
    assert reasons["row-5"] == reasons["row-6"] == "missing ticket id"
    assert "empty ticket" in reasons["T-empty"]
    assert "different content (2 rows)" in reasons["T-dup-diff"]
    assert (
        "different content" in reasons["T-dup-one-bad"] and "missing customer id" in reasons["T-dup-one-bad"]
    )
    assert "not a timestamp" in reasons["T-bad-time"]


def test_invalid_utf8_is_replaced_and_noted_per_ticket_without_failing_the_file(tmp_path):
    good = "ticket_id,customer_id,channel,language,subject,body,created_at\n"
    good += "T-1,C-1,email,en,Refund,Fine text,2026-11-20T10:00:00Z\n"
    bad = b"T-2,C-2,email,de,R\xfcckerstattung,Geld zur\xfcck \xff\xfe,2026-11-20T10:00:00Z\n"
    path = tmp_path / "batch.csv"
    path.write_bytes(good.encode() + bad)

    result = validate_tickets(read_ticket_file(path))

    accepted = result.accepted.set_index("ticket_id")
    assert accepted.loc["T-1", "notes"] == ""
    assert accepted.loc["T-2", "subject"] == "R\ufffdckerstattung"
    assert "body had bytes that are not UTF-8" in accepted.loc["T-2", "notes"]
    accepted.to_json()  # no surrogate survives to break a writer downstream


def test_a_file_without_the_contract_columns_is_refused_as_a_whole():
    with pytest.raises(ValueError, match="lacks columns"):
        validate_tickets(pd.DataFrame({"id": ["1"], "text": ["hello"]}))


def test_generated_tickets_satisfy_the_contract_and_are_reproducible():
    first, second = generate_tickets(300, seed=4), generate_tickets(300, seed=4)
    pd.testing.assert_frame_equal(first, second)
    result = validate_tickets(first)
    assert len(result.accepted) == 300 and result.rejected.empty
    assert set(first["language"]) >= {"en", "de", "fr", "es"}
    assert first["misleading"].mean() > 0.05
    assert first["body"].str.contains("@example.com").any() and first["body"].str.contains("IBAN").any()
