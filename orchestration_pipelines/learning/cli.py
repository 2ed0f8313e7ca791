"""``orchestration-pipelines router recalibrate | promote``: the router's thresholds from reviewed tickets,
and the promotion of a candidate policy that ran in shadow."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def add_parser(sub: argparse._SubParsersAction) -> None:
    router = sub.add_parser("router", help="the level-2 router's policy")
    router_sub = router.add_subparsers(dest="router_command", required=True)
    recalibrate = router_sub.add_parser(
        "recalibrate",
        help="raise the local / small thresholds where reviewers corrected the answers; prints the new "
        "policy version (run it in shadow, then promote) and the evidence per tier",
    )
    recalibrate.add_argument("--version", required=True, help="the new policy version's name")
    recalibrate.add_argument("--target", type=float, default=0.9, help="accuracy a trusted tier must reach")
    recalibrate.set_defaults(func=cmd_recalibrate)
    promote = router_sub.add_parser(
        "promote",
        help="make the candidate router policy active; refused unless it ran in shadow beside the active one",
    )
    promote.add_argument("version", help="the candidate policy version (support/router_candidate)")
    promote.add_argument("--actor", required=True, help="who promotes (recorded in the audit log)")
    promote.add_argument("--reason", default="shadow results reviewed", help="why, for the audit log")
    promote.set_defaults(func=cmd_promote)


def cmd_recalibrate(args: argparse.Namespace) -> None:
    import duckdb

    from orchestration_pipelines.learning.router import recalibrate_from_reviews
    from orchestration_pipelines.model_registry import ModelRegistry
    from orchestration_pipelines.opstore import OpStore
    from orchestration_pipelines.router import active_router_policy
    from orchestration_pipelines.settings import default_opstore_url, paths
    from orchestration_pipelines.support import load_classifier

    layout = paths()
    store = OpStore(default_opstore_url())
    _, card = load_classifier(ModelRegistry(layout.models))
    with duckdb.connect(str(layout.warehouse), read_only=True) as con:
        policy, report, reviewed = recalibrate_from_reviews(
            store, con, active_router_policy(store), card["intents"], args.version, args.target
        )
    print(
        json.dumps(
            {"reviewed_tickets": reviewed, "tiers": [asdict(t) for t in report], "policy": policy.as_dict()},
            indent=2,
        )
    )


def cmd_promote(args: argparse.Namespace) -> None:
    from orchestration_pipelines.opstore import OpStore
    from orchestration_pipelines.settings import default_opstore_url
    from orchestration_pipelines.shadow import UnknownVersion
    from orchestration_pipelines.support.router_calibration import NoShadowEvidence, promote_router_candidate

    try:
        promoted = promote_router_candidate(
            OpStore(default_opstore_url()), args.version, args.actor, args.reason
        )
    except (UnknownVersion, NoShadowEvidence) as exc:
        raise SystemExit(str(exc)) from None
    print(f"promoted router policy {promoted.version} by {promoted.actor}")
