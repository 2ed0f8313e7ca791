"""``orchestration-pipelines``: the demo, data generation, fraud scoring/training and support training."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

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


def cmd_train(args: argparse.Namespace) -> None:
    from orchestration_pipelines import fraud
    from orchestration_pipelines.audit import append_audit_event
    from orchestration_pipelines.model_registry import ModelRegistry
    from orchestration_pipelines.opstore import OpStore
    from orchestration_pipelines.settings import default_opstore_url

    registry = ModelRegistry(paths().models)
    version, result = fraud.train_on_table(
        _read_table(args.input),
        args.label,
        time_column=args.time_column,
        feature_columns=args.features.split(",") if args.features else None,
        registry=registry,
        source=args.input,
    )
    print(json.dumps({"version": version, "split": result.split, "metrics": result.metrics}, indent=2))
    if args.promote:
        previous = registry.current_version(fraud.MODEL_NAME)
        registry.promote(fraud.MODEL_NAME, version)
        append_audit_event(
            OpStore(default_opstore_url()),
            workflow="fraud",
            event="model_promoted",
            subject=version,
            details={"previous": previous, "metrics": result.metrics, "source": str(args.input)},
            actor="cli",
        )
        print(f"promoted {version} (previous: {previous})")


def cmd_demo(args: argparse.Namespace) -> None:
    from orchestration_pipelines.demo import run_fraud_demo

    run_fraud_demo(n_accounts=args.accounts, with_bad_file=args.with_bad_file)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orchestration-pipelines", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="generate demo data and run the fraud workflow through Dagster")
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
    train.add_argument("input", type=Path)
    train.add_argument("--label", required=True, help="0/1 label column")
    train.add_argument(
        "--time-column", help="hold out the latest 20%% by this column (else stratified random)"
    )
    train.add_argument("--features", help="comma-separated feature columns (default: every numeric column)")
    train.add_argument("--promote", action="store_true", help="make this version the one scoring uses")
    train.set_defaults(func=cmd_train)

    from orchestration_pipelines.support.cli import add_support_commands

    add_support_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, LookupError) as exc:
        raise SystemExit(f"error: {exc}") from exc


if __name__ == "__main__":
    main()
