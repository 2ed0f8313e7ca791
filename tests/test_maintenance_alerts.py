import numpy as np
import pandas as pd
from maintenance_helpers import policy, small_plant

from orchestration_pipelines.maintenance.alerts import (
    HUMAN_REVIEW,
    SUPPRESSED,
    WORK_ORDER,
    confidence,
    track_alerts,
)

START = pd.Timestamp("2026-11-23T00:00Z")  # a Monday


def _windows(scores: list[float], machine_id: str = "PU-001", start: pd.Timestamp = START) -> pd.DataFrame:
    p = policy()
    return pd.DataFrame(
        {
            "machine_id": machine_id,
            "window_start": [start + i * p.window for i in range(len(scores))],
            "anomaly_score": scores,
            "top_sensor": "vibration",
        }
    )


def _track(scores, **kwargs):
    return track_alerts(_windows(scores), small_plant().plant, policy(), **kwargs)


def test_isolated_spikes_raise_nothing_and_consecutive_evidence_raises_one_alert():
    p = policy()
    strong, calm = p.high_score * 2, 0.5
    spiky = [calm, strong, calm, strong, strong, calm] * 5
    assert _track(spiky)[0].empty
    alerts, _ = _track([calm] * 3 + [strong] * (p.evidence_windows + 10))
    assert len(alerts) == 1
    row = alerts.iloc[0]
    assert row["status"] == WORK_ORDER and row["confidence"] == 1.0
    assert row["alerted_at"] == START + (3 + p.evidence_windows) * p.window
    assert row["team"] == "fluids" and row["policy_version"] == p.version
    assert (row["downtime_start"], row["downtime_end"]) == small_plant().plant.next_downtime(
        row["alerted_at"]
    )


def test_hysteresis_keeps_one_episode_through_dips_and_ends_it_after_calm():
    p = policy()
    hot, dip, calm = p.high_score * 2, (p.enter_score + p.exit_score) / 2, 0.2
    scores = [hot] * p.evidence_windows + [dip] * 20 + [hot] * p.evidence_windows
    alerts, state = _track(scores)
    assert len(alerts) == 1 and state.iloc[0]["episode_id"]
    scores += [calm] * p.release_windows + [hot] * p.evidence_windows
    alerts, _ = _track(scores)
    assert len(alerts) == 2 and alerts["episode_id"].nunique() == 2


def test_dropout_and_maintenance_windows_neither_count_nor_break_evidence():
    p = policy()
    hot = p.high_score * 2
    with_gaps = [hot, np.nan, np.nan, hot, np.nan] + [hot] * (p.evidence_windows - 2)
    alerts, _ = _track(with_gaps)
    assert len(alerts) == 1
    assert alerts.iloc[0]["alerted_at"] == START + len(with_gaps) * p.window
    only_gaps = [hot] * (p.evidence_windows - 1) + [np.nan] * 50
    assert _track(only_gaps)[0].empty


def test_evidence_and_episodes_carry_across_days_like_one_stretch():
    p = policy()
    hot = p.high_score * 2
    scores = [0.3] * 94 + [hot] * 30 + [0.2] * 40  # the evidence straddles midnight
    whole, _ = _track(scores)
    frame = _windows(scores)
    day_one, day_two = frame.iloc[:96], frame.iloc[96:]
    plant = small_plant().plant
    first, state = track_alerts(day_one, plant, p)
    second, _ = track_alerts(day_two, plant, p, state=state)
    assert first.empty
    pd.testing.assert_frame_equal(second, whole)
    assert len(whole) == 1 and whole.iloc[0]["alerted_at"] > START + pd.Timedelta(days=1)


def test_an_open_work_order_suppresses_a_new_episode_without_losing_it():
    p = policy()
    earlier = START - pd.Timedelta(hours=3)
    alerts, _ = _track([p.high_score * 2] * 10, open_work_orders={"PU-001": earlier})
    assert alerts["status"].tolist() == [SUPPRESSED]
    assert alerts["downtime_start"].isna().all()
    other, _ = track_alerts(
        _windows([p.high_score * 2] * 10, machine_id="PU-002"),
        small_plant().plant,
        p,
        open_work_orders={"PU-001": earlier},
    )
    assert other["status"].tolist() == [WORK_ORDER]


def test_weak_evidence_goes_to_review_and_escalates_once_when_it_grows():
    p = policy()
    weak = p.enter_score * 1.05
    assert confidence([weak] * p.evidence_windows, p) < p.work_order_confidence
    scores = [weak] * (p.evidence_windows + 5) + [p.high_score] * (p.evidence_windows + 10)
    alerts, _ = _track(scores)
    assert alerts["status"].tolist() == [HUMAN_REVIEW, WORK_ORDER]
    assert alerts["episode_id"].nunique() == 1
    assert alerts["confidence"].is_monotonic_increasing
    assert alerts.iloc[0]["downtime_start"] is pd.NaT or pd.isna(alerts.iloc[0]["downtime_start"])


def test_a_rerun_is_not_suppressed_by_the_work_orders_of_its_own_or_later_episodes():
    p = policy()
    scores = [p.high_score * 2] * 10
    first, _ = _track(scores)
    own = first.iloc[0]["alerted_at"]
    assert _track(scores, open_work_orders={"PU-001": own})[0].equals(first)
    assert _track(scores, open_work_orders={"PU-001": own + pd.Timedelta(days=1)})[0].equals(first)


def test_after_maintenance_closes_the_order_a_new_episode_alerts_again():
    """Suppressed while the order is open; the repair closes it, calm ends the episode, and the next
    degradation raises a work order again."""
    p = policy()
    opened = START - pd.Timedelta(hours=3)
    high, calm = p.high_score * 2, p.exit_score / 2
    before_repair = [high] * 10  # suppressed: the machine's order is open
    after_repair = [calm] * p.release_windows + [high] * 10  # released, then a new degradation
    scores = before_repair + after_repair
    closed_at = START + len(before_repair) * p.window  # maintenance done between the two stretches
    alerts, _ = _track(scores, open_work_orders={"PU-001": opened}, closed_work_orders={"PU-001": closed_at})
    assert alerts["status"].tolist() == [SUPPRESSED, WORK_ORDER]
    assert alerts["episode_id"].nunique() == 2 and (alerts["alerted_at"].iloc[1] > closed_at)
    still_open, _ = _track(scores, open_work_orders={"PU-001": opened})
    assert still_open["status"].tolist() == [SUPPRESSED, SUPPRESSED]  # without the close: still quiet
