"""PII redaction, local restoration and the data policy of which fields may reach a model."""

from __future__ import annotations

import pytest
from llm_fixtures import TICKET, TICKET_PII

from orchestration_pipelines.governance import (
    PolicyViolation,
    iban_valid,
    load_data_policy,
    luhn_valid,
    redact_text,
    restore,
)

POLICY = load_data_policy()


@pytest.mark.parametrize(
    ("text", "placeholder"),
    [
        ("write to anna.k+shop@mail.example.org today", "[EMAIL_1]"),
        ("card 4111-1111-1111-1111 was declined", "[CARD_1]"),
        ("amex 3782 822463 10005", "[CARD_1]"),
        ("IBAN DE89 3704 0044 0532 0130 00 please", "[IBAN_1]"),
        ("IBAN GB82WEST12345698765432 please", "[IBAN_1]"),
        ("call +49 30 1234 5678 now", "[PHONE_1]"),
        ("call (555) 123-4567 now", "[PHONE_1]"),
    ],
)
def test_pii_is_replaced_by_a_placeholder(text, placeholder):
    redaction = redact_text(text)
    assert placeholder in redaction.values["text"]
    assert redaction.restore(redaction.values["text"]) == text


@pytest.mark.parametrize(
    "text",
    [
        "order 1234 5678 9012 3456 arrived",  # 16 digits that fail the Luhn check: not a card
        "IBAN DE00 3704 0044 0532 0130 00 is wrong",  # fails mod 97
        "delivered on 2024-01-05 at 10:30, 3 items, 12.50 EUR",
    ],
)
def test_look_alikes_are_left_alone(text):
    assert redact_text(text).values["text"] == text


def test_checksums():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and not iban_valid("DE88 3704 0044 0532 0130 00")


def test_the_same_value_keeps_its_placeholder_and_restore_handles_double_digits():
    emails = " ".join(f"u{n}@x.io" for n in range(11))
    redaction = redact_text(f"{emails} and again u0@x.io")
    assert redaction.values["text"].endswith("and again [EMAIL_1]")
    assert "[EMAIL_11]" in redaction.values["text"]
    assert redaction.restore(redaction.values["text"]) == f"{emails} and again u0@x.io"


def test_the_data_policy_drops_fields_and_hides_configured_ones():
    redaction = POLICY.for_workflow("support").prepare(TICKET)

    assert set(redaction.values) == {
        "subject",
        "body",
        "language",
        "product",
        "customer_name",
        "customer_email",
    }
    assert redaction.values["customer_name"] == "[CUSTOMER_NAME_1]"
    assert redaction.values["body"].startswith(
        "Hi, this is [CUSTOMER_NAME_1]. I was charged twice on card [CARD_1]"
    )
    assert "[CUSTOMER_EMAIL_1]" in redaction.values["body"]  # the configured field's value, found in the text
    sent = repr(redaction.values)
    assert not any(value in sent for value in TICKET_PII)
    assert restore(redaction.values["body"], redaction.placeholders) == TICKET["body"]


def test_placeholders_never_show_in_a_repr():
    redaction = POLICY.for_workflow("support").prepare(TICKET)
    assert "Jane Doe" not in repr(redaction)


def test_unknown_workflows_send_nothing_and_forbidden_fields_are_refused():
    assert POLICY.for_workflow("unknown").prepare(TICKET).values == {}
    assert POLICY.for_workflow("fraud").prepare({"amount": 5, "card_id": "c1"}).values == {}
    with pytest.raises(PolicyViolation, match="customer_id"):
        POLICY.for_workflow("support").check_fields({"body", "customer_id"})


def test_a_name_is_caught_in_any_case_by_its_parts_and_restored_as_written():
    record = {
        "customer_name": "María de la Cruz-Ortega",
        "body": "Soy MARÍA. La factura de maría de la cruz-ortega, pagada por la Sra. Ortega y Cruz.",
    }
    redaction = POLICY.for_workflow("support").prepare(record)
    body = redaction.values["body"]

    for part in ("maría", "cruz", "ortega"):
        assert part not in body.casefold()
    assert "La factura de" in body and " la " in body  # particles stay ordinary words
    assert redaction.restore(body) == (
        "Soy María. La factura de María de la Cruz-Ortega, pagada por la Sra. Ortega y Cruz."
    )
