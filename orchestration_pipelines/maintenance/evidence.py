"""Evidence for a work order: a PNG of the machine's signals with the anomaly window marked."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display on servers

import matplotlib.pyplot as plt
import pandas as pd

from orchestration_pipelines.maintenance.features import median_column, rolling_column
from orchestration_pipelines.maintenance.policy import MaintenancePolicy


def evidence_png(machine_windows: pd.DataFrame, alert: pd.Series, policy: MaintenancePolicy) -> bytes:
    """The alert's top sensor (window medians and trend) above the anomaly score, with the evidence
    windows that raised the alert shaded and the score thresholds drawn."""
    sensor = alert["top_sensor"]
    evidence_start = alert["alerted_at"] - policy.evidence_windows * policy.window
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 4.2), sharex=True)
    times = machine_windows["window_start"]
    top.plot(times, machine_windows[median_column(sensor)], lw=1, label=f"{sensor} (window median)")
    top.plot(times, machine_windows[rolling_column(sensor)], lw=1.5, label=f"{sensor} (trend)")
    top.legend(loc="upper left", fontsize=7)
    top.set_title(
        f"{alert['machine_id']}: {alert['status']} (confidence {alert['confidence']:.2f})", fontsize=9
    )
    bottom.plot(times, machine_windows["anomaly_score"], lw=1, color="black", label="anomaly score")
    bottom.axhline(policy.enter_score, color="tab:orange", ls="--", lw=1, label="evidence threshold")
    bottom.axhline(policy.high_score, color="tab:red", ls=":", lw=1, label="full confidence")
    bottom.legend(loc="upper left", fontsize=7)
    for axis in (top, bottom):
        axis.axvspan(evidence_start, alert["alerted_at"], color="tab:red", alpha=0.15)
    fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
