"""Reviewers' corrections as labelled feedback: read from the operational store, checked, marked used.

A reviewer's ``correct`` decision writes one ``feedback`` row (the case, the corrected field and value,
who, when). Retrains read every row of their workflow, not only new ones: a correction stays true, and
a model trained without it would forget it. ``used_by_model_version`` names the newest model version
trained with the row, so a reviewer can see that their correction reached the model in service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import pandas as pd

from orchestration_pipelines.opstore import OpStore

FEEDBACK_COLUMNS = [
    "feedback_id",
    "workflow",
    "case_id",
    "item_id",
    "label_field",
    "corrected_value",
    "reviewer",
    "created_at",
    "used_by_model_version",
]


class FeedbackError(ValueError):
    """Feedback rows a model cannot learn from: an unknown label field or value, named row by row."""


def read_feedback(store: OpStore, workflow: str, since: datetime | str | None = None) -> pd.DataFrame:
    """Every feedback row of ``workflow`` (created at or after ``since``), oldest first."""
    with store.transaction() as cur:
        rows = cur.execute(
            f"SELECT {', '.join(FEEDBACK_COLUMNS)} FROM feedback WHERE workflow = ?"
            " ORDER BY created_at, feedback_id",
            (workflow,),
        ).fetchall()
    frame = pd.DataFrame([tuple(row) for row in rows], columns=FEEDBACK_COLUMNS)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
    if since is not None:
        frame = frame[frame["created_at"] >= pd.Timestamp(since, tz="UTC")].reset_index(drop=True)
    return frame


def mark_used(store: OpStore, feedback_ids: Iterable[str], model_version: str) -> None:
    """Record ``model_version`` as the newest model trained with these rows."""
    if not model_version:
        raise ValueError("a model version is required to mark feedback used")
    ids = list(dict.fromkeys(str(i) for i in feedback_ids))
    with store.transaction() as cur:
        cur.executemany(
            "UPDATE feedback SET used_by_model_version = ? WHERE feedback_id = ?",
            [(model_version, feedback_id) for feedback_id in ids],
        )


def latest_corrections(
    feedback: pd.DataFrame, label_field: str, values: Mapping[str, object] | Iterable[str]
) -> pd.DataFrame:
    """One row per case: the latest correction of ``label_field``, its value mapped through ``values``.

    ``values`` maps each accepted corrected value (case-insensitive) to what the model learns, or lists
    the accepted values as they are. Rows of another label field or with a value outside ``values``
    are refused with their feedback ids, so a typo in the review app never becomes a training label.
    Columns: case_id, value, feedback_id, reviewer, created_at, superseded_ids (older rows of the case).
    """
    accepted = dict(values) if isinstance(values, Mapping) else {str(v): str(v) for v in values}
    by_key = {str(key).strip().lower(): value for key, value in accepted.items()}
    wrong_field = feedback[feedback["label_field"] != label_field]
    if len(wrong_field):
        raise FeedbackError(
            f"feedback for label fields other than {label_field!r}: "
            f"{_examples(wrong_field, 'label_field')}; this model learns only {label_field!r}"
        )
    keys = feedback["corrected_value"].astype("string").str.strip().str.lower()
    unknown = feedback[~keys.isin(list(by_key)).fillna(False).to_numpy(bool)]
    if len(unknown):
        raise FeedbackError(
            f"unknown {label_field} values in feedback: {_examples(unknown, 'corrected_value')}; "
            f"accepted: {sorted(accepted)}"
        )
    ordered = feedback.assign(value=keys.map(by_key)).sort_values(
        ["created_at", "feedback_id"], kind="stable"
    )
    latest = ordered.groupby("case_id", sort=False).tail(1)
    superseded = ordered.drop(latest.index).groupby("case_id")["feedback_id"].agg(list)
    latest = latest.assign(superseded_ids=latest["case_id"].map(superseded))
    latest["superseded_ids"] = latest["superseded_ids"].apply(
        lambda ids: ids if isinstance(ids, list) else []
    )
    return latest[
        ["case_id", "value", "feedback_id", "reviewer", "created_at", "superseded_ids"]
    ].reset_index(drop=True)


def _examples(rows: pd.DataFrame, column: str, limit: int = 5) -> str:
    shown = ", ".join(f"{r.feedback_id}: {getattr(r, column)!r}" for r in rows.head(limit).itertuples())
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"{shown}{more}"


def warehouse_cases(con, table: str, key: str, case_ids: Iterable[str]) -> pd.DataFrame | None:
    """Rows of warehouse ``schema.table`` whose ``key`` is a corrected case (a DuckDB connection).

    ``None`` while the table does not exist yet (no batch landed). ``table`` and ``key`` are this
    package's own constants, never outside input.
    """
    schema, name = table.split(".")
    [(exists,)] = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, name],
    ).fetchall()
    if not exists:
        return None
    ids = list(dict.fromkeys(map(str, case_ids)))
    return con.execute(f"SELECT * FROM {table} WHERE {key} IN (SELECT unnest(?::VARCHAR[]))", [ids]).df()
