"""Reviewers' corrected intents as training examples for the local ticket classifier.

A correction of ``intent`` on a ticket relabels it when the labelled tickets hold it, or adds the ticket
(its subject and body from the landed batches) with the corrected intent. Corrected tickets weigh
``FEEDBACK_WEIGHT`` times an ordinary one and never enter the hold-out. An intent the classifier does not
know is refused: a new intent needs its own labelled tickets, not a handful of corrections.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from orchestration_pipelines.learning.feedback import latest_corrections
from orchestration_pipelines.support.classifier import TicketClassifier, TrainingReport, train_classifier

LABEL_FIELD = "intent"
TEXT_COLUMNS = ("subject", "body")
# Measured on benchmarks/feedback.py: 10 corrected tickets of a company's own phrasing at weight 1
# already took its held-out accuracy from 0 to 99.5%, ordinary tickets within 0.001; more weight would
# only let one reviewer's slip count more.
FEEDBACK_WEIGHT = 1.0


@dataclass(frozen=True)
class IntentFeedbackUse:
    used_ids: list[str]
    by_intent: dict[str, int]
    relabelled: int  # labelled tickets whose intent was corrected
    added: int  # landed tickets added with their corrected intent
    unmatched_ids: list[str]
    weight: float

    def card_entry(self) -> dict:
        return {
            "rows_used": len(self.used_ids),
            "by_intent": self.by_intent,
            "relabelled_tickets": self.relabelled,
            "added_tickets": self.added,
            "unmatched": len(self.unmatched_ids),
            "weight": self.weight,
            "feedback_ids": self.used_ids,
        }


def intent_corrections(
    labelled: pd.DataFrame,
    feedback: pd.DataFrame,
    tickets: pd.DataFrame | None = None,
    *,
    intents: Sequence[str] | None = None,
    weight: float = FEEDBACK_WEIGHT,
) -> tuple[pd.DataFrame, pd.DataFrame, IntentFeedbackUse]:
    """(labelled tickets without the corrected ones, corrected tickets with ``intent``, what was used).

    ``intents`` are the accepted intents (default: those of ``labelled``); ``tickets`` holds landed
    tickets (``ticket_id`` and the text columns) that corrections may refer to.
    """
    if weight <= 0:
        raise ValueError(f"feedback weight must be positive, got {weight}")
    known = sorted(set(intents) if intents is not None else set(labelled["intent"].dropna().astype(str)))
    corrections = latest_corrections(feedback, LABEL_FIELD, known).set_index("case_id")
    columns = ["ticket_id", *TEXT_COLUMNS]
    in_labelled = labelled["ticket_id"].isin(corrections.index)
    sources = [labelled.loc[in_labelled, columns]]
    if tickets is not None and len(tickets):
        sources.append(tickets.loc[tickets["ticket_id"].isin(corrections.index), columns])
    texts = pd.concat(sources, ignore_index=True).drop_duplicates("ticket_id")
    corrected = texts.assign(intent=corrections["value"].reindex(texts["ticket_id"]).to_numpy())
    used = corrections[corrections.index.isin(texts["ticket_id"])]
    return (
        labelled[~in_labelled],
        corrected,
        IntentFeedbackUse(
            used_ids=used["feedback_id"].astype(str).tolist(),
            by_intent={str(k): int(v) for k, v in used["value"].value_counts().sort_index().items()},
            relabelled=int(in_labelled.sum()),
            added=len(corrected) - int(in_labelled.sum()),
            unmatched_ids=corrections.loc[~corrections.index.isin(texts["ticket_id"]), "feedback_id"]
            .astype(str)
            .tolist(),
            weight=weight,
        ),
    )


def train_with_feedback(
    labelled: pd.DataFrame,
    feedback: pd.DataFrame,
    tickets: pd.DataFrame | None = None,
    *,
    weight: float = FEEDBACK_WEIGHT,
    seed: int = 0,
    **columns: str,
) -> tuple[TicketClassifier, TrainingReport, IntentFeedbackUse]:
    """``train_classifier`` on the labelled tickets plus reviewers' corrections (``columns``: urgency,
    language, as ``train_classifier`` takes them)."""
    ordinary, corrected, use = intent_corrections(labelled, feedback, tickets, weight=weight)
    classifier, report = train_classifier(
        ordinary,
        text_columns=TEXT_COLUMNS,
        intent="intent",
        seed=seed,
        extra=corrected,
        extra_weight=weight,
        **columns,
    )
    return classifier, report, use
