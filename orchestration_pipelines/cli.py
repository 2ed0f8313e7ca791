"""``orchestration-pipelines``: the demo, data generation, fraud scoring/training and support training."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from orchestration_pipelines.learning import cli as learning_cli
from orchestration_pipelines.maintenance import cli as maintenance_cli
from orchestration_pipelines.review import actions_cli
from orchestration_pipelines.settings import paths


def _read_table(path: Path) -> pd.DataFrame:
    from orchestration_pipelines.landing import read_table_file

    if path.suffix not in (".csv", ".parquet"):
        raise SystemExit(f"{path}: expected a .csv or .parquet file")
    return read_table_file(path)


def cmd_generate(args: argparse.Namespace) -> None:
    from orchestration_pipelines.fraud.generator import write_demo_files

    layout = paths()
    labelled = write_demo_files(
        layout.history("fraud"),
        layout.landing("fraud"),
        n_accounts=args.accounts,
        history_days=args.history_days,
        batches=args.batches,
        seed=args.seed,
    )
    print(f"labelled history -> {layout.history('fraud')}")
    for name, batch in labelled.items():
        print(f"landing batch {name}: {len(batch)} transactions ({int(batch['is_fraud'].sum())} fraudulent)")


def cmd_score(args: argparse.Namespace) -> None:
    from orchestration_pipelines import fraud

    decisions = fraud.score(_read_table(args.input), model_version=args.model_version)
    if args.output:
        out = Path(args.output)
        decisions.to_parquet(out, index=False) if out.suffix == ".parquet" else decisions.to_csv(
            out, index=False
        )
        print(f"{len(decisions)} decisions -> {out}")
    else:
        decisions.to_csv(sys.stdout, index=False)
    print(json.dumps(decisions["decision"].value_counts().to_dict()), file=sys.stderr)


def _promote(version: str, details: dict) -> None:
    from orchestration_pipelines import fraud
    from orchestration_pipelines.model_registry import ModelRegistry
    from orchestration_pipelines.opstore import OpStore
    from orchestration_pipelines.settings import default_opstore_url

    record, entry = fraud.promote_model(
        OpStore(default_opstore_url()),
        version,
        registry=ModelRegistry(paths().models),
        actor="cli",
        details=details,
    )
    print(f"promoted {version} (previous: {record.details['previous']})")
    if entry is None:
        print("audit store unreachable: run `orchestration-pipelines audit deliver` later", file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> None:
    from orchestration_pipelines import fraud
    from orchestration_pipelines.fraud.table import read_feature_table
    from orchestration_pipelines.model_registry import ModelRegistry

    version, result = fraud.train_on_table(
        read_feature_table(args.input),
        args.label,
        time_column=args.time_column,
        feature_columns=args.features.split(",") if args.features else None,
        registry=ModelRegistry(paths().models),
        source=args.input,
    )
    report = {
        "version": version,
        "split": result.split,
        "time": result.time,
        "feature_columns": result.model.feature_columns,
        "selection": result.selection,
        "metrics": result.metrics,
    }
    print(json.dumps(report, indent=2, default=str))
    if args.promote:
        _promote(version, {"metrics": result.metrics, "source": str(args.input)})


def cmd_promote(args: argparse.Namespace) -> None:
    _promote(args.version, {"reason": args.reason})


ANCHORED_ASSETS = (("fraud", "decisions"), ("fraud", "model"))


def _deliver_pending(store) -> int:
    """Deliver every pending audit record: warehouse outbox, model registry pointers, quarantine files."""
    import duckdb

    from orchestration_pipelines.audit import deliver_pending_audit
    from orchestration_pipelines.model_registry import ModelRegistry

    layout = paths()
    sources = {"registry": ModelRegistry(layout.models), "quarantine_root": layout.data_dir / "quarantine"}
    if not layout.warehouse.exists():
        return len(deliver_pending_audit(store, **sources))
    with duckdb.connect(str(layout.warehouse)) as con:
        return len(deliver_pending_audit(store, warehouse=con, **sources))


def _anchors_on_instance():
    """The audit anchors in the metadata of every anchored asset's materializations on DAGSTER_HOME."""
    from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

    from orchestration_pipelines.audit import AuditAnchor

    anchors = []
    with DagsterInstance.get() as instance:
        for key in ANCHORED_ASSETS:
            cursor = None
            while True:
                page = instance.fetch_materializations(
                    AssetRecordsFilter(asset_key=AssetKey(list(key))), limit=500, cursor=cursor
                )
                for record in page.records:
                    event = record.asset_materialization
                    if "audit_seq" in event.metadata:
                        partition = f" partition {event.partition}" if event.partition else ""
                        source = f"{'/'.join(key)}{partition} (run {record.run_id or 'none'})"
                        anchors.append(
                            AuditAnchor(
                                event.metadata["audit_seq"].value, event.metadata["audit_hash"].value, source
                            )
                        )
                if not page.has_more:
                    break
                cursor = page.cursor
    return anchors


