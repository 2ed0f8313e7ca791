"""Replies and the outbox: every input ticket ends here in exactly one final state.

``draft_replies``: simple tickets (answered locally) get a templated reply from the knowledge base;
complex ones (routed to an LLM tier) get a draft from the bounded agent; tickets a person must decide
get none. ``compose_outbox`` gives each input id one row: ``ready`` (may be sent), ``awaiting_approval``
(refunds, legal threats, account changes: a person approves first), ``human_review`` (no draft) or
``rejected`` (failed the ticket contract), with why and what data was used. Nothing here sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import pandas as pd

from orchestration_pipelines.support.agent import AgentDraft
from orchestration_pipelines.support.classifier import ticket_texts
from orchestration_pipelines.support.knowledge import KnowledgeBase
from orchestration_pipelines.support.replies import templated_replies

# ``article_ids``, ``order_ids`` and ``trace`` are JSON text, so the tables stay plain columns.
REPLY_COLUMNS = ("ticket_id", "reply", "source", "article_ids", "order_ids", "cost_usd", "reason", "trace")
OUTBOX_COLUMNS = (
    "ticket_id",
    "customer_id",
    "status",
    "reply",
    "intent",
    "route",
    "answered_by",
    "why",
    "data_used",
    "cost_usd",
)
OUTBOX_STATUSES = ("ready", "awaiting_approval", "human_review", "rejected")


def draft_replies(
    tickets: pd.DataFrame,
    routed: pd.DataFrame,
    knowledge_base: KnowledgeBase,
    agent: Callable[[Mapping[str, object]], AgentDraft] | None = None,
) -> pd.DataFrame:
    """One row per ticket that got a reply or an attempt (``REPLY_COLUMNS``)."""
    routing = routed[["ticket_id", "intent", "route"]]
    merged = tickets.drop(columns=["intent", "route"], errors="ignore").merge(routing, on="ticket_id")
    local = merged[merged["route"] == "local"]
    rows = []
    if not local.empty:
        templated = templated_replies(local.assign(text=ticket_texts(local)), knowledge_base)
        for reply in templated.itertuples(index=False):
            articles = json.dumps([reply.article_id] if reply.article_id else [])
            rows.append((reply.ticket_id, reply.reply, "template", articles, "[]", 0.0, reply.reason, "[]"))
    if agent is not None:
        for ticket in merged[merged["route"].isin(["small", "strong"])].to_dict("records"):
            draft = agent(ticket)
            trace = json.dumps([step.__dict__ for step in draft.trace])
            reply = draft.reply if draft.status == "draft" else None
            rows.append(
                (
                    ticket["ticket_id"],
                    reply,
                    "agent",
                    draft.articles_used,
                    draft.orders_used,
                    draft.cost_usd,
                    draft.reason,
                    trace,
                )
            )
    return pd.DataFrame(rows, columns=list(REPLY_COLUMNS))


def compose_outbox(
    accepted: pd.DataFrame, rejected: pd.DataFrame, routed: pd.DataFrame, replies: pd.DataFrame
) -> pd.DataFrame:
    """One row per input ticket id (``OUTBOX_COLUMNS``); raises if any id is missing or doubled."""
    frame = accepted[["ticket_id", "customer_id"]].merge(routed, on="ticket_id", how="left")
    frame = frame.merge(replies, on="ticket_id", how="left", suffixes=("", "_reply"))
    rows = []
    for row in frame.to_dict("records"):
        reply = row["reply"] if isinstance(row.get("reply"), str) else None
        if reply is None:
            status = "human_review"
            why = "; ".join(filter(None, [row["reason"], _text(row.get("reason_reply"))]))
        else:
            status = "awaiting_approval" if row["needs_approval"] else "ready"
            review = _text(row.get("reason_reply")) or "no issue"
            why = f"{row['source']} reply for intent {row['intent']}; {review}"
            if row["needs_approval"]:
                why += f"; intent {row['intent']} needs a person's approval before sending"
        data_used = {
            "article_ids": _json_list(row.get("article_ids")),
            "order_ids": _json_list(row.get("order_ids")),
            "classifier_version": row["classifier_version"],
            "router_policy_version": row["router_policy_version"],
            "support_policy_version": row["support_policy_version"],
        }
        cost = _number(row["cost_usd"]) + _number(row.get("cost_usd_reply"))
        route = (row["intent"], row["route"], row["answered_by"])
        rows.append(
            (row["ticket_id"], row["customer_id"], status, reply, *route, why, json.dumps(data_used), cost)
        )
    for item in rejected.to_dict("records"):
        rows.append((item["ticket_id"], None, "rejected", None, None, None, None, item["reason"], "{}", 0.0))
    outbox = pd.DataFrame(rows, columns=list(OUTBOX_COLUMNS))
    expected = set(accepted["ticket_id"]) | set(rejected["ticket_id"])
    if not outbox["ticket_id"].is_unique or set(outbox["ticket_id"]) != expected:
        raise AssertionError("the outbox must hold every input ticket id exactly once")
    return outbox


def _number(value: object) -> float:
    """A cost from a left join: missing (no reply row) is zero."""
    return 0.0 if value is None or pd.isna(value) else float(value)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _json_list(value: object) -> list:
    return json.loads(value) if isinstance(value, str) else []
