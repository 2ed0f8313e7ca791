"""Planners' false-alarm marks as stricter alerting for the machine type that raised them.

Each alert episode a planner marks a false alarm raises its machine type's evidence bar one step: the
score a window needs (``enter_score`` x ``ENTER_SCORE_STEP``) and, every second mark, one more
consecutive evidence window, within bounds so that corrections can never silence a type (the score
stays below the policy's ``high_score`` and at most ``MAX_ENTER_FACTOR`` times the base; the windows
at most ``MAX_EVIDENCE_FACTOR`` times). Marks of an alert as real (``true_fault``) are counted as
evidence but lower nothing: a missed failure costs more than a false alarm, and loosening is a person's
decision in the policy file. The per-type thresholds are one versioned set, recomputed from all marks,
so a re-run gives the same version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from orchestration_pipelines.learning.feedback import latest_corrections
from orchestration_pipelines.maintenance.policy import MaintenancePolicy

LABEL_FIELD = "alert_outcome"  # as the review policy's maintenance kinds correct it
LABEL_VALUES = ("false_alarm", "true_fault")
ENTER_SCORE_STEP = 1.1
MAX_ENTER_FACTOR = 1.5
MAX_EVIDENCE_FACTOR = 2


@dataclass(frozen=True)
class AlertThresholds:
    """Per machine type: ``enter_score`` and ``evidence_windows`` where marks changed them."""

    version: str
    base_policy_version: str
    per_type: dict[str, dict[str, float | int]]
    marks: dict[str, dict[str, int]]  # per type: false alarms and true faults counted
    feedback_ids: list[str] = field(default_factory=list)
    unmatched_ids: list[str] = field(default_factory=list)  # episodes not among the alerts given

    def policy_for(self, policy: MaintenancePolicy, machine_type: str) -> MaintenancePolicy:
        """The alerting policy of one machine type; its version names the threshold set."""
        override = self.per_type.get(machine_type)
        if not override:
            return policy
        return replace(
            policy,
            version=f"{policy.version}+{self.version}",
            enter_score=float(override["enter_score"]),
            evidence_windows=int(override["evidence_windows"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "base_policy_version": self.base_policy_version,
            "per_type": self.per_type,
            "marks": self.marks,
            "feedback_ids": self.feedback_ids,
            "unmatched": len(self.unmatched_ids),
        }


def thresholds_from_feedback(
    policy: MaintenancePolicy, feedback: pd.DataFrame, alerts: pd.DataFrame
) -> AlertThresholds:
    """Per-type thresholds from the marks on ``alerts`` (episode_id, machine_type) in ``feedback``."""
    marks = latest_corrections(feedback, LABEL_FIELD, LABEL_VALUES)
    types = alerts.drop_duplicates("episode_id").set_index("episode_id")["machine_type"]
    marks = marks.assign(machine_type=marks["case_id"].map(types))
    matched = marks[marks["machine_type"].notna()]
    counts = (
        matched.groupby(["machine_type", "value"]).size().unstack(fill_value=0)
        if len(matched)
        else pd.DataFrame()
    )
    per_type, tally = {}, {}
    for machine_type, row in counts.iterrows():
        false_alarms = int(row.get("false_alarm", 0))
        tally[str(machine_type)] = {"false_alarm": false_alarms, "true_fault": int(row.get("true_fault", 0))}
        if false_alarms:
            per_type[str(machine_type)] = raised(policy, false_alarms)
    content = json.dumps([policy.version, per_type], sort_keys=True)
    return AlertThresholds(
        version=f"fa-{hashlib.sha256(content.encode()).hexdigest()[:8]}",
        base_policy_version=policy.version,
        per_type=per_type,
        marks=tally,
        feedback_ids=matched["feedback_id"].astype(str).tolist(),
        unmatched_ids=marks.loc[marks["machine_type"].isna(), "feedback_id"].astype(str).tolist(),
    )


def raised(policy: MaintenancePolicy, false_alarms: int) -> dict[str, float | int]:
    """The evidence bar after ``false_alarms`` marks, within the bounds."""
    ceiling = min(policy.enter_score * MAX_ENTER_FACTOR, policy.high_score * 0.95)
    return {
        "enter_score": round(min(policy.enter_score * ENTER_SCORE_STEP**false_alarms, ceiling), 4),
        "evidence_windows": min(
            policy.evidence_windows + false_alarms // 2, policy.evidence_windows * MAX_EVIDENCE_FACTOR
        ),
    }
