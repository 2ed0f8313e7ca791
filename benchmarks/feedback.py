"""Corrections improve the models: reviewers' labels on a pattern the model gets wrong, before and after.

Per seed and workflow:

* **fraud**: a model trained on 30 days of history scores a week in which a new pattern appears
  (``night_cash_out`` from ``EMERGING_PATTERNS``: ATM withdrawals in the small hours at home, which
  history never showed). Analysts correct that week's cases of the pattern to ``is_fraud``
  ``fraud``. The model is retrained
  with those feedback rows (``learning.fraud.train_with_feedback``) and both models are judged on the
  FOLLOWING week, generated from another seed (no corrected case in it): recall of the pattern at the
  policy's review threshold (probability >= ``auto_clear_below``), and on the rest of the traffic
  PR-AUC, recall at 1% FPR and the share of legitimate cases flagged. (Adding ``legitimate`` verdicts
  on the week's legitimate cases the model flagged, 137 on seed 121, cost PR-AUC on other traffic
  -0.024, interval [-0.047, -0.001]: those honest look-alikes resemble real fraud.)
* **support**: a classifier trained on generated tickets meets a company's own phrasing of refunds
  (its returns service, "ParcelSwap", depot and courier wording), which it files under shipping.
  Reviewers correct the intent of the 25 such tickets of a batch that it got wrong; the classifier is
  retrained (``learning.support.train_with_feedback``) and judged on another seed's tickets: accuracy
  on 200 pattern tickets worded in other sentences, and on 1,000 ordinary tickets.

Targets, on every seed: the pattern's recall (fraud) / accuracy (support) on the held-out set rises by
at least 0.3; on the other traffic, PR-AUC and recall at 1% FPR fall by no more than noise (the 95%
paired bootstrap interval of the change reaches 0), legitimate cases flagged rise by at most 0.5
points, and ordinary tickets' accuracy falls by at most 0.01. Figures are printed per seed with the
mean and the spread (min..max) over seeds, and the CPU seconds of each retrain.

Usage: ``python -m benchmarks.feedback [--seeds N] [--quick]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import numpy as np
import pandas as pd

from orchestration_pipelines.fraud import train_builtin
from orchestration_pipelines.fraud.features import compute_features
from orchestration_pipelines.fraud.generator import generate_transactions, make_population
from orchestration_pipelines.fraud.model import evaluate, paired_difference_intervals
from orchestration_pipelines.fraud.policy import load_policy
from orchestration_pipelines.learning import fraud as fraud_learning
from orchestration_pipelines.learning import support as support_learning
from orchestration_pipelines.learning.feedback import FEEDBACK_COLUMNS
from orchestration_pipelines.support.classifier import train_classifier
from orchestration_pipelines.support.generator import generate_tickets, make_customers, make_orders

PATTERN_GAIN_TARGET = 0.3
LEGIT_FLAGGED_TOLERANCE = 0.005  # legitimate cases newly flagged: at most half a percentage point more
ACCURACY_TOLERANCE = 0.01  # ordinary tickets: about two standard errors on 1,000 held-out tickets
FRAUD_PATTERN = "night_cash_out"


def feedback_rows(workflow: str, label_field: str, cases: pd.DataFrame, value_column: str) -> pd.DataFrame:
    """Feedback rows as a reviewer's ``correct`` decision writes them, one per case."""
    now = pd.Timestamp("2026-11-26T12:00:00Z")
    return pd.DataFrame(
        {
            "feedback_id": [f"fb-{workflow}-{i}" for i in range(len(cases))],
            "workflow": workflow,
            "case_id": cases["case_id"].to_numpy(),
            "item_id": [f"item-{i}" for i in range(len(cases))],
            "label_field": label_field,
            "corrected_value": cases[value_column].astype(str).to_numpy(),
            "reviewer": "analyst-1",
            "created_at": now + pd.to_timedelta(np.arange(len(cases)), unit="s"),
            "used_by_model_version": None,
        },
        columns=FEEDBACK_COLUMNS,
    )


def _timed(function, *args, **kwargs):
    started = time.process_time()
    result = function(*args, **kwargs)
    return result, time.process_time() - started


