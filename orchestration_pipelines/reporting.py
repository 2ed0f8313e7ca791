"""Helpers that turn results into what the Dagster UI shows: markdown tables and inline plots."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display on servers

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve


def markdown_table(df: pd.DataFrame, float_digits: int = 3) -> str:
    """A small DataFrame as a GitHub-flavoured markdown table (no extra dependency)."""
    if df.empty:
        return "_no rows_"

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.{float_digits}f}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def figure_markdown(fig: plt.Figure, alt: str) -> str:
    """Embed a figure as a PNG data URI, so the plot travels with the materialization event."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"


def precision_recall_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """Precision-recall curves, one per named model, from (probabilities, labels)."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, (probability, labels) in curves.items():
        precision, recall, _ = precision_recall_curve(labels, probability)
        ax.plot(recall, precision, label=name)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left")
    ax.set_title("Precision-recall on the time-based hold-out")
    return figure_markdown(fig, "precision-recall curve")
