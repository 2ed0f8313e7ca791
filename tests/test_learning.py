"""Reviewers' corrections as training data: logic on DataFrames of feedback rows."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from benchmarks.feedback import FRAUD_PATTERN, feedback_rows, parcelswap_tickets
from orchestration_pipelines.fraud import train_builtin
from orchestration_pipelines.fraud.features import compute_features
from orchestration_pipelines.fraud.generator import generate_transactions, make_population
from orchestration_pipelines.learning import fraud as fraud_learning
from orchestration_pipelines.learning import router as router_learning
from orchestration_pipelines.learning import support as support_learning
from orchestration_pipelines.learning.feedback import FeedbackError, latest_corrections
from orchestration_pipelines.router import load_router_policy
from orchestration_pipelines.support.classifier import train_classifier
from orchestration_pipelines.support.generator import generate_tickets, make_customers, make_orders


def _rows(workflow, label_field, pairs):
    cases = pd.DataFrame(pairs, columns=["case_id", "value"])
    return feedback_rows(workflow, label_field, cases, "value")


@pytest.fixture(scope="module")
def fraud_world():
    pop = make_population(600, seed=5)
    history = generate_transactions(pop, "2026-10-01", 30, seed=5, id_prefix="H")
    emerging = {FRAUD_PATTERN: 60}
    reviewed = generate_transactions(pop, "2026-10-31", 7, seed=6, id_prefix="R", emerging=emerging)
    held_out = generate_transactions(pop, "2026-11-07", 7, seed=7, id_prefix="E", emerging=emerging)
    return history, reviewed, held_out


def test_analyst_labels_teach_the_fraud_model_a_pattern_it_missed(fraud_world):
    history, reviewed, held_out = fraud_world
    pattern_cases = reviewed[reviewed["fraud_pattern"] == FRAUD_PATTERN]
    feedback = _rows("fraud", "is_fraud", [(t, "fraud") for t in pattern_cases["transaction_id"]])

    before = train_builtin(history)
    after, use = fraud_learning.train_with_feedback(history, feedback, reviewed)

    features = compute_features(
        held_out.drop(columns=["is_fraud", "fraud_pattern"]), pd.concat([history, reviewed])
    )
    pattern = held_out["fraud_pattern"].eq(FRAUD_PATTERN).to_numpy()
    caught_before = (before.model.predict(features)[0][pattern] >= 0.5).mean()
    caught_after = (after.model.predict(features)[0][pattern] >= 0.5).mean()
    assert caught_after >= caught_before + 0.3, (caught_before, caught_after)
    assert use.by_label == {"fraud": len(pattern_cases), "legitimate": 0}
    assert use.added == len(pattern_cases) and use.overridden == 0
    assert sorted(use.used_ids) == sorted(feedback["feedback_id"])
    # corrections always train and never judge: the hold-out is the same ordinary traffic
    assert after.metrics["n_rows"] == before.metrics["n_rows"]
    assert after.metrics["n_train"] == before.metrics["n_train"] + len(pattern_cases)


def test_latest_correction_of_a_case_wins_and_overrides_the_history_label(fraud_world):
    history = fraud_world[0]
    legit, fraud = history[history.is_fraud == 0].iloc[0], history[history.is_fraud == 1].iloc[0]
    feedback = _rows(
        "fraud",
        "is_fraud",
        [(legit.transaction_id, "0"), (legit.transaction_id, "1"), (fraud.transaction_id, "legitimate"),
         ("T-not-anywhere", "1")],
    )  # fmt: skip
    labelled, use = fraud_learning.apply_fraud_feedback(history, feedback, weight=2.0)

    by_id = labelled.set_index("transaction_id")
    assert by_id.loc[legit.transaction_id, "is_fraud"] == 1  # the later "1" won over the earlier "0"
    assert by_id.loc[fraud.transaction_id, "is_fraud"] == 0
    assert by_id.loc[[legit.transaction_id, fraud.transaction_id], "train_only"].all()
    assert (by_id.loc[[legit.transaction_id, fraud.transaction_id], "sample_weight"] == 2.0).all()
    assert by_id["train_only"].sum() == 2 and len(labelled) == len(history)
    assert use.overridden == 2 and use.changed_label == 2 and use.added == 0
    assert use.used_ids == ["fb-fraud-1", "fb-fraud-2"]
    assert use.superseded_ids == ["fb-fraud-0"] and use.unmatched_ids == ["fb-fraud-3"]
    assert use.card_entry()["by_label"] == {"fraud": 1, "legitimate": 1}


def test_no_feedback_leaves_history_as_it_was(fraud_world):
    history = fraud_world[0]
    labelled, use = fraud_learning.apply_fraud_feedback(history, _rows("fraud", "is_fraud", []))
    assert labelled["is_fraud"].tolist() == history["is_fraud"].tolist()
    assert not labelled["train_only"].any() and use.used_ids == []


def test_unknown_fraud_label_or_field_is_refused_by_name():
    bad_value = _rows("fraud", "is_fraud", [("T1", "1"), ("T2", "maybe")])
    with pytest.raises(FeedbackError, match=r"unknown is_fraud values.*fb-fraud-1: 'maybe'.*accepted"):
        latest_corrections(bad_value, "is_fraud", fraud_learning.LABEL_VALUES)
    bad_field = _rows("fraud", "amount", [("T1", "12")])
    with pytest.raises(FeedbackError, match=r"label fields other than 'is_fraud'.*fb-fraud-0: 'amount'"):
        fraud_learning.apply_fraud_feedback(pd.DataFrame(columns=["transaction_id", "is_fraud"]), bad_field)


@pytest.fixture(scope="module")
def ticket_world():
    customers = make_customers(150, 3)
    orders = make_orders(customers, 3, 3)
    labelled = generate_tickets(1500, 3, customers, orders, id_prefix="H")
    reviewed = parcelswap_tickets(25, 4, customers, orders, "R", "reviewed")
    held_out = parcelswap_tickets(100, 5, customers, orders, "P", "held_out")
    return labelled, reviewed, held_out


def test_corrected_intents_teach_the_classifier_a_company_phrasing(ticket_world):
    labelled, reviewed, held_out = ticket_world
    feedback = _rows("support", "intent", [(t, "refund") for t in reviewed["ticket_id"]])

    before, _ = train_classifier(labelled, text_columns=("subject", "body"), intent="intent")
    after, report, use = support_learning.train_with_feedback(labelled, feedback, reviewed)

    accuracy_before = (before.predict(held_out).intent == "refund").mean()
    accuracy_after = (after.predict(held_out).intent == "refund").mean()
    assert accuracy_after >= accuracy_before + 0.3, (accuracy_before, accuracy_after)
    assert use.by_intent == {"refund": 25} and use.added == 25 and use.relabelled == 0
    assert report.holdout_rows == 300  # the corrected tickets never judge the model


def test_intent_correction_of_a_labelled_ticket_relabels_it(ticket_world):
    labelled = ticket_world[0]
    ticket = labelled[labelled["intent"] == "billing"].iloc[0]
    ordinary, corrected, use = support_learning.intent_corrections(
        labelled, _rows("support", "intent", [(ticket.ticket_id, "refund")])
    )
    assert ticket.ticket_id not in set(ordinary["ticket_id"])
    assert corrected[["ticket_id", "intent"]].values.tolist() == [[ticket.ticket_id, "refund"]]
    assert use.relabelled == 1 and use.added == 0


def test_unknown_intent_is_refused_by_name(ticket_world):
    labelled = ticket_world[0]
    feedback = _rows("support", "intent", [(labelled.ticket_id.iloc[0], "refnud")])
    with pytest.raises(FeedbackError, match=r"unknown intent values.*fb-support-0: 'refnud'.*'refund'"):
        support_learning.train_with_feedback(labelled, feedback)


def test_weights_must_be_positive(fraud_world):
    with pytest.raises(ValueError, match="positive"):
        fraud_learning.apply_fraud_feedback(fraud_world[0], _rows("fraud", "is_fraud", []), weight=0)


def _routed(n: int, seed: int, wrong_band: tuple[float, float], wrong_share: float, tier="local"):
    """Routed tickets whose local answer is wrong in ``wrong_share`` of the ``wrong_band`` confidences."""
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.85, 1.0, n).round(3)
    in_band = (confidence >= wrong_band[0]) & (confidence < wrong_band[1])
    wrong = in_band & (rng.random(n) < wrong_share)
    routes = pd.DataFrame(
        {
            "ticket_id": [f"T{i}" for i in range(n)],
            "local_intent": "shipping",
            "local_confidence": confidence,
            "intent": "shipping",
            "answered_by": tier,
        }
    )
    corrections = _rows("support", "intent", [(t, "refund") for t in routes.loc[wrong, "ticket_id"]])
    approved = set(routes.loc[~wrong, "ticket_id"])
    return routes, corrections, approved


def test_router_stops_trusting_the_local_model_where_reviewers_corrected_it():
    policy = load_router_policy()
    routes, corrections, approved = _routed(400, 1, (0.85, 0.95), 0.5)
    outcomes = router_learning.reviewed_outcomes(routes, corrections, approved, ["refund", "shipping"])
    assert outcomes["local_correct"].sum() == len(approved) and len(outcomes) == 400

    recalibrated, report = router_learning.recalibrate_router(policy, outcomes, "2025-01.2+review1")

    assert policy.local_min == 0.85 and recalibrated.local_min == 0.95
    assert recalibrated.version == "2025-01.2+review1" and recalibrated.human_risk == policy.human_risk
    local = report[0]
    assert (local.tier, local.threshold_before, local.threshold_after) == ("local", 0.85, 0.95)
    assert local.accuracy_before < 0.9 <= local.accuracy_after


def test_router_keeps_thresholds_that_reviewers_confirmed_or_barely_saw():
    policy = load_router_policy()
    good = _routed(400, 2, (0.85, 0.95), 0.03)
    few = _routed(15, 3, (0.85, 1.0), 1.0)  # every answer wrong, but too few reviews to judge
    for routes, corrections, approved in (good, few):
        outcomes = router_learning.reviewed_outcomes(routes, corrections, approved, ["refund", "shipping"])
        recalibrated, _ = router_learning.recalibrate_router(policy, outcomes, "next")
        assert (recalibrated.local_min, recalibrated.small_min) == (policy.local_min, policy.small_min)


def test_router_sends_the_small_tiers_weak_band_to_the_strong_tier():
    policy = replace(load_router_policy(), local_min=0.95, small_min=0.5)
    routes, corrections, approved = _routed(600, 4, (0.85, 0.9), 0.8, tier="small")
    routes["local_confidence"] = routes["local_confidence"] - 0.3  # the band the small tier answers
    routes["local_intent"] = "refund"  # the local model is right wherever the small tier was wrong
    outcomes = router_learning.reviewed_outcomes(routes, corrections, approved, ["refund", "shipping"])

    recalibrated, report = router_learning.recalibrate_router(policy, outcomes, "next")

    assert recalibrated.local_min == 0.95 and recalibrated.small_min == 0.6
    assert report[1].tier == "small" and report[1].accuracy_after >= 0.9
