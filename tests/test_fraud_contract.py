import pandas as pd
import pytest

from orchestration_pipelines.fraud.contract import ContractViolation, validate_transactions
from orchestration_pipelines.fraud.generator import unlabelled


def _batch(small_world) -> pd.DataFrame:
    return unlabelled(small_world.batches[0]).head(50).astype(str)  # as a CSV reader would see it


def _kinds(exc: pytest.ExceptionInfo) -> set[str]:
    return {e["kind"] for e in exc.value.report.errors}


def test_valid_text_batch_is_typed(small_world):
    typed = validate_transactions(_batch(small_world))
    assert str(typed["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert typed["amount"].dtype == "float64"
    assert len(typed) == 50


def test_missing_columns_are_named(small_world):
    with pytest.raises(ContractViolation, match="missing columns: device_id") as exc:
        validate_transactions(_batch(small_world).drop(columns=["device_id"]))
    assert _kinds(exc) == {"schema"}


def test_every_problem_is_reported_at_once(small_world):
    batch = _batch(small_world)
    batch.loc[0, "amount"] = "twelve"
    batch.loc[1, "timestamp"] = "yesterday"
    batch.loc[2, "transaction_id"] = batch.loc[3, "transaction_id"]
    batch.loc[4, "currency"] = "XXX"
    batch.loc[5, "merchant_id"] = None
    with pytest.raises(ContractViolation) as exc:
        validate_transactions(batch)
    assert _kinds(exc) == {"unparsable", "duplicate", "domain", "null"}
    unparsable = [e for e in exc.value.report.errors if e["kind"] == "unparsable"]
    assert {e["column"] for e in unparsable} == {"amount", "timestamp"}
    assert "twelve" in unparsable[0]["examples"] + unparsable[1]["examples"]


def test_non_positive_amounts_are_rejected(small_world):
    batch = _batch(small_world)
    batch.loc[0, "amount"] = "-3.50"
    with pytest.raises(ContractViolation, match="non-positive amounts"):
        validate_transactions(batch)


def test_labelled_history_requires_binary_labels(small_world):
    history = small_world.history.head(20).copy()
    history.loc[0, "is_fraud"] = 2
    with pytest.raises(ContractViolation, match="is_fraud must be 0 or 1"):
        validate_transactions(history, labelled=True)
    assert validate_transactions(small_world.history.head(20), labelled=True)["fraud_pattern"].notna().all()
