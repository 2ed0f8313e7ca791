"""Router benchmark: cost and accuracy of routing strategies on a labelled support-ticket set.

Strategies: always-strong, always-small, local model only, the calibrated router, and random routing
with the calibrated router's strong share (RouteLLM's baseline). The ticket set is generated here
from a seed; a local TF-IDF + logistic-regression model gives the class probabilities the router uses
(its confidence, and its support for the small tier's answer in the cascade). The ``small`` and
``strong`` LLM tiers are the local OpenAI-compatible test server (``tests/llm_server.py``, loaded by
path because ``tests/`` is not a package and test code does not ship in the product); it answers
correctly with a configured accuracy that drops on harder tickets. Every LLM answer goes through the
real gateway (redaction, ledger, structured output), and costs are the ledger's. The router is
calibrated on its own split and then run on the test split exactly as the product runs it (``route``,
``carry_out``, ``gateway_ask``), live through the gateway, so an escalation pays for both calls.

Run: ``python -m benchmarks.router`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import random
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from orchestration_pipelines.governance import load_data_policy
from orchestration_pipelines.ledger import CallContext, CostLedger
from orchestration_pipelines.llm import Backoff, LLMGateway, Tier
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.prompt_registry import PromptRegistry
from orchestration_pipelines.router import (
    Ask,
    Route,
    RoutedAnswer,
    RouteDecision,
    RoutingContext,
    TierAnswer,
    calibrate_thresholds,
    carry_out,
    gateway_ask,
    labelled_item,
    load_router_policy,
    route,
)

CATEGORIES = ("billing", "login", "shipping", "refund", "technical", "cancellation")
_VOCABULARY = {
    "billing": "invoice charged twice payment card statement fee billing amount vat receipt overcharged",
    "login": "password login account locked reset sign two-factor code username access email verify",
    "shipping": "delivery parcel tracking courier shipped late address package arrived warehouse dispatch",
    "refund": "refund money back return reimbursement credit returned item refunded policy damaged",
    "technical": "error crash app bug update firmware screen connect wifi reboot broken",
    "cancellation": "cancel subscription terminate contract renewal stop plan unsubscribe notice end",
}
_FILLER = [
    "hello",
    "please",
    "help",
    "thanks",
    "today",
    "order",
    "customer",
    "issue",
    "question",
    "urgent",
    "again",
    "week",
    "still",
]
# Prices per 1k tokens (input, output) of typical small and strong hosted models.
PRICES = {"small": (0.00015, 0.0006), "strong": (0.0025, 0.01)}
LLM_TIERS = (Route.SMALL, Route.STRONG)
TRIAGE = PromptRegistry().get("support_triage", 1)


def _load_test_server():
    path = Path(__file__).resolve().parents[1] / "tests" / "llm_server.py"
    spec = importlib.util.spec_from_file_location("llm_test_server", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Ticket:
    subject: str
    body: str
    label: str
    difficulty: float  # 0 = unambiguous, 1 = as many misleading words as signal


def generate_tickets(n: int, seed: int) -> list[Ticket]:
    """Tickets whose bodies mix their category's words with words of a distractor category."""
    rng = random.Random(seed)
    words = {category: text.split() for category, text in _VOCABULARY.items()}
    tickets = []
    for index in range(n):
        label = rng.choice(CATEGORIES)
        distractor = rng.choice([c for c in CATEGORIES if c != label])
        difficulty = rng.betavariate(1.6, 2.4)
        signal = 1 + round(9 * (1 - difficulty))
        noise = round(8 * difficulty)
        body = rng.choices(words[label], k=signal) + rng.choices(words[distractor], k=noise)
        body += rng.choices(_FILLER, k=6)
        rng.shuffle(body)
        tickets.append(Ticket(f"Request {index:05d}", " ".join(body), label, difficulty))
    return tickets


def oracle_responder(tickets: list[Ticket], accuracy: dict[str, float]):
    """The test server's answer: correct with probability ``1 - (1 - accuracy) * 2 * difficulty``.

    Deterministic per (model, ticket) so every strategy sees the same LLM answers.
    """
    by_subject = {ticket.subject: ticket for ticket in tickets}

    def respond(body: dict) -> str:
        subject = re.search(r"Subject: (.*)", body["messages"][-1]["content"]).group(1).strip()
        ticket = by_subject[subject]
        seed = hashlib.sha256(f"{body['model']}|{subject}".encode()).digest()
        rng = random.Random(seed)
        p_correct = min(1.0, max(0.0, 1 - (1 - accuracy[body["model"]]) * 2 * ticket.difficulty))
        wrong = [c for c in CATEGORIES if c != ticket.label]
        category = ticket.label if rng.random() < p_correct else rng.choice(wrong)
        return json.dumps({"category": category, "priority": "normal", "confidence": round(p_correct, 2)})

    return respond


def train_local_model(tickets: list[Ticket]):
    vectorizer = TfidfVectorizer()
    model = LogisticRegression(max_iter=1000)
    model.fit(vectorizer.fit_transform([t.body for t in tickets]), [t.label for t in tickets])
    return vectorizer, model


