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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from orchestration_pipelines.audit import promote_with_audit
from orchestration_pipelines.learning.feedback import latest_corrections, mark_used, read_feedback
from orchestration_pipelines.maintenance.policy import MaintenancePolicy
from orchestration_pipelines.model_registry import ModelNotFound, ModelRegistry
from orchestration_pipelines.opstore import OpStore

WORKFLOW = "maintenance"
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
    unmatched_ids: list[str] = field(default_factory=list)  # episodes of machines the plant lacks

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


def episode_machine(episode_id: str) -> str:
    """The machine of an alert episode id (``machine_id:YYYYmmddTHHMM``, as ``track_alerts`` names it)."""
    return str(episode_id).rsplit(":", 1)[0]


def thresholds_from_feedback(
    policy: MaintenancePolicy, feedback: pd.DataFrame, machine_types: Mapping[str, str]
) -> AlertThresholds:
    """Per-type thresholds from the marks in ``feedback`` (case id = alert episode id);
    ``machine_types`` maps machine ids to their type (the plant's ``machines``)."""
    marks = latest_corrections(feedback, LABEL_FIELD, LABEL_VALUES)
    marks = marks.assign(machine_type=marks["case_id"].map(episode_machine).map(machine_types))
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


THRESHOLDS_MODEL = "maintenance_thresholds"  # the registry name of the promoted threshold set


def current_thresholds(registry: ModelRegistry) -> AlertThresholds | None:
    try:
        thresholds, _ = registry.load(THRESHOLDS_MODEL)
    except ModelNotFound:
        return None
    return thresholds


def type_policies(registry: ModelRegistry, policy: MaintenancePolicy) -> dict[str, MaintenancePolicy]:
    """The alerting policy of every machine type the promoted threshold set made stricter."""
    thresholds = current_thresholds(registry)
    if thresholds is None:
        return {}
    return {machine_type: thresholds.policy_for(policy, machine_type) for machine_type in thresholds.per_type}


def refresh_thresholds(
    store: OpStore,
    registry: ModelRegistry,
    policy: MaintenancePolicy,
    machine_types: Mapping[str, str],
    run_id: str | None = None,
) -> tuple[AlertThresholds, str | None]:
    """Recompute the threshold set from all marks; promote it (audited) when it changed.

    Returns the set and its registry version (``None`` while no mark ever changed a threshold). The
    marks it counts are marked used by that version.
    """
    thresholds = thresholds_from_feedback(policy, read_feedback(store, WORKFLOW), machine_types)
    current = current_thresholds(registry)
    if current is not None and current.version == thresholds.version:
        return thresholds, registry.current_version(THRESHOLDS_MODEL)
    if current is None and not thresholds.per_type:
        return thresholds, None
    version = registry.save(THRESHOLDS_MODEL, thresholds, thresholds.as_dict())
    promote_with_audit(
        registry,
        store,
        workflow=WORKFLOW,
        model_name=THRESHOLDS_MODEL,
        version=version,
        details={"per_type": thresholds.per_type, "marks": thresholds.marks},
        run_id=run_id,
    )
    if thresholds.feedback_ids:
        mark_used(store, thresholds.feedback_ids, version)
    return thresholds, version
