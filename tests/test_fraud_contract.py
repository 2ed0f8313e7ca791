import dataclasses

import pandas as pd
import pytest

from orchestration_pipelines.fraud.contract import (
    ContractViolation,
    check_transactions,
    validate_transactions,
)
from orchestration_pipelines.fraud.generator import unlabelled
from orchestration_pipelines.fraud.policy import IntakeRules, load_policy


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


def _rules(**overrides) -> IntakeRules:
    return dataclasses.replace(load_policy().intake, **overrides)


@pytest.mark.parametrize("amount", ["inf", "-inf", "Infinity", "1e300"])
def test_infinite_and_implausible_amounts_are_refused(small_world, amount):
    batch = _batch(small_world)
    batch.loc[0, "amount"] = amount
    with pytest.raises(ContractViolation, match="amount") as exc:
        validate_transactions(batch)
    assert _kinds(exc) == {"range"}
    assert exc.value.report.errors[0]["examples"] == [batch.loc[0, "transaction_id"]]


def test_plausible_maximum_is_in_eur_and_comes_from_the_policy(small_world):
    batch = _batch(small_world)
    batch.loc[0, ["amount", "currency"]] = ["5000000", "JPY"]  # about 31,000 EUR
    assert len(validate_transactions(batch)) == 50
    with pytest.raises(ContractViolation, match="above the plausible maximum"):
        validate_transactions(batch, intake=_rules(max_amount_eur=10_000))


def test_negative_amount_is_reported_beside_other_parse_errors(small_world):
    batch = _batch(small_world)
    batch.loc[0, "amount"] = "-3.50"
    batch.loc[1, "timestamp"] = "yesterday"
    with pytest.raises(ContractViolation) as exc:
        validate_transactions(batch)
    assert _kinds(exc) == {"range", "unparsable"}


def test_country_must_be_iso_3166_alpha_2_and_mcc_a_known_code(small_world):
    batch = _batch(small_world)
    batch.loc[0, "country"] = "XX"
    batch.loc[1, "country"] = "DEU"
    batch.loc[2, "country"] = "de"
    batch.loc[3, "merchant_category"] = "0000"
    batch.loc[4, "merchant_category"] = "grocery"
    with pytest.raises(ContractViolation) as exc:
        validate_transactions(batch)
    problems = {e["column"]: e for e in exc.value.report.errors}
    assert set(problems) == {"country", "merchant_category"}
    assert set(problems["country"]["examples"]) == {"XX", "DEU", "de"}
    assert set(problems["merchant_category"]["examples"]) == {"0000", "grocery"}


def test_every_iso_country_and_real_mcc_is_accepted(small_world):
    batch = _batch(small_world)
    batch["country"] = ["AQ", "AX", "CW", "FJ", "KI", "NZ", "RU", "UM", "US", "ZW"] * 5
    batch["merchant_category"] = ["3000", "0742", "4829", "5411", "7995"] * 10
    assert len(validate_transactions(batch)) == 50


def test_a_header_only_file_is_refused_as_empty(small_world):
    with pytest.raises(ContractViolation, match="no transactions") as exc:
        validate_transactions(_batch(small_world).head(0))
    assert _kinds(exc) == {"empty"}


def test_naive_timestamps_are_refused_or_assumed_utc_as_the_policy_says(small_world):
    batch = _batch(small_world)
    batch.loc[:9, "timestamp"] = "2026-10-31T08:15:00"
    batch.loc[10, "timestamp"] = "2026-10-31"
    with pytest.raises(ContractViolation, match="11 timestamps have no time zone") as exc:
        validate_transactions(batch, intake=_rules(naive_timestamps="reject"))
    assert _kinds(exc) == {"timezone"}

    typed, notes = check_transactions(batch, intake=_rules(naive_timestamps="assume_utc"))
    assert typed.loc[0, "timestamp"] == pd.Timestamp("2026-10-31T08:15:00", tz="UTC")
    assert [(n["kind"], n["rows"]) for n in notes] == [("naive_timestamps_assumed_utc", 11)]
    assert check_transactions(_batch(small_world))[1] == []


def test_naive_parquet_timestamps_are_seen_too(small_world):
    batch = unlabelled(small_world.batches[0]).head(20)
    batch["timestamp"] = batch["timestamp"].dt.tz_localize(None)
    with pytest.raises(ContractViolation, match="20 timestamps have no time zone"):
        validate_transactions(batch, intake=_rules(naive_timestamps="reject"))


def test_offsets_are_converted_to_utc(small_world):
    batch = _batch(small_world)
    batch.loc[0, "timestamp"] = "2026-10-31T09:15:00+01:00"
    batch.loc[1, "timestamp"] = "2026-10-31T08:15:00Z"
    typed = validate_transactions(batch)
    assert typed.loc[0, "timestamp"] == typed.loc[1, "timestamp"] == pd.Timestamp("2026-10-31T08:15Z")


def test_text_labels_are_checked_like_numbers(small_world):
    history = small_world.history.head(20).astype(str)
    history.loc[0, "fraud_pattern"] = ""
    assert validate_transactions(history, labelled=True)["is_fraud"].dtype == "int8"
    history.loc[1, "is_fraud"] = "yes"
    history.loc[2, "amount"] = "-1"
    with pytest.raises(ContractViolation) as exc:
        validate_transactions(history, labelled=True)
    assert _kinds(exc) == {"domain", "range"}


def test_generated_data_meets_the_contract(small_world):
    assert len(validate_transactions(small_world.history, labelled=True)) == len(small_world.history)
    for batch in small_world.batches:
        assert len(validate_transactions(unlabelled(batch).astype(str))) == len(batch)


def test_policy_intake_choices_are_checked(tmp_path):
    from importlib import resources

    from orchestration_pipelines.fraud.policy import PolicyError

    text = resources.files("orchestration_pipelines").joinpath("policies/fraud.yaml").read_text()
    for old, new, problem in [
        ("naive_timestamps: reject", "naive_timestamps: guess", "naive_timestamps must be one of"),
        ("resent_transactions: quarantine", "resent_transactions: ignore", "resent_transactions must be"),
        ("max_amount_eur: 1000000", "max_amount_eur: .inf", "max_amount_eur"),
    ]:
        path = tmp_path / "policy.yaml"
        path.write_text(text.replace(old, new))
        with pytest.raises(PolicyError, match=problem):
            load_policy(path)


def test_codes_stored_as_numbers_are_read_as_text(small_world):
    batch = unlabelled(small_world.batches[0]).head(20)
    batch["merchant_category"] = batch["merchant_category"].astype(int)  # as a Parquet writer may keep it
    typed = validate_transactions(batch)
    assert typed["merchant_category"].map(type).eq(str).all()
    assert (
        typed["merchant_category"].tolist() == small_world.batches[0]["merchant_category"].head(20).tolist()
    )