def local_distributions(vectorizer, model, tickets: list[Ticket]) -> list[dict[str, float]]:
    probabilities = model.predict_proba(vectorizer.transform([t.body for t in tickets]))
    return [dict(zip(model.classes_, row.tolist(), strict=True)) for row in probabilities]


def ask_for(gateway: LLMGateway, ticket: Ticket, run_id: str) -> Ask:
    record = {"subject": ticket.subject, "body": ticket.body, "language": "en"}
    ctx = CallContext(workflow="support", asset="router_benchmark", run_id=run_id)
    return gateway_ask(gateway, TRIAGE, record, ctx, label_field="category")


def label_with_llms(gateway: LLMGateway, tickets: list[Ticket], workers: int) -> dict[str, list[TierAnswer]]:
    """Each ticket through each tier once, in ticket order: the labelled data and the baselines' answers."""

    def ask(args: tuple[Route, Ticket]) -> TierAnswer:
        tier, ticket = args
        answer = ask_for(gateway, ticket, "labelling")(tier)
        if answer.tier != tier:
            raise RuntimeError(f"benchmark call for {ticket.subject} on {tier} did not complete")
        return answer

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return {tier: list(pool.map(ask, [(tier, t) for t in tickets])) for tier in LLM_TIERS}


@dataclass(frozen=True)
class Strategy:
    name: str
    accuracy: float
    cost_usd: float
    strong_share: float  # items with a strong call, directly or escalated
    escalated: float = 0.0


def summarise(name: str, answers: list[RoutedAnswer], tickets: list[Ticket]) -> Strategy:
    n = len(tickets)
    return Strategy(
        name,
        sum(a.label == t.label for a, t in zip(answers, tickets, strict=True)) / n,
        sum(a.cost_usd for a in answers),
        sum(Route.STRONG in a.calls for a in answers) / n,
        sum(a.escalated for a in answers) / n,
    )


