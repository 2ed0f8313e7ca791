"""``orchestration-pipelines review ...`` and ``case story``: the review inbox from a shell.

Decisions authenticate like the web app, with the reviewer's token: ``REVIEW_TOKEN`` in the
environment (preferred: a command-line argument shows in the process list and shell history), or
``--token``. Managing reviewers and sweeping timeouts need access to the operational store itself
(``OP_OPSTORE_URL``), not a token; they are audited with the operating-system user as actor.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from dataclasses import asdict
from datetime import datetime

from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.settings import default_opstore_url

TOKEN_ENV = "REVIEW_TOKEN"


def _store() -> OpStore:
    return OpStore(default_opstore_url())


def _operator() -> str:
    return f"cli:{getpass.getuser()}"


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))


def cmd_list(args: argparse.Namespace) -> None:
    from orchestration_pipelines.review import list_items

    statuses = None if args.status == "all" else args.status.split(",")
    due = datetime.fromisoformat(args.due_before) if args.due_before else None
    items = list_items(_store(), role=args.role, workflow=args.workflow, status=statuses, due_before=due)
    if args.json:
        return _print_json([asdict(i) for i in items])
    for item in items:
        who = f" -> {item.assigned_to}" if item.assigned_to else ""
        print(f"{item.item_id}  {item.status:<9} {item.deadline_at[:16]}  {item.required_role:<19} "
              f"{item.kind:<32} {item.case_id}{who}")  # fmt: skip
    print(f"{len(items)} item(s)", file=sys.stderr)


def cmd_show(args: argparse.Namespace) -> None:
    from orchestration_pipelines.review import get_item, item_history

    store = _store()
    item = get_item(store, args.item_id)
    if item is None:
        raise LookupError(f"no review item {args.item_id!r}")
    history = item_history(store, item.item_id)
    if args.json:
        return _print_json({"item": asdict(item), "history": [asdict(e) for e in history]})
    for name in ("item_id", "kind", "case_id", "status", "required_role", "assigned_to", "deadline_at",
                 "reason", "decision", "decided_value", "model_version", "prompt_version", "policy_version",
                 "input_sha256"):  # fmt: skip
        print(f"{name:>15}: {getattr(item, name)}")
    print(f"{'approvals':>15}: {', '.join(a['reviewer'] for a in item.approvals) or '-'}")
    print("        context:")
    for key, value in item.context.items():
        print(f"    {key}: {value}")
    print("        history:")
    for event in history:
        extra = event.value or event.comment or event.detail.get("reason") or ""
        print(
            f"    {event.at[:19]}  {event.actor} ({event.actor_role}) {event.action} {event.outcome}  {extra}"
        )


def cmd_decide(args: argparse.Namespace) -> None:
    from orchestration_pipelines.review import DecisionRefused, authenticate, decide

    store = _store()
    reviewer = authenticate(store, args.token or os.environ.get(TOKEN_ENV))
    if reviewer is None:
        raise SystemExit(f"error: no valid reviewer token: set {TOKEN_ENV} or pass --token")
    value = getattr(args, "value", None) or getattr(args, "to", None)
    try:
        outcome = decide(store, args.item_id, reviewer, args.action, value=value, comment=args.comment)
    except DecisionRefused as refused:
        raise SystemExit(f"refused: {refused.reason} (recorded as {refused.event_id})") from refused
    item = outcome.item
    print(f"{item.item_id}: {args.action} by {reviewer.reviewer_id} accepted; status {item.status}")
    if outcome.awaiting:
        print(f"waiting for {outcome.awaiting}")
    for key in outcome.action_keys:
        print(f"enqueued action {key}")


def cmd_reviewer_add(args: argparse.Namespace) -> None:
    from orchestration_pipelines.review import create_reviewer

    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    token = create_reviewer(_store(), args.reviewer_id, args.name, roles, actor=_operator())
    print(f"reviewer {args.reviewer_id} ({', '.join(roles)}) created. Their token, shown only now:")
    print(token)


def cmd_reviewer_disable(args: argparse.Namespace) -> None:
    from orchestration_pipelines.review import disable_reviewer

    disable_reviewer(_store(), args.reviewer_id, actor=_operator())
    print(f"reviewer {args.reviewer_id} disabled")


def cmd_timeouts(args: argparse.Namespace) -> None:
    from orchestration_pipelines.review import apply_timeouts

    done = apply_timeouts(_store())
    for item_id, action in done:
        print(f"{item_id}: {action}")
    print(f"{len(done)} overdue item(s) handled")


def cmd_story(args: argparse.Namespace) -> None:
    from orchestration_pipelines.review import case_story

    story = case_story(_store(), args.case_id)
    if not story:
        raise LookupError(f"nothing is recorded about case {args.case_id!r}")
    if args.json:
        return _print_json([entry.as_dict() for entry in story])
    for entry in story:
        print(f"{entry.at[:19]}  [{entry.source}] {entry.actor}: {entry.what}")
        if entry.why:
            print(f"{'':22}why: {entry.why}")
        versions = ", ".join(f"{k.removesuffix('_version')} {v}" for k, v in entry.versions.items() if v)
        if versions:
            print(f"{'':22}{versions.replace('input_sha256 ', 'input sha256 ')}")


def add_review_commands(sub: argparse._SubParsersAction) -> None:
    review = sub.add_parser("review", help="the human review inbox: list, show, decide, reviewers, timeouts")
    review_sub = review.add_subparsers(dest="review_command", required=True)

    listing = review_sub.add_parser("list", help="the queue, soonest deadline first")
    listing.add_argument("--role", help="items waiting for this role")
    listing.add_argument("--workflow", help="fraud, support, maintenance")
    listing.add_argument(
        "--status", default="open,assigned,escalated", help="comma-separated statuses, or 'all'"
    )
    listing.add_argument("--due-before", help="ISO 8601 time with zone, e.g. 2026-11-26T18:00:00+00:00")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)

    show = review_sub.add_parser("show", help="one item: context, approvals, history")
    show.add_argument("item_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)

    for action, help_text in (
        ("approve", "approve the item (its policy decides which actions follow)"),
        ("reject", "reject the item"),
        ("correct", "close the item with a corrected label (--value), stored as feedback"),
        ("assign", "assign the item to a reviewer (--to, default yourself)"),
        ("comment", "add a comment (--comment)"),
    ):
        parser = review_sub.add_parser(action, help=help_text)
        parser.add_argument("item_id")
        parser.add_argument("--token", help=f"reviewer token (default: ${TOKEN_ENV})")
        parser.add_argument("--comment", help="why, kept in the item's history")
        if action == "correct":
            parser.add_argument("--value", required=True, help="the corrected label")
        if action == "assign":
            parser.add_argument("--to", help="reviewer id")
        parser.set_defaults(func=cmd_decide, action=action)

    reviewer = review_sub.add_parser("reviewer", help="manage reviewers (needs store access, audited)")
    reviewer_sub = reviewer.add_subparsers(dest="reviewer_command", required=True)
    add = reviewer_sub.add_parser("add", help="create a reviewer and print their token once")
    add.add_argument("reviewer_id")
    add.add_argument("--name", required=True)
    add.add_argument("--roles", required=True, help="comma-separated roles from the review policy")
    add.set_defaults(func=cmd_reviewer_add)
    disable = reviewer_sub.add_parser("disable", help="revoke a reviewer's token")
    disable.add_argument("reviewer_id")
    disable.set_defaults(func=cmd_reviewer_disable)

    timeouts = review_sub.add_parser("timeouts", help="escalate or decide overdue items as the policy says")
    timeouts.set_defaults(func=cmd_timeouts)

    case = sub.add_parser("case", help="one case across workflows and people")
    case_sub = case.add_subparsers(dest="case_command", required=True)
    story = case_sub.add_parser("story", help="everything recorded about a case, from arrival to effect")
    story.add_argument("case_id")
    story.add_argument("--json", action="store_true")
    story.set_defaults(func=cmd_story)
