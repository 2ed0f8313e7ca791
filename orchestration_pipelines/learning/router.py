"""The router's confidence thresholds, recalibrated from what reviewers said about routed answers.

Every reviewed ticket tells whether the local model was right (its intent against the reviewer's: the
one they approved or the one they corrected to), whatever tier answered, and whether the tier that
answered was right. A tier stays trusted from its threshold up while its reviewed accuracy there could
still reach the target (the upper end of a 95% Wilson interval); where the evidence shows it below,
its threshold rises to the lowest level where it no longer does, within [current, never]. Thresholds
only rise here: reviewed tickets are the ones sent to people, not a sample of traffic, so they can
show where a tier fails but not vouch for it elsewhere; lowering stays ``calibrate_thresholds``' job on
labelled data. The result is a new policy version, to run in shadow and promote like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import sqrt

import numpy as np
import pandas as pd

from orchestration_pipelines.learning.feedback import latest_corrections, read_feedback, warehouse_cases
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.router import RouterPolicy

NEVER = 1.01  # a threshold no confidence reaches: the tier is not trusted at any confidence
GRID = tuple(np.round(np.arange(0.0, 1.0001, 0.05), 2))
MIN_REVIEWS = 20  # fewer reviewed answers above a threshold are no evidence against it
Z_95 = 1.96


def reviewed_outcomes(
    routes: pd.DataFrame, corrections: pd.DataFrame, approved_ids: list[str] | set[str], intents: list[str]
) -> pd.DataFrame:
    """Per reviewed ticket: local_confidence, answered_by, local_correct, answer_correct.

    ``routes`` are the routed tickets (ticket_id, local_intent, local_confidence, intent, answered_by);
    ``corrections`` the support workflow's feedback rows (``intent``); ``approved_ids`` the tickets a
    reviewer approved as answered. A ticket both approved and later corrected counts as corrected.
    """
    corrected = latest_corrections(corrections, "intent", intents).set_index("case_id")["value"]
    reviewed = routes[
        routes["ticket_id"].isin(corrected.index) | routes["ticket_id"].isin(list(approved_ids))
    ]
    corrected_to = corrected.reindex(reviewed["ticket_id"]).to_numpy()
    truth = np.where(pd.isna(corrected_to), reviewed["intent"].to_numpy(), corrected_to)
    return pd.DataFrame(
        {
            "ticket_id": reviewed["ticket_id"].to_numpy(),
            "local_confidence": reviewed["local_confidence"].to_numpy(float),
            "answered_by": reviewed["answered_by"].to_numpy(),
            "local_correct": reviewed["local_intent"].to_numpy() == truth,
            "answer_correct": reviewed["intent"].to_numpy() == truth,
        }
    )


def wilson_upper(correct: int, n: int, z: float = Z_95) -> float:
    """Upper end of the Wilson score interval of a proportion: optimistic for small samples."""
    if n == 0:
        return 1.0
    p = correct / n
    centre = p + z * z / (2 * n)
    spread = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


@dataclass(frozen=True)
class TierRecalibration:
    tier: str
    threshold_before: float
    threshold_after: float
    reviewed: int  # reviewed answers at or above the old threshold
    accuracy_before: float | None  # their accuracy
    accuracy_after: float | None  # accuracy of the reviewed answers at or above the new threshold


def trusted_from(
    confidence: np.ndarray, correct: np.ndarray, current: float, target: float, upper: float = NEVER
) -> float:
    """The lowest grid threshold >= ``current`` whose reviewed answers could still reach ``target``."""
    for threshold in [t for t in GRID if current <= t < upper] + [upper]:
        above = confidence >= threshold
        n = int(above.sum())
        if n < MIN_REVIEWS or wilson_upper(int(correct[above].sum()), n) >= target:
            return float(threshold)
    return float(upper)


def _accuracy(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> tuple[int, float | None]:
    above = confidence >= threshold
    return int(above.sum()), float(correct[above].mean()) if above.any() else None


def recalibrate_router(
    policy: RouterPolicy, outcomes: pd.DataFrame, version: str, target_accuracy: float = 0.9
) -> tuple[RouterPolicy, list[TierRecalibration]]:
    """A new policy ``version`` whose local and small thresholds rise where reviewers found them wrong.

    The local tier is judged on every reviewed ticket (the local answer is known for each); the small
    tier on the tickets it answered, by the local confidence that sent them to it.
    """
    confidence = outcomes["local_confidence"].to_numpy(float)
    local_correct = outcomes["local_correct"].to_numpy(bool)
    local_min = trusted_from(confidence, local_correct, policy.local_min, target_accuracy)
    small = outcomes["answered_by"].eq("small").to_numpy()
    small_correct = outcomes["answer_correct"].to_numpy(bool)[small]
    small_min = trusted_from(confidence[small], small_correct, policy.small_min, target_accuracy, local_min)
    report = []
    for tier, before, after, conf, correct in (
        ("local", policy.local_min, local_min, confidence, local_correct),
        ("small", policy.small_min, small_min, confidence[small], small_correct),
    ):
        n, accuracy_before = _accuracy(conf, correct, before)
        accuracy_after = _accuracy(conf, correct, after)[1]
        report.append(TierRecalibration(tier, before, after, n, accuracy_before, accuracy_after))
    return replace(policy, version=version, local_min=local_min, small_min=small_min), report


def approved_cases(store: OpStore, workflow: str) -> set[str]:
    """Cases whose review item a person approved as answered (the review inbox's ``approve``)."""
    with store.transaction() as cur:
        rows = cur.execute(
            "SELECT case_id FROM review_items WHERE workflow = ? AND decision = 'approve'", (workflow,)
        ).fetchall()
    return {str(case_id) for (case_id,) in rows}


def recalibrate_from_reviews(
    store: OpStore,
    warehouse,
    policy: RouterPolicy,
    intents: list[str],
    version: str,
    target_accuracy: float = 0.9,
) -> tuple[RouterPolicy, list[TierRecalibration], int]:
    """``recalibrate_router`` on the support tickets reviewed so far: their routes from the warehouse
    (``support.routes``, a DuckDB connection), corrections and approvals from the operational store.
    Also returns how many reviewed tickets it judged on."""
    corrections = read_feedback(store, "support")
    approved = approved_cases(store, "support")
    reviewed = set(corrections["case_id"]) | approved
    routes = warehouse_cases(warehouse, "support.routes", "ticket_id", reviewed)
    if routes is None or routes.empty:
        return policy, [], 0
    routes = routes.drop_duplicates("ticket_id", keep="last")
    outcomes = reviewed_outcomes(routes, corrections, approved, intents)
    recalibrated, report = recalibrate_router(policy, outcomes, version, target_accuracy)
    return recalibrated, report, len(outcomes)
