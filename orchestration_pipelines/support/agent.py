"""The bounded support agent: drafts a reply to a complex ticket through the gateway with tool calling.

Bounds, all enforced here and not left to the model:

* tools come from an allow-list only, and each is scoped to the ticket's own customer: order lookup
  answers "not found" for another customer's order, the history tool takes no customer argument at
  all; a call to any other tool is refused and traced, never executed;
* a step budget (model turns) and a cost budget (the next turn's worst case must fit);
* tool calls of one turn run in parallel;
* every model turn, tool call and refusal is traced with its cost;
* a reviewer checks the draft: no refund promise over the policy's limit, no other customer's data,
  no unresolved placeholders, and no refused (possibly injected) tool call along the way.

The agent returns a draft and never sends anything: the outbox does, after approval where needed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pydantic import ValidationError

from orchestration_pipelines.governance import redact_text, restore
from orchestration_pipelines.ledger import CallContext
from orchestration_pipelines.llm import LLMGateway
from orchestration_pipelines.prompt_registry import Prompt
from orchestration_pipelines.support.knowledge import KnowledgeBase
from orchestration_pipelines.support.replies import unresolved_placeholders

ALLOWED_TOOLS = ("search_knowledge_base", "lookup_order", "customer_history")
TOOL_SCHEMAS = [
    {
        "type": "function",
        "function": {
            "name": "search_knowledge_base",
            "description": "Search the help-centre articles; returns ids, titles and texts.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Status, product and amount of one of this customer's orders.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "customer_history",
            "description": "This customer's earlier tickets and orders (intents, dates, statuses).",
            "parameters": {"type": "object", "properties": {}, "required": [], "additionalProperties": False},
            "strict": True,
        },
    },
]
_MONEY = re.compile(r"(?:€|eur\b|euro)\s*(\d[\d.,]*)|(\d[\d.,]*)\s*(?:€|eur\b|euros?\b)", re.IGNORECASE)
_REFUND_WORDS = re.compile(r"refund|reimburs|money back|erstatt|rembours|reembols|devolv", re.IGNORECASE)
_ORDER_ID = re.compile(r"\bO-\d+\b")


@dataclass(frozen=True)
class AgentLimits:
    max_steps: int = 4
    max_cost_usd: float = 0.05
    max_tool_calls_per_step: int = 6


@dataclass(frozen=True)
class TraceStep:
    step: int
    kind: str  # "model", "tool", "refused", "review"
    name: str
    detail: str
    cost_usd: float = 0.0


@dataclass
class AgentDraft:
    """``status``: ``draft`` (passed review; the outbox still applies approval rules) or ``needs_human``."""

    ticket_id: str
    status: str
    reply: str | None
    reason: str
    cost_usd: float
    trace: list[TraceStep] = field(default_factory=list)
    articles_used: list[str] = field(default_factory=list)
    orders_used: list[str] = field(default_factory=list)


class CustomerTools:
    """The allow-listed tools, bound to one ticket's customer. Results carry no names or contact data."""

    def __init__(
        self,
        knowledge_base: KnowledgeBase,
        orders: pd.DataFrame,
        history: pd.DataFrame,
        customer_id: str,
    ):
        self.knowledge_base = knowledge_base
        self.customer_id = customer_id
        self._orders = orders[orders["customer_id"] == customer_id].set_index("order_id")
        self._history = history[history["customer_id"] == customer_id]
        self.articles_used: list[str] = []
        self.orders_used: list[str] = []

    def call(self, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        if name == "search_knowledge_base":
            hits = self.knowledge_base.search(str(arguments.get("query", "")))
            self.articles_used += [hit.article.id for hit in hits]
            return {
                "articles": [
                    {"id": h.article.id, "title": h.article.title, "text": h.article.text} for h in hits
                ]
            }
        if name == "lookup_order":
            order_id = str(arguments.get("order_id", ""))
            if order_id not in self._orders.index:  # another customer's order looks exactly like none
                return {"error": f"no order {order_id[:20]} for this customer"}
            self.orders_used.append(order_id)
            order = self._orders.loc[order_id]
            return {
                "order_id": order_id,
                "product": order["product"],
                "amount_eur": float(order["amount_eur"]),
                "status": order["status"],
                "ordered_at": str(order["ordered_at"])[:10],
            }
        if name == "customer_history":
            return {
                "tickets": [
                    {"created_at": str(row["created_at"])[:10], "intent": row.get("intent")}
                    for row in self._history.to_dict("records")
                ][-10:],
                "orders": sorted(self._orders.index)[-10:],
            }
        raise KeyError(name)


@dataclass(frozen=True)
class Reviewer:
    """Policy checks of a draft reply; an empty list means it may go to the outbox."""

    refund_limit_eur: float
    other_customers: pd.DataFrame  # customer_id, name, email, phone of everybody
    own_orders: frozenset[str]
    customer_id: str

    def violations(self, reply: str) -> list[str]:
        found = []
        if _REFUND_WORDS.search(reply):
            amounts = [_amount(a or b) for a, b in _MONEY.findall(reply)]
            over = [a for a in amounts if a is not None and a > self.refund_limit_eur]
            if over:
                found.append(
                    f"promises a refund of {max(over):.2f} EUR, over the {self.refund_limit_eur:.0f} limit"
                )
        foreign_orders = sorted(set(_ORDER_ID.findall(reply)) - self.own_orders)
        if foreign_orders:
            found.append(f"mentions orders of another customer: {foreign_orders}")
        everybody = self.other_customers
        own = everybody[everybody["customer_id"] == self.customer_id]
        others = everybody[everybody["customer_id"] != self.customer_id]
        lowered = reply.lower()
        for column in ("email", "phone", "name"):
            mine = {str(value).lower() for value in own[column].dropna()}  # namesakes are not a leak
            leaked = [
                v for v in others[column].dropna() if str(v).lower() in lowered and str(v).lower() not in mine
            ]
            if leaked:
                found.append(f"contains another customer's {column}")
        placeholders = unresolved_placeholders(reply)
        if placeholders:
            found.append(f"unresolved placeholders {placeholders}")
        return found


def _amount(text: str) -> float | None:
    """An amount as written in English or continental style: 1,250.00 / 1.250,00 / 1.250 / 49,90."""
    cleaned = text.rstrip(".,")
    if "," in cleaned and "." in cleaned:  # the last separator is the decimal one
        decimal = max(cleaned.rfind(","), cleaned.rfind("."))
        cleaned = re.sub(r"[.,]", "", cleaned[:decimal]) + "." + cleaned[decimal + 1 :]
    elif re.fullmatch(r"\d{1,3}(?:[.,]\d{3})+", cleaned):  # thousands separators only: 1.200 / 1,200
        cleaned = re.sub(r"[.,]", "", cleaned)
    try:
        return float(cleaned.replace(",", "."))
    except ValueError:
        return None


def draft_reply(
    ticket: Mapping[str, Any],
    *,
    gateway: LLMGateway,
    tier: str,
    prompt: Prompt,
    tools: CustomerTools,
    reviewer: Reviewer,
    ctx: CallContext,
    limits: AgentLimits = AgentLimits(),
) -> AgentDraft:
    """Run the agent on one ticket; returns a reviewed draft or the reason a person must take over."""
    messages, placeholders = gateway.messages(prompt, ticket, ctx.workflow)
    draft = AgentDraft(ticket["ticket_id"], "needs_human", None, "", 0.0)
    refused = False
    for step in range(1, limits.max_steps + 1):
        next_turn = gateway.tool_request(tier, prompt, messages, TOOL_SCHEMAS)
        if draft.cost_usd + gateway.worst_case_cost(tier, next_turn) > limits.max_cost_usd:
            return _stop(draft, tools, f"cost budget of {limits.max_cost_usd} USD reached before step {step}")
        turn = gateway.tool_step(tier, prompt, messages, TOOL_SCHEMAS, ctx)
        draft.cost_usd += turn.cost_usd
        if turn.message is None:
            draft.trace.append(TraceStep(step, "model", tier, f"failed: {turn.failure}", turn.cost_usd))
            return _stop(draft, tools, f"model turn failed: {turn.failure}")
        calls = list(turn.message.tool_calls or [])
        draft.trace.append(
            TraceStep(step, "model", tier, f"{len(calls)} tool calls" if calls else "answer", turn.cost_usd)
        )
        if not calls:
            return _review(
                draft, turn.message.content or "", prompt, placeholders, reviewer, tools, refused, step
            )
        messages = [*messages, turn.message.model_dump(exclude_none=True)]
        results, refused_now = _run_tools(calls[: limits.max_tool_calls_per_step], tools, draft, step)
        refused |= refused_now
        messages += [
            {"role": "tool", "tool_call_id": call_id, "content": result} for call_id, result in results
        ]
    return _stop(draft, tools, f"step budget of {limits.max_steps} model turns reached without an answer")


def _run_tools(
    calls, tools: CustomerTools, draft: AgentDraft, step: int
) -> tuple[list[tuple[str, str]], bool]:
    """Allowed calls run in parallel; anything else is refused. Results are redacted before the model
    sees them (they hold no names by design; this catches contact data in stored free text)."""

    def run(call) -> tuple[str, str, TraceStep]:
        name = call.function.name
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except json.JSONDecodeError:
            arguments = None
        if name not in ALLOWED_TOOLS:
            return (
                call.id,
                json.dumps({"error": f"tool {name[:40]!r} is not available"}),
                TraceStep(step, "refused", name[:60], "not on the allow-list: not executed"),
            )
        if not isinstance(arguments, dict):
            return (
                call.id,
                json.dumps({"error": "arguments are not a JSON object"}),
                TraceStep(step, "refused", name, "unreadable arguments"),
            )
        result = json.dumps(tools.call(name, arguments), default=str)
        return (
            call.id,
            redact_text(result).values["text"],
            TraceStep(step, "tool", name, json.dumps(arguments)[:200]),
        )

    with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
        outcomes = list(pool.map(run, calls))
    draft.trace += [trace for _, _, trace in outcomes]
    refused = any(trace.kind == "refused" for _, _, trace in outcomes)
    return [(call_id, result) for call_id, result, _ in outcomes], refused


def _review(draft, content, prompt, placeholders, reviewer: Reviewer, tools, refused, step) -> AgentDraft:
    try:
        answer = prompt.output_model.model_validate_json(content)
    except ValidationError:
        return _stop(draft, tools, "the final answer did not match the output schema")
    reply = restore(answer.reply, placeholders)
    problems = reviewer.violations(reply)
    if refused:
        problems.append("the model called a tool outside its allow-list (possible prompt injection)")
    draft.reply = reply
    draft.trace.append(TraceStep(step, "review", "reviewer", "; ".join(problems) or "passed"))
    if problems:
        return _stop(draft, tools, "review failed: " + "; ".join(problems))
    draft.status, draft.reason = "draft", "reviewed: no policy violation"
    draft.articles_used, draft.orders_used = sorted(set(tools.articles_used)), sorted(set(tools.orders_used))
    return draft


def _stop(draft: AgentDraft, tools: CustomerTools, reason: str) -> AgentDraft:
    draft.status, draft.reason = "needs_human", reason
    draft.articles_used, draft.orders_used = sorted(set(tools.articles_used)), sorted(set(tools.orders_used))
    return draft
