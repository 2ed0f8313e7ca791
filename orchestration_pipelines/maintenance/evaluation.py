"""How good the alerts are against known failures, and the naive threshold rule to beat.

An alert catches a failure when it is raised on that machine between ``match_before_onset`` before the
degradation's onset and the failure itself; its lead time is the failure time minus the first such
alert. Every other raised alert is a false alarm (suppressed alerts reach nobody and are not passed in).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LEAD_TARGET = pd.Timedelta(hours=2)  # a failure counts as caught in time with at least this lead
MATCH_BEFORE_ONSET = pd.Timedelta(hours=12)  # an alert this early before the labelled onset still counts
NAIVE_QUIET = pd.Timedelta(hours=2)  # naive exceedances closer than this are one alert


def evaluate_alerts(
    alerts: pd.DataFrame,
    failures: pd.DataFrame,
    machines: int,
    period: tuple[pd.Timestamp, pd.Timestamp],
    lead_target: pd.Timedelta = LEAD_TARGET,
    match_before_onset: pd.Timedelta = MATCH_BEFORE_ONSET,
) -> dict[str, float]:
    """Recall (any lead and at least ``lead_target``), median lead and false alarms per machine-week,
    over the failures and alerts of ``period``. ``alerts`` needs machine_id and alerted_at, one row per
    raised alert."""
    start, end = period
    failures = failures[(failures["failure_time"] >= start) & (failures["failure_time"] < end)]
    alerts = alerts[(alerts["alerted_at"] >= start) & (alerts["alerted_at"] < end)].reset_index(drop=True)
    matched = pd.Series(False, index=alerts.index)
    leads = []
    for failure in failures.itertuples(index=False):
        hits = alerts[
            (alerts["machine_id"] == failure.machine_id)
            & (alerts["alerted_at"] >= failure.onset - match_before_onset)
            & (alerts["alerted_at"] < failure.failure_time)
        ]
        matched.loc[hits.index] = True
        leads.append(failure.failure_time - hits["alerted_at"].min() if len(hits) else pd.NaT)
    lead_hours = pd.Series(leads, dtype="timedelta64[ns]").dt.total_seconds() / 3600
    machine_weeks = machines * (end - start) / pd.Timedelta(days=7)
    false_alarms = int((~matched).sum())
    return {
        "failures": len(failures),
        "caught": int(lead_hours.notna().sum()),
        "recall": float(lead_hours.notna().mean()) if len(failures) else np.nan,
        "recall_at_lead_target": float((lead_hours >= lead_target / pd.Timedelta(hours=1)).mean())
        if len(failures)
        else np.nan,
        "median_lead_hours": float(lead_hours.median()) if lead_hours.notna().any() else np.nan,
        "alerts": len(alerts),
        "false_alarms": false_alarms,
        "false_alarms_per_machine_week": false_alarms / machine_weeks,
    }


def naive_thresholds(features: pd.DataFrame, healthy: pd.Series, quantile: float = 0.999) -> pd.DataFrame:
    """Per machine type and sensor, the healthy window-median band [1 - q, q]: a fixed limit per sensor."""
    rows = []
    for machine_type, part in features[healthy].groupby("machine_type"):
        for column in [c for c in part.columns if c.endswith("_median")]:
            values = part[column].dropna()
            if len(values):
                low, high = np.quantile(values, [1 - quantile, quantile])
                rows.append({"machine_type": machine_type, "column": column, "low": low, "high": high})
    return pd.DataFrame(rows)


def naive_alerts(
    features: pd.DataFrame,
    thresholds: pd.DataFrame,
    window: pd.Timedelta,
    quiet: pd.Timedelta = NAIVE_QUIET,
) -> pd.DataFrame:
    """The naive rule: alert when a window median leaves its sensor's healthy band; exceedances closer
    than ``quiet`` to the previous one belong to the same alert. Maintenance and dropout windows are
    skipped, as for the workflow, so the comparison is about detection only."""
    exceeded = np.zeros(len(features), dtype=bool)
    for limit in thresholds.itertuples(index=False):
        rows = (features["machine_type"] == limit.machine_type).to_numpy()
        values = features[limit.column].to_numpy()
        exceeded |= rows & ((values < limit.low) | (values > limit.high))
    hits = features.loc[exceeded, ["machine_id", "window_start"]].sort_values(["machine_id", "window_start"])
    gap = hits.groupby("machine_id")["window_start"].diff()
    first = hits[gap.isna() | (gap > quiet)]
    return pd.DataFrame({"machine_id": first["machine_id"], "alerted_at": first["window_start"] + window})