def cmd_audit(args: argparse.Namespace) -> None:
    import os

    from orchestration_pipelines.audit import verify_against_anchors
    from orchestration_pipelines.opstore import OpStore
    from orchestration_pipelines.settings import default_opstore_url

    store = OpStore(default_opstore_url())
    try:
        print(f"delivered {_deliver_pending(store)} pending audit record(s)")
    except Exception as exc:
        if args.audit_command == "deliver":
            raise SystemExit(f"error: pending audit records not delivered: {exc}") from exc
        print(f"warning: pending audit records not delivered ({exc})", file=sys.stderr)
    if args.audit_command == "deliver":
        return
    if os.environ.get("DAGSTER_HOME"):
        anchors = _anchors_on_instance()
    else:
        anchors = []
        print("warning: DAGSTER_HOME not set: the chain is not compared with anchors", file=sys.stderr)
    problems = verify_against_anchors(store, anchors)
    if problems:
        raise SystemExit("audit log verification FAILED:\n  " + "\n  ".join(problems))
    print(f"audit chain intact and consistent with {len(anchors)} anchor(s)")


def cmd_opstore(args: argparse.Namespace) -> None:
    from orchestration_pipelines.migrations import head_revision
    from orchestration_pipelines.opstore import OpStore
    from orchestration_pipelines.settings import default_opstore_url

    store = OpStore(default_opstore_url())
    if args.opstore_command == "upgrade":
        print(f"{store}: upgraded to revision {store.migrate()}")
    else:
        current = store.current_revision()
        state = "up to date" if current == head_revision() else f"behind head {head_revision()}"
        print(f"{store}: revision {current or 'none (never migrated)'} ({state})")


def cmd_demo(args: argparse.Namespace) -> None:
    from orchestration_pipelines.demo import run_demo

    run_demo(n_accounts=args.accounts, with_bad_file=args.with_bad_file)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orchestration-pipelines", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="generate demo data; run fraud, support and a maintenance day through Dagster"
    )
    demo.add_argument("--accounts", type=int, default=5000)
    demo.add_argument(
        "--with-bad-file", action="store_true", help="also land a malformed file to see quarantine"
    )
    demo.set_defaults(func=cmd_demo)

    gen = sub.add_parser(
        "generate-fraud-data", help="write labelled history and landing batches under OP_DATA_DIR"
    )
    gen.add_argument("--accounts", type=int, default=5000)
    gen.add_argument("--history-days", type=int, default=30)
    gen.add_argument("--batches", type=int, default=3)
    gen.add_argument("--seed", type=int, default=7)
    gen.set_defaults(func=cmd_generate)

    fraud = sub.add_parser("fraud", help="fraud scoring and training outside Dagster")
    fraud_sub = fraud.add_subparsers(dest="fraud_command", required=True)
    score = fraud_sub.add_parser("score", help="score a CSV/Parquet file with the promoted model")
    score.add_argument("input", type=Path)
    score.add_argument("--output", help="write .csv or .parquet here instead of CSV on stdout")
    score.add_argument("--model-version", help="a registry version instead of the promoted one")
    score.set_defaults(func=cmd_score)
    train = fraud_sub.add_parser("train", help="train and evaluate on your own labelled feature table")
    train.add_argument("input", type=Path, help="a .csv or .parquet table")
    train.add_argument("--label", required=True, help="0/1 label column")
    train.add_argument(
        "--time-column", help="hold out the latest 20%% by this column (else stratified random)"
    )
    train.add_argument("--features", help="comma-separated feature columns (default: every numeric column)")
    train.add_argument("--promote", action="store_true", help="make this version the one scoring uses")
    train.set_defaults(func=cmd_train)
    promote = fraud_sub.add_parser(
        "promote", help="make a registry version the one scoring uses (audited), e.g. to switch back"
    )
    promote.add_argument("version", help="a version in the model registry")
    promote.add_argument("--reason", required=True, help="why, for the audit log")
    promote.set_defaults(func=cmd_promote)

    audit = sub.add_parser("audit", help="the audit log: deliver pending records, verify the chain")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser(
        "deliver", help="deliver records that published batches, promotions and quarantines still carry"
    ).set_defaults(func=cmd_audit)
    audit_sub.add_parser(
        "verify",
        help="deliver pending records, then check the hash chain and compare it with the anchors in "
        "the fraud/decisions and fraud/model materializations of the Dagster instance (DAGSTER_HOME)",
    ).set_defaults(func=cmd_audit)

    opstore = sub.add_parser("opstore", help="the operational store's schema (OP_OPSTORE_URL)")
    opstore_sub = opstore.add_subparsers(dest="opstore_command", required=True)
    opstore_sub.add_parser(
        "upgrade", help="apply pending migrations (also done automatically on first use)"
    ).set_defaults(func=cmd_opstore)
    opstore_sub.add_parser("current", help="print the schema revision the store is at").set_defaults(
        func=cmd_opstore
    )

    maintenance_cli.add_parser(sub)
    actions_cli.add_parser(sub)
    learning_cli.add_parser(sub)

    from orchestration_pipelines.support.cli import add_support_commands

    add_support_commands(sub)

    from orchestration_pipelines.review.cli import add_review_commands

    add_review_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, LookupError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from exc


if __name__ == "__main__":
    main()
