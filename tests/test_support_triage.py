"""Classification, routing and templated replies of support tickets, with and without LLM tiers."""

from __future__ import annotations

import pandas as pd
import pytest
from llm_fixtures import build_gateway, llm_tiers, sqlite_store
from llm_server import LLMTestServer
from support_helpers import oracle_responder, tickets, trained_classifier, triage_setup, with_names

from orchestration_pipelines.ledger import CallContext
from orchestration_pipelines.router import gateway_ask
from orchestration_pipelines.support.classifier import ticket_texts
from orchestration_pipelines.support.knowledge import KnowledgeBase
from orchestration_pipelines.support.replies import templated_replies, unresolved_placeholders
from orchestration_pipelines.support.triage import TRIAGE_COLUMNS, intent_prompt, triage_tickets

CTX = CallContext(workflow="support", asset="support/classification", run_id="r-1")


@pytest.fixture(scope="module")
def batch() -> pd.DataFrame:
    return with_names(tickets(160, seed=31))


def test_without_llm_tiers_every_ticket_is_answered_locally_or_goes_to_a_person(batch):
    triaged = triage_tickets(batch, trained_classifier(), triage_setup()).set_index("ticket_id")

    assert list(triaged.reset_index().columns) == list(TRIAGE_COLUMNS)
    assert set(triaged.index) == set(batch["ticket_id"]) and triaged["route"].isin({"local", "human"}).all()
    by_id = batch.set_index("ticket_id")
    legal = by_id.index[by_id["intent"] == "legal_complaint"]
    assert (
        triaged.loc[legal, "route"] == "human"
    ).mean() > 0.9  # risk 0.95: a person, whatever the confidence
    foreign = by_id.index[by_id["language"].isin(["fr", "es"])]
    assert (triaged.loc[foreign, "route"] == "human").all()  # not a local language, and no LLM configured
    assert triaged.loc[foreign, "reason"].str.contains("not configured|risk").all()
    local = triaged[triaged["route"] == "local"]
    confident = local["local_confidence"] >= 0.85
    assert local.loc[~confident, "reason"].str.contains("accepted").all()  # no LLM: the fallback threshold
    assert local["cost_usd"].eq(0).all()
    assert (local["intent"] == by_id.loc[local.index, "intent"]).mean() > 0.95
    refunds = triaged["intent"] == "refund"
    assert (
        triaged.loc[refunds, "needs_approval"].all()
        and not triaged.loc[triaged["intent"] == "shipping", "needs_approval"].any()
    )
    assert triaged["classifier_version"].eq("test-version").all()


def test_unsure_and_foreign_tickets_go_through_the_gateway_and_every_call_is_costed(batch, tmp_path):
    with LLMTestServer(oracle_responder(batch)) as server:
        gateway = build_gateway(sqlite_store(tmp_path), llm_tiers(server.base_url), cache=False)
        prompt = intent_prompt(trained_classifier().intents)
        setup = triage_setup(
            tier_cost_usd={"small": 0.0005, "strong": 0.005},
            remaining_budget_usd=lambda: gateway.ledger.remaining_budget("support"),
        )
        triaged = triage_tickets(
            batch,
            trained_classifier(),
            setup,
            ask_for=lambda t: gateway_ask(gateway, prompt, t, CTX, "intent"),
        )

    llm = triaged[triaged["route"].isin(["small", "strong"])]
    assert not llm.empty and set(llm["answered_by"]) <= {"small", "strong"}
    truth = batch.set_index("ticket_id")["intent"]
    assert (llm.set_index("ticket_id")["intent"] == truth[llm["ticket_id"]]).all()
    assert llm["cost_usd"].gt(0).all() and triaged["cost_usd"].sum() == pytest.approx(
        sum(row["cost_usd"] for row in gateway.ledger.rows())
    )
    schema = server.requests[0].body["response_format"]["json_schema"]["schema"]
    assert sorted(schema["properties"]["intent"]["enum"]) == sorted(truth.unique())
    sent = "\n".join(r.raw_body for r in server.requests)
    for name in batch["customer_name"].unique():
        assert name not in sent


def test_an_empty_budget_sends_nothing_and_falls_back_to_local_or_a_person(batch):
    asked = []
    setup = triage_setup(tier_cost_usd={"small": 0.0005, "strong": 0.005}, remaining_budget_usd=lambda: 0.0)
    triaged = triage_tickets(
        batch, trained_classifier(), setup, ask_for=lambda t: asked.append(t) or (lambda tier: None)
    )
    assert asked == [] and triaged["route"].isin({"local", "human"}).all()
    assert triaged["reason"].str.contains("over budget").any()


def test_templated_replies_cite_the_article_for_the_intent_in_the_tickets_language(batch):
    kb = KnowledgeBase.load()
    frame = batch.assign(text=ticket_texts(batch))
    replies = templated_replies(frame, kb).set_index("ticket_id")

    by_id = frame.set_index("ticket_id")
    for ticket_id, reply in replies.iterrows():
        article = kb.get(reply["article_id"])
        assert by_id.loc[ticket_id, "intent"] in article.intents
        assert article.id in reply["reply"] and article.title in reply["reply"]
        assert by_id.loc[ticket_id, "customer_name"] in reply["reply"]
        assert unresolved_placeholders(reply["reply"]) == []
    german = by_id.index[by_id["language"] == "de"]
    assert replies.loc[german, "reply"].str.startswith("Guten Tag").all()


def test_a_ticket_no_article_matches_gets_no_reply_but_a_reason():
    kb = KnowledgeBase.load()
    frame = pd.DataFrame(
        [
            {
                "ticket_id": "T-1",
                "language": "en",
                "intent": "gift_cards",
                "customer_name": None,
                "text": "zzqx",
            }
        ]
    )
    [row] = templated_replies(frame, kb).to_dict("records")
    assert row["reply"] is None and "no knowledge-base article" in row["reason"]


def test_placeholders_left_in_a_text_are_found():
    text = "Dear [CUSTOMER_NAME_1], your refund of {amount} for <order number> is TODO. [EMAIL_2_PART_1]"
    assert unresolved_placeholders(text) == [
        "[CUSTOMER_NAME_1]",
        "{amount}",
        "<order number>",
        "TODO",
        "[EMAIL_2_PART_1]",
    ]
    assert unresolved_placeholders("Order O-100001 ships today [see KB-301].") == []
