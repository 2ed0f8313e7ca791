"""``orchestration-pipelines actions``: the outbox from the command line: list it, retry a failed action."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review.actions import ACTION_STATUSES, list_actions, retry_failed_action
from orchestration_pipelines.settings import default_opstore_url


def add_parser(sub: argparse._SubParsersAction) -> None:
    actions = sub.add_parser("actions", help="the actions outbox (OP_OPSTORE_URL): list, retry a failed one")
    actions_sub = actions.add_subparsers(dest="actions_command", required=True)
    listing = actions_sub.add_parser("list", help="actions oldest first, one JSON object a line")
    listing.add_argument("--status", choices=ACTION_STATUSES)
    listing.add_argument("--case", help="only the actions of this case id")
    listing.set_defaults(func=cmd_list)
    retry = actions_sub.add_parser(
        "retry", help="queue a failed action again once its cause is fixed (same key, audited)"
    )
    retry.add_argument("action_id")
    retry.add_argument("--actor", required=True, help="who asks, for the audit log")
    retry.set_defaults(func=cmd_retry)


def cmd_list(args: argparse.Namespace) -> None:
    for action in list_actions(OpStore(default_opstore_url()), status=args.status, case_id=args.case):
        print(json.dumps(action.__dict__, sort_keys=True, default=str))


def cmd_retry(args: argparse.Namespace) -> None:
    if not retry_failed_action(OpStore(default_opstore_url()), args.action_id, args.actor, datetime.now(UTC)):
        raise LookupError(f"no failed action {args.action_id!r}")
    print(f"{args.action_id} queued again; the next delivery pass sends it with the same key")
