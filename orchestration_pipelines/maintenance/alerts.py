"""From window scores to alerts without alarm fatigue, and from confident alerts to work orders.

Per machine, a small state machine walks the scored windows in time order:

* evidence: ``evidence_windows`` consecutive windows at or above ``enter_score`` open an episode;
  maintenance and dropout windows are skipped (they neither count nor break the run);
* hysteresis: an open episode ends only after ``release_windows`` usable windows below ``exit_score``;
* confidence grows with the median score of the last evidence windows (0 at ``enter_score``, 1 at
  ``high_score``, on a log scale); at or above ``work_order_confidence`` the alert proposes a work order
  in the next downtime window, below it goes to human review; an episode that starts in review and
  later becomes confident is escalated once;
* while the machine has a work order opened before the episode starts, the episode is recorded as
  suppressed and nothing is sent (a re-run of a day is not suppressed by the orders it opened itself);
  once maintenance closes the order, suppression ends and a new episode alerts again.

The per-machine state is a small table handed from one day to the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from orchestration_pipelines.maintenance.plant import PlantConfig
from orchestration_pipelines.maintenance.policy import MaintenancePolicy

WORK_ORDER = "work_order_proposed"
HUMAN_REVIEW = "human_review"
SUPPRESSED = "suppressed_open_work_order"
ALERT_COLUMNS = [
    "machine_id", "machine_type", "team", "episode_id", "alerted_at", "anomaly_score", "confidence", "status",
    "top_sensor", "downtime_start", "downtime_end", "policy_version",
]  # fmt: skip


@dataclass
class MachineState:
    machine_id: str
    evidence: str = (
        ""  # space-separated scores of the current run of evidence windows (at most the policy's count)
    )
    episode_id: str = ""
    episode_status: str = ""
    calm_windows: int = 0

    @property
    def scores(self) -> list[float]:
        return [float(v) for v in self.evidence.split()]


def confidence(scores: list[float], policy: MaintenancePolicy) -> float:
    level = float(np.median(scores))
    ratio = np.log(max(level, policy.enter_score) / policy.enter_score) / np.log(
        policy.high_score / policy.enter_score
    )
    return float(np.clip(ratio, 0.0, 1.0))


def _states(previous: pd.DataFrame | None) -> dict[str, MachineState]:
    if previous is None or previous.empty:
        return {}
    records = previous.fillna({"evidence": "", "episode_id": "", "episode_status": ""}).to_dict("records")
    return {
        row["machine_id"]: MachineState(**{**row, "calm_windows": int(row["calm_windows"])})
        for row in records
    }


def track_alerts(
    scored: pd.DataFrame,
    plant: PlantConfig,
    policy: MaintenancePolicy,
    state: pd.DataFrame | None = None,
    open_work_orders: Mapping[str, pd.Timestamp] | None = None,
    type_policies: Mapping[str, MaintenancePolicy] | None = None,
    closed_work_orders: Mapping[str, pd.Timestamp] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(alerts raised in ``scored``'s windows, the state to pass with the next day's windows).

    ``scored`` holds machine_id, window_start, anomaly_score (NaN = not scorable: skipped);
    ``open_work_orders`` maps a machine to the alert time of its earliest open work order, and
    ``closed_work_orders`` a machine to the time maintenance closed its orders within these windows;
    ``type_policies`` replaces ``policy`` for the machine types planners' false-alarm marks made stricter.
    """
    open_work_orders, closed_work_orders = open_work_orders or {}, closed_work_orders or {}
    type_policies = type_policies or {}
    states = _states(state)
    alerts = []
    ordered = scored.sort_values(["machine_id", "window_start"], kind="stable")
    for machine_id, group in ordered.groupby("machine_id", sort=False):
        machine_policy = type_policies.get(plant.machines[machine_id], policy)
        current = states.setdefault(machine_id, MachineState(machine_id))
        for window_start, score, top_sensor in zip(
            group["window_start"], group["anomaly_score"], group["top_sensor"], strict=True
        ):
            if np.isnan(score):
                continue
            alerted_at = window_start + machine_policy.window
            open_since, closed = open_work_orders.get(machine_id), closed_work_orders.get(machine_id)
            suppress = (
                open_since is not None
                and open_since < alerted_at
                and (closed is None or alerted_at <= closed)
            )
            alert = _step(current, float(score), alerted_at, machine_policy, suppress)
            if alert:
                alerts.append(
                    _alert_row(plant, machine_policy, current, alert, float(score), top_sensor, alerted_at)
                )
    next_state = pd.DataFrame(
        [asdict(s) for s in states.values()], columns=list(MachineState.__annotations__)
    )
    return pd.DataFrame(alerts, columns=ALERT_COLUMNS), next_state


def _step(
    state: MachineState,
    score: float,
    alerted_at: pd.Timestamp,
    policy: MaintenancePolicy,
    has_open_order: bool,
) -> tuple[str, float] | None:
    """Advance one usable window; return (status, confidence) when an alert is raised."""
    if score >= policy.enter_score:
        state.evidence = " ".join(f"{v:.4g}" for v in [*state.scores, score][-policy.evidence_windows :])
    else:
        state.evidence = ""
    if state.episode_id:
        state.calm_windows = state.calm_windows + 1 if score < policy.exit_score else 0
        if state.calm_windows >= policy.release_windows:
            state.episode_id, state.episode_status, state.calm_windows = "", "", 0
            return None
        if state.episode_status == HUMAN_REVIEW and len(state.scores) == policy.evidence_windows:
            level = confidence(state.scores, policy)
            if level >= policy.work_order_confidence:
                state.episode_status = WORK_ORDER
                return WORK_ORDER, level
        return None
    if len(state.scores) < policy.evidence_windows:
        return None
    level = confidence(state.scores, policy)
    state.episode_id = f"{state.machine_id}:{alerted_at.strftime('%Y%m%dT%H%M')}"
    state.calm_windows = 0
    if has_open_order:
        state.episode_status = SUPPRESSED
    else:
        state.episode_status = WORK_ORDER if level >= policy.work_order_confidence else HUMAN_REVIEW
    return state.episode_status, level


def _alert_row(plant, policy, state, alert, score, top_sensor, alerted_at) -> dict:
    status, level = alert
    downtime = plant.next_downtime(alerted_at) if status == WORK_ORDER else (pd.NaT, pd.NaT)
    machine_type = plant.machines[state.machine_id]
    return {
        "machine_id": state.machine_id,
        "machine_type": machine_type,
        "team": plant.machine_types[machine_type].team,
        "episode_id": state.episode_id,
        "alerted_at": alerted_at,
        "anomaly_score": score,
        "confidence": level,
        "status": status,
        "top_sensor": top_sensor,
        "downtime_start": downtime[0],
        "downtime_end": downtime[1],
        "policy_version": policy.version,
    }