def fixed(chosen: Route) -> RouteDecision:
    return RouteDecision(chosen, "baseline", "baseline")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1200, help="tickets to train the local model")
    parser.add_argument("--calibrate", type=int, default=900, help="labelled tickets to calibrate the router")
    parser.add_argument("--test", type=int, default=1200, help="tickets to evaluate the strategies")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--small-accuracy", type=float, default=0.84)
    parser.add_argument("--strong-accuracy", type=float, default=0.95)
    parser.add_argument("--target", type=float, default=0.95, help="share of always-strong accuracy to reach")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    llm_server = _load_test_server()

    tickets = generate_tickets(args.train + args.calibrate + args.test, args.seed)
    train, calibration, test = (
        tickets[: args.train],
        tickets[args.train : args.train + args.calibrate],
        tickets[args.train + args.calibrate :],
    )
    vectorizer, model = train_local_model(train)
    accuracy = {"small-model": args.small_accuracy, "strong-model": args.strong_accuracy}
    local = {
        name: local_distributions(vectorizer, model, split)
        for name, split in (("cal", calibration), ("test", test))
    }

    with (
        tempfile.TemporaryDirectory() as tmp,
        llm_server.LLMTestServer(oracle_responder(tickets, accuracy)) as server,
    ):
        store = OpStore(f"sqlite:///{Path(tmp) / 'opstore.sqlite'}")
        tiers = [
            Tier(
                name=name,
                model=f"{name}-model",
                base_url=server.base_url,
                api_key="benchmark",
                input_price_per_1k=PRICES[name][0],
                output_price_per_1k=PRICES[name][1],
                requests_per_minute=1_000_000,
                tokens_per_minute=1_000_000_000,
            )
            for name in ("small", "strong")
        ]
        gateway = LLMGateway(
            tiers,
            CostLedger(store, daily_budget_usd=1e9),
            load_data_policy(),
            cache=None,
            backoff=Backoff(0.01, 0.1),
        )
        calibration_answers = label_with_llms(gateway, calibration, args.workers)
        calibrated = calibrate_thresholds(
            [
                labelled_item(t.label, probabilities, small, strong)
                for t, probabilities, small, strong in zip(
                    calibration,
                    local["cal"],
                    calibration_answers[Route.SMALL],
                    calibration_answers[Route.STRONG],
                    strict=True,
                )
            ],
            args.target,
            relative_to_strong=True,
            new_items=len(test),
        )
        policy = calibrated.apply(load_router_policy(), "benchmark-calibrated")
        test_answers = label_with_llms(gateway, test, args.workers)
        costs = {tier: float(np.mean([a.cost_usd for a in test_answers[tier]])) for tier in LLM_TIERS}
        decisions = [
            route(RoutingContext(local_confidence=max(p.values()), tier_cost_usd=costs), policy)
            for p in local["test"]
        ]

        def run_router(index: int) -> RoutedAnswer:
            ask = ask_for(gateway, test[index], "calibrated-router")
            return carry_out(decisions[index], local["test"][index], ask)

        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            router_answers = list(pool.map(run_router, range(len(test))))
        router_rows = gateway.ledger.rows(run_id="calibrated-router")
        requests = len(server.requests)

    def replay(decisions: list[RouteDecision]) -> list[RoutedAnswer]:
        """The same decisions on the answers already recorded (the server's answers are deterministic)."""
        return [
            carry_out(d, local["test"][i], lambda tier, i=i: test_answers[tier][i])
            for i, d in enumerate(decisions)
        ]

    n = len(test)
    router = summarise("calibrated router", router_answers, test)
    strategies = [
        summarise("always strong", replay([fixed(Route.STRONG)] * n), test),
        summarise("always small", replay([fixed(Route.SMALL)] * n), test),
        summarise("local model only", replay([fixed(Route.LOCAL)] * n), test),
        router,
    ]
    rng = random.Random(args.seed)
    strong_count = sum(Route.STRONG in a.calls for a in router_answers)
    random_same_share, random_same_mix = [], []
    for _ in range(50):  # average over random draws
        picks = set(rng.sample(range(n), strong_count))
        same_share = [fixed(Route.STRONG if i in picks else Route.SMALL) for i in range(n)]
        random_same_share.append(summarise("", replay(same_share), test))
        random_same_mix.append(summarise("", replay(rng.sample(decisions, n)), test))
    for name, draws in (
        ("random, same strong share (rest small)", random_same_share),
        ("random, router's decisions shuffled", random_same_mix),
    ):
        strategies.append(
            Strategy(
                name,
                float(np.mean([d.accuracy for d in draws])),
                float(np.mean([d.cost_usd for d in draws])),
                float(np.mean([d.strong_share for d in draws])),
            )
        )

    strong = strategies[0]
    print("Router benchmark: support-ticket triage, 6 categories")
    print(
        f"  tickets: {len(train)} to train the local model, {len(calibration)} to calibrate, {n} to test "
        f"(seed {args.seed})"
    )
    print(
        f"  LLM tiers: the local OpenAI-compatible test server with a configured accuracy "
        f"(small {args.small_accuracy:.0%}, strong {args.strong_accuracy:.0%} on average, lower on harder "
        f"tickets); prices per 1k tokens in/out: small {PRICES['small']}, strong {PRICES['strong']} USD"
    )
    print(
        "  caveat: the test server's wrong answers are uniform over the other categories, so they are not "
        "drawn to the local model's mistakes as a real LLM's can be (which flatters the cascade's check); "
        "the confidence it reports is its configured probability and is not used"
    )
    router_cost = sum(row["cost_usd"] for row in router_rows)
    print(
        f"  {requests} requests through the gateway; the router's own run: {len(router_rows)} requests, "
        f"ledger {router_cost:.4f} USD (router total {router.cost_usd:.4f} USD)"
    )
    print(
        f"  calibrated policy: local >= {calibrated.local_min:.2f}, small LLM (cascade) >= "
        f"{calibrated.small_min:.2f}, else strong; the small answer stands if the local model gives it >= "
        f"{calibrated.small_min_local_support:.2f}, else escalated to strong. Cheapest on the calibration "
        f"split (grid 0.05) whose accuracy minus {args.target:.0%} x always-strong's, per ticket, has a 95% "
        f"lower prediction bound >= 0 over {n} new tickets (there: {calibrated.accuracy:.3f})"
    )
    print()
    print(f"  {'strategy':<42} {'accuracy':>9} {'cost USD':>10} {'cost vs strong':>15} {'strong share':>13}")
    for s in strategies:
        print(
            f"  {s.name:<42} {s.accuracy:>9.3f} {s.cost_usd:>10.4f} {s.cost_usd / strong.cost_usd:>15.1%} "
            f"{s.strong_share:>13.1%}"
        )
    accuracy_ratio, cost_ratio = router.accuracy / strong.accuracy, router.cost_usd / strong.cost_usd
    best_random = max(strategies[-2:], key=lambda s: s.accuracy)
    levels = {level: sum(a.level == level for a in router_answers) / n for level in Route}
    print()
    print(
        f"  router: {levels[Route.LOCAL]:.1%} answered locally, {levels[Route.SMALL]:.1%} by the small tier, "
        f"{router.strong_share - router.escalated:.1%} sent to strong directly, {router.escalated:.1%} "
        f"escalated to strong after the small call (paying for both); strong calls needed: "
        f"{router.strong_share:.1%} of items"
    )
    checks = [
        (
            f"accuracy >= {args.target:.0%} of always-strong: {accuracy_ratio:.1%}",
            accuracy_ratio >= args.target,
        ),
        (f"cost <= 30% of always-strong: {cost_ratio:.1%}", cost_ratio <= 0.30),
        (
            f"better than random routing at the same strong share: {router.accuracy:.3f} vs "
            f"{best_random.accuracy:.3f} ({best_random.name})",
            router.accuracy > best_random.accuracy,
        ),
        (
            f"ledger agrees with the router's cost: {router_cost:.4f} vs {router.cost_usd:.4f} USD",
            abs(router_cost - router.cost_usd) < 1e-9,
        ),
    ]
    for text, passed in checks:
        print(f"  {'PASS' if passed else 'MISS'}  {text}")
    met = all(passed for _, passed in checks)
    print(f"  targets {'met' if met else 'NOT met'}; {time.perf_counter() - started:.0f} s")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
