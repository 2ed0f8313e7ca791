"""Human review: a durable inbox of items raised by the workflows and decided by people.

The policy (``policies/review.yaml``) says who may decide what; decisions, refusals and timeouts are
recorded once in the operational store with their audit entries, and the external actions they lead
to wait in ``actions_outbox`` for delivery. Free of Dagster: assets, sensors, the CLI and the web app
call these functions. The buttons a reviewer gets on an item:
``load_review_policy().kind(item.kind).allowed_actions(reviewer.roles)`` (``decide`` checks again).
"""

from orchestration_pipelines.review.items import (
    OPEN_STATUSES,
    DecisionOutcome,
    DecisionRefused,
    RaisedItems,
    ReviewEvent,
    ReviewItem,
    ReviewRequest,
    apply_timeouts,
    decide,
    get_item,
    item_history,
    list_items,
    raise_items,
)
from orchestration_pipelines.review.policy import PolicyError, ReviewPolicy, load_review_policy
from orchestration_pipelines.review.raising import PartitionRaise, content_sha256, json_ready, raise_partition
from orchestration_pipelines.review.reviewers import (
    Reviewer,
    authenticate,
    create_reviewer,
    disable_reviewer,
    get_reviewer,
)
from orchestration_pipelines.review.story import StoryEntry, case_story

__all__ = [
    "OPEN_STATUSES",
    "DecisionOutcome",
    "DecisionRefused",
    "PartitionRaise",
    "PolicyError",
    "RaisedItems",
    "ReviewEvent",
    "ReviewItem",
    "ReviewPolicy",
    "ReviewRequest",
    "Reviewer",
    "StoryEntry",
    "apply_timeouts",
    "authenticate",
    "case_story",
    "content_sha256",
    "create_reviewer",
    "decide",
    "disable_reviewer",
    "get_item",
    "get_reviewer",
    "item_history",
    "json_ready",
    "list_items",
    "load_review_policy",
    "raise_items",
    "raise_partition",
]
