"""``orchestration-pipelines support ...``: train the ticket classifier on your own table, promote it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from orchestration_pipelines.landing import read_table_file
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.settings import default_opstore_url, paths


def cmd_train(args: argparse.Namespace) -> None:
    from orchestration_pipelines.support import promote_classifier, train_on_table

    if args.input.suffix.lower() not in (".csv", ".parquet"):
        raise SystemExit(f"{args.input}: expected a .csv or .parquet file")
    registry = ModelRegistry(paths().models)
    version, report = train_on_table(
        read_table_file(args.input),
        text_columns=args.text.split(","),
        intent=args.intent,
        urgency=args.urgency,
        language=args.language,
        registry=registry,
        source=args.input,
    )
    summary = {
        "version": version,
        "metrics": report.metrics,
        "train_rows": report.train_rows,
        "holdout_rows": report.holdout_rows,
        "dropped_rows": report.dropped_rows,
    }
    print(json.dumps(summary, indent=2))
    if args.promote:
        previous = promote_classifier(registry, OpStore(default_opstore_url()), version, actor="cli")
        print(f"promoted {version} (previous: {previous})")


def cmd_promote(args: argparse.Namespace) -> None:
    from orchestration_pipelines.support import promote_classifier

    registry = ModelRegistry(paths().models)
    previous = promote_classifier(registry, OpStore(default_opstore_url()), args.version, actor=args.actor)
    print(f"promoted {args.version} (previous: {previous})")


def cmd_generate(args: argparse.Namespace) -> None:
    from orchestration_pipelines.support.generator import write_demo_files

    layout = paths()
    landed = write_demo_files(
        layout.history("support"),
        layout.landing("support"),
        tickets=args.tickets,
        batches=args.batches,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    print(f"customers, orders and {args.tickets} labelled tickets -> {layout.history('support')}")
    for name, batch in landed.items():
        print(f"landing batch {name}: {len(batch)} tickets")


def add_support_commands(sub: argparse._SubParsersAction) -> None:
    support = sub.add_parser("support", help="support triage: demo data, train and promote the classifier")
    support_sub = support.add_subparsers(dest="support_command", required=True)
    generate = support_sub.add_parser(
        "generate", help="write customers, orders, labelled tickets and landing batches under OP_DATA_DIR"
    )
    generate.add_argument("--tickets", type=int, default=3000, help="labelled tickets for training")
    generate.add_argument("--batches", type=int, default=2)
    generate.add_argument("--batch-size", type=int, default=200)
    generate.add_argument("--seed", type=int, default=7)
    generate.set_defaults(func=cmd_generate)
    train = support_sub.add_parser(
        "train", help="train and evaluate the classifier on your labelled tickets (any intent names)"
    )
    train.add_argument("input", type=Path, help="a .csv or .parquet table")
    train.add_argument("--text", required=True, help="comma-separated text columns, e.g. subject,body")
    train.add_argument("--intent", required=True, help="the intent label column")
    train.add_argument("--urgency", help="an urgency label column (trains a second classifier)")
    train.add_argument("--language", help="a language column: metrics are also reported per language")
    train.add_argument("--promote", action="store_true", help="make this version the one the workflow uses")
    train.set_defaults(func=cmd_train)
    promote = support_sub.add_parser("promote", help="make a saved classifier version the active one")
    promote.add_argument("version")
    promote.add_argument("--actor", default="cli", help="who promotes (recorded in the audit log)")
    promote.set_defaults(func=cmd_promote)
