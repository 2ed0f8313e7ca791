"""Support triage, usable with or without Dagster: ticket contract, classifier, retrieval, replies, routing.

``train_on_table`` trains the local classifier on a company's own labelled tickets and saves a model
version; ``promote_classifier`` makes a version the one the workflow uses, with an audit event.
"""

from __future__ import annotations

from orchestration_pipelines.audit import promote_with_audit
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.support.classifier import MODEL_NAME, TicketClassifier, train_on_table

__all__ = ["MODEL_NAME", "TicketClassifier", "load_classifier", "promote_classifier", "train_on_table"]


def promote_classifier(registry: ModelRegistry, store: OpStore, version: str, actor: str) -> str | None:
    """Make ``version`` the classifier the workflow uses; returns the previous version. The audit record
    is written with the registry pointer and delivered at once, or later if the store is down."""
    previous = registry.current_version(MODEL_NAME)
    promote_with_audit(  # refuses a version that does not exist
        registry,
        store,
        workflow="support",
        model_name=MODEL_NAME,
        version=version,
        details={"model": MODEL_NAME, "metrics": registry.card(MODEL_NAME, version)["metrics"]},
        actor=actor,
    )
    return previous


def load_classifier(registry: ModelRegistry, version: str | None = None) -> tuple[TicketClassifier, dict]:
    """The promoted (or given) classifier version and its card."""
    return registry.load(MODEL_NAME, version)
