"""Planners' false-alarm marks make their machine type's alerting stricter, within bounds."""

from __future__ import annotations

import pandas as pd
import pytest
from maintenance_helpers import policy, small_plant

from benchmarks.feedback import feedback_rows
from orchestration_pipelines.learning.feedback import FeedbackError
from orchestration_pipelines.learning.maintenance import MAX_ENTER_FACTOR, thresholds_from_feedback
from orchestration_pipelines.maintenance.alerts import track_alerts

START = pd.Timestamp("2026-11-23T00:00Z")


def _windows(scores: list[float], machine_id: str) -> pd.DataFrame:
    window = policy().window
    return pd.DataFrame(
        {
            "machine_id": machine_id,
            "window_start": [START + i * window for i in range(len(scores))],
            "anomaly_score": scores,
            "top_sensor": "vibration",
        }
    )


EPISODES = [f"PU-001:20261120T{h:02d}00" for h in range(6)] + ["CO-001:20261120T0100"]
MACHINES = small_plant().plant.machines


def _marks(pairs):
    return feedback_rows("maintenance", "alert_outcome", pd.DataFrame(pairs, columns=["case_id", "v"]), "v")


def test_false_alarms_raise_the_bar_of_their_machine_type_only():
    p = policy()
    marks = _marks([(e, "false_alarm") for e in EPISODES[:3]] + [(EPISODES[6], "true_fault")])
    thresholds = thresholds_from_feedback(p, marks, MACHINES)

    pump = thresholds.policy_for(p, "pump")
    assert pump.enter_score == pytest.approx(p.enter_score * 1.1**3, abs=1e-3)
    assert pump.evidence_windows == p.evidence_windows + 1
    assert pump.version == f"{p.version}+{thresholds.version}"
    assert thresholds.policy_for(p, "compressor") == p  # true faults lower nothing
    assert thresholds.marks == {
        "compressor": {"false_alarm": 0, "true_fault": 1},
        "pump": {"false_alarm": 3, "true_fault": 0},
    }
    assert len(thresholds.feedback_ids) == 4
    assert (
        thresholds_from_feedback(p, marks, MACHINES).version == thresholds.version
    )  # same marks, same version

    # a run of windows just above the old bar: the pump now stays quiet, a spindle still alerts
    scores = [p.enter_score * 1.2] * (p.evidence_windows + 4)
    windows = pd.concat([_windows(scores, "PU-001"), _windows(scores, "SP-001")])
    plant = small_plant().plant
    before, _ = track_alerts(windows, plant, p)
    after, _ = track_alerts(windows, plant, p, type_policies={"pump": pump})
    assert set(before["machine_id"]) == {"PU-001", "SP-001"}
    assert set(after["machine_id"]) == {"SP-001"}


def test_many_false_alarms_stay_within_bounds_and_unknown_marks_are_refused():
    p = policy()
    many = _marks([(f"PU-001:2026112{d}T{h:02d}00", "false_alarm") for d in range(3) for h in range(20)])
    pump = thresholds_from_feedback(p, many, MACHINES).policy_for(p, "pump")
    assert pump.enter_score <= p.enter_score * MAX_ENTER_FACTOR < p.high_score
    assert pump.evidence_windows == 2 * p.evidence_windows

    unmatched = thresholds_from_feedback(p, _marks([("XX-404:20261120T0100", "false_alarm")]), MACHINES)
    assert unmatched.per_type == {} and len(unmatched.unmatched_ids) == 1
    with pytest.raises(FeedbackError, match=r"unknown alert_outcome values.*'broken'"):
        thresholds_from_feedback(p, _marks([(EPISODES[0], "broken")]), MACHINES)