def fraud_case(seed: int, accounts: int, weight: float = fraud_learning.FEEDBACK_WEIGHT) -> dict[str, float]:
    threshold = load_policy().auto_clear_below
    pop = make_population(accounts, seed)
    history = generate_transactions(pop, "2026-10-01", 30, seed=seed, id_prefix="H")
    week = {FRAUD_PATTERN: accounts // 25}
    corrected_week = generate_transactions(pop, "2026-10-31", 7, seed=seed + 1, id_prefix="R", emerging=week)
    held_out = generate_transactions(pop, "2026-11-07", 7, seed=seed + 2, id_prefix="E", emerging=week)

    before, cpu_before = _timed(train_builtin, history, seed=seed)
    pattern_cases = corrected_week.loc[corrected_week["fraud_pattern"].eq(FRAUD_PATTERN), ["transaction_id"]]
    cases = pattern_cases.rename(columns={"transaction_id": "case_id"}).assign(verdict="fraud")
    feedback = feedback_rows("fraud", "is_fraud", cases, "verdict")
    (after, use), cpu_after = _timed(
        fraud_learning.train_with_feedback, history, feedback, corrected_week, weight=weight, seed=seed
    )

    context = pd.concat([history, corrected_week], ignore_index=True)
    features = compute_features(held_out.drop(columns=["is_fraud", "fraud_pattern"]), context)
    pattern = held_out["fraud_pattern"].eq(FRAUD_PATTERN).to_numpy()
    labels = held_out["is_fraud"].to_numpy()
    figures = {
        "corrections": len(feedback),
        "used": len(use.used_ids),
        "held_out_pattern_cases": int(pattern.sum()),
    }
    probabilities = {}
    for name, result, cpu in (("before", before, cpu_before), ("after", after, cpu_after)):
        probability = probabilities[name] = result.model.predict(features)[0]
        rest = evaluate(probability[~pattern], labels[~pattern])
        figures |= {
            f"pattern_recall_{name}": float((probability[pattern] >= threshold).mean()),
            f"other_pr_auc_{name}": rest["pr_auc"],
            f"other_recall_1pct_{name}": rest["recall_at_1pct_fpr"],
            f"legit_flagged_{name}": float((probability[labels == 0] >= threshold).mean()),
            f"train_cpu_s_{name}": cpu,
        }
    # a few dozen fraud cases of other patterns: whether a change is more than noise needs an interval
    change = paired_difference_intervals(
        labels[~pattern], probabilities["after"][~pattern], probabilities["before"][~pattern], seed
    )
    figures["other_pr_auc_change_ci"] = change["pr_auc"]
    figures["other_recall_1pct_change_ci"] = change["recall_at_1pct_fpr"]
    return figures


# A company's own words for a refund: "ParcelSwap" is its send-back-for-a-refund service; the tickets
# speak of depot, courier and status, which the generic training tickets use only for shipping. The
# reviewed tickets and the held-out ones share the jargon but not a sentence: the held-out set asks
# whether the model learnt the company's wording, not the reviewed sentences.
_OPENINGS = {
    "reviewed": (
        "My ParcelSwap parcel {order} reached your depot last week.",
        "The courier collected the {product} for ParcelSwap on Monday.",
        "ParcelSwap {order}: the depot scanned the {product} in.",
    ),
    "held_out": (
        "I dropped the {product} at a ParcelSwap point, it arrived at the depot.",
        "Your depot signed for my ParcelSwap box {order}.",
        "The ParcelSwap courier took the {product} away on Friday.",
    ),
}
_ASKS = {
    "reviewed": (
        "What is the status of my ParcelSwap?",
        "Please confirm the ParcelSwap is complete.",
        "When will the ParcelSwap be closed?",
    ),
    "held_out": (
        "Can you check where the ParcelSwap stands?",
        "Nothing has happened with the ParcelSwap since, please finish it.",
        "How long does a ParcelSwap take?",
    ),
}


def parcelswap_tickets(
    n: int, seed: int, customers: pd.DataFrame, orders: pd.DataFrame, prefix: str, sentences: str
) -> pd.DataFrame:
    """``n`` English refund tickets in the company's ParcelSwap wording (``sentences``: ``reviewed`` or
    ``held_out``), otherwise like generated tickets."""
    rng = random.Random(seed)
    base = generate_tickets(n, seed, customers, orders, id_prefix=prefix)
    bodies, subjects = [], []
    for order_id, name in zip(
        base["order_id"].fillna("O-100000"), base["body"].str.split().str[-1], strict=True
    ):
        fill = {
            "order": order_id,
            "product": rng.choice(("router X2", "smart plug", "mesh kit", "camera C1")),
        }
        opening = rng.choice(_OPENINGS[sentences]).format(**fill)
        bodies.append(f"Hello, {opening} {rng.choice(_ASKS[sentences])} Thanks, {name}")
        subjects.append(rng.choice(("ParcelSwap", "ParcelSwap status", "Depot", opening[:60])))
    return base.assign(subject=subjects, body=bodies, language="en", intent="refund", misleading=False)


def support_case(seed: int, tickets: int) -> dict[str, float]:
    customers = make_customers(max(100, tickets // 10), seed)
    orders = make_orders(customers, 3, seed)
    labelled = generate_tickets(tickets, seed, customers, orders, id_prefix="H")
    reviewed = parcelswap_tickets(25, seed + 1, customers, orders, "R", "reviewed")
    held_out_pattern = parcelswap_tickets(200, seed + 2, customers, orders, "P", "held_out")
    held_out = generate_tickets(1000, seed + 3, customers, orders, id_prefix="E")
    columns = {"urgency": "urgency", "language": "language"}

    (before, _), cpu_before = _timed(
        train_classifier, labelled, text_columns=("subject", "body"), intent="intent", seed=seed, **columns
    )
    wrong = reviewed[before.predict(reviewed).intent != reviewed["intent"].to_numpy()]
    feedback = feedback_rows("support", "intent", wrong.rename(columns={"ticket_id": "case_id"}), "intent")
    (after, _, use), cpu_after = _timed(
        support_learning.train_with_feedback, labelled, feedback, reviewed, seed=seed, **columns
    )
    figures = {"corrections": len(feedback), "used": len(use.used_ids)}
    for name, model, cpu in (("before", before, cpu_before), ("after", after, cpu_after)):
        pattern_predicted = model.predict(held_out_pattern).intent
        predicted = model.predict(held_out).intent
        figures |= {
            f"pattern_accuracy_{name}": float((pattern_predicted == "refund").mean()),
            f"other_accuracy_{name}": float((predicted == held_out["intent"].to_numpy()).mean()),
            f"train_cpu_s_{name}": cpu,
        }
    wrong_before = pd.Series(before.predict(held_out_pattern).intent).value_counts()
    figures["pattern_filed_as_before"] = ", ".join(f"{k} {v}" for k, v in wrong_before.head(3).items())
    return figures


def _spread(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ({min(values):.3f}..{max(values):.3f})"


def report(name: str, runs: list[dict], pattern: str, others: dict[str, float | None]) -> bool:
    """Print the figures; whether the pattern improved and ``others`` held on every seed.

    ``others`` maps a metric to the largest fall allowed (a rise for ``legit_flagged``), or ``None``:
    then the fall must be within noise, its 95% paired bootstrap interval reaching 0.
    """
    print(f"\n{name}: per seed")
    print(pd.DataFrame(runs).to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\n{name}: mean (min..max) over {len(runs)} seeds")
    met = True
    for metric in [pattern, *others]:
        before = [r[f"{metric}_before"] for r in runs]
        after = [r[f"{metric}_after"] for r in runs]
        gain = [a - b for a, b in zip(after, before, strict=True)]
        print(f"  {metric:<20} before {_spread(before)}  after {_spread(after)}  change {_spread(gain)}")
        if metric == pattern:
            met &= min(gain) >= PATTERN_GAIN_TARGET
        elif others[metric] is None:
            met &= all(r[f"{metric}_change_ci"][1] >= 0 for r in runs)
        elif metric == "legit_flagged":  # lower is better
            met &= max(gain) <= others[metric]
        else:
            met &= min(gain) >= -others[metric]
    cpu = [r["train_cpu_s_after"] / r["train_cpu_s_before"] for r in runs]
    print(f"  retrain CPU with feedback / without: {_spread(cpu)}")
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="repeats, each with its own data (default 3)")
    parser.add_argument("--quick", action="store_true", help="smaller data, 2 seeds")
    args = parser.parse_args(argv)
    seeds = range(2 if args.quick else args.seeds)
    accounts, tickets = (1000, 1500) if args.quick else (2000, 3000)
    fraud_runs = [fraud_case(101 + 10 * s, accounts) for s in seeds]
    fraud_met = report(
        "fraud",
        fraud_runs,
        "pattern_recall",
        {"other_pr_auc": None, "other_recall_1pct": None, "legit_flagged": LEGIT_FLAGGED_TOLERANCE},
    )
    support_runs = [support_case(201 + 10 * s, tickets) for s in seeds]
    support_met = report("support", support_runs, "pattern_accuracy", {"other_accuracy": ACCURACY_TOLERANCE})
    targets = f"pattern figure up by >= {PATTERN_GAIN_TARGET} on every seed, the others held (see --help)"
    verdict = {True: "met", False: "MISSED"}
    print(f"\nfraud: {verdict[fraud_met]}; support: {verdict[support_met]} ({targets})")
    return 0 if fraud_met and support_met else 1


if __name__ == "__main__":
    sys.exit(main())
