"""The local ticket classifier: robust to typos, calibrated, trainable on a company's own intents."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from orchestration_pipelines.audit import read_audit_log
from orchestration_pipelines.cli import main
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.support.classifier import (
    MODEL_NAME,
    WordGramTfidf,
    ticket_texts,
    train_classifier,
    words_and_char_grams,
)
from orchestration_pipelines.support.generator import generate_tickets


@pytest.fixture(scope="module")
def clean_tickets() -> pd.DataFrame:
    return generate_tickets(800, seed=1, typo_rate=0.0)


@pytest.fixture(scope="module")
def clean_model(clean_tickets):
    return train_classifier(
        clean_tickets, text_columns=("subject", "body"), intent="intent", urgency="urgency"
    )


def accuracy(model, tickets: pd.DataFrame) -> float:
    return float((model.predict(tickets).intent == tickets["intent"].to_numpy()).mean())


def test_trained_on_clean_tickets_it_holds_up_on_misspelt_ones(clean_tickets, clean_model):
    classifier, _ = clean_model
    clean, misspelt = (
        generate_tickets(600, seed=2, typo_rate=0.0),
        generate_tickets(600, seed=2, typo_rate=1.0),  # a typo in every word of four letters or more
    )
    words_only = make_pipeline(  # the same learner on word features alone
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True), LinearSVC(C=0.5)
    ).fit(ticket_texts(clean_tickets), clean_tickets["intent"])
    words_only_accuracy = float((words_only.predict(ticket_texts(misspelt)) == misspelt["intent"]).mean())

    assert accuracy(classifier, misspelt) >= accuracy(classifier, clean) - 0.03
    assert accuracy(classifier, misspelt) >= words_only_accuracy + 0.03  # what the character grams buy


def test_probabilities_are_calibrated_on_unseen_tickets(clean_model):
    classifier, _ = clean_model
    tickets = generate_tickets(1000, seed=3, misleading_share=0.3)
    predictions = classifier.predict(tickets)
    correct = predictions.intent == tickets["intent"].to_numpy()
    assert np.allclose(predictions.intent_probabilities.sum(axis=1), 1)
    assert abs(predictions.intent_confidence.mean() - correct.mean()) < 0.06
    confident = predictions.intent_confidence >= 0.9
    assert correct[confident].mean() >= 0.9 and correct[~confident].mean() < correct[confident].mean()
    assert set(predictions.urgency) <= {"low", "normal", "high", "urgent"}


def test_the_report_has_hold_out_metrics_per_intent_and_language():
    tickets = generate_tickets(600, seed=5)
    _, report = train_classifier(
        tickets, text_columns=("subject", "body"), intent="intent", urgency="urgency", language="language"
    )
    intent = report.metrics["intent"]
    assert intent["rows"] == report.holdout_rows == 120 and report.train_rows == 480
    assert set(intent["recall"]) == set(tickets["intent"]) and 0.8 < intent["macro_f1"] <= 1
    assert set(report.metrics["per_language"]) == set(tickets["language"])
    assert 0 < report.metrics["urgency"]["accuracy"] <= 1


def test_a_table_with_too_few_examples_of_an_intent_is_refused_with_the_names():
    tickets = generate_tickets(200, seed=6)
    tickets.loc[:2, "intent"] = "gift_cards"
    with pytest.raises(ValueError, match="gift_cards"):
        train_classifier(tickets, text_columns=("body",), intent="intent")
    with pytest.raises(ValueError, match="not found"):
        train_classifier(tickets, text_columns=("text",), intent="intent")


def company_table(n: int, seed: int) -> pd.DataFrame:
    """A company's own export: other column names, other intent names, some unlabelled rows."""
    names = {
        "billing": "Invoices",
        "refund": "Money back",
        "shipping": "Delivery",
        "account_access": "Login",
        "technical_fault": "Device broken",
        "cancellation": "Churn",
        "legal_complaint": "Escalation/Legal",
    }
    tickets = generate_tickets(n, seed=seed)
    table = pd.DataFrame(
        {
            "Title": tickets["subject"],
            "Message": tickets["body"],
            "Queue": tickets["intent"].map(names),
            "Prio": tickets["urgency"],
            "Lang": tickets["language"],
        }
    )
    table.loc[::50, "Queue"] = None
    return table


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_support_train_cli_trains_saves_and_promotes_with_an_audit_event(data_env, tmp_path, capsys, suffix):
    path = tmp_path / f"export{suffix}"
    table = company_table(500, seed=8)
    table.to_csv(path, index=False) if suffix == ".csv" else table.to_parquet(path, index=False)

    main(["support", "train", str(path), "--text", "Title,Message", "--intent", "Queue", "--urgency", "Prio",
          "--language", "Lang", "--promote"])  # fmt: skip

    output = json.loads(capsys.readouterr().out.split("\npromoted")[0])
    assert set(output["metrics"]["intent"]["recall"]) == set(table["Queue"].dropna())
    assert output["dropped_rows"] == 10
    registry = ModelRegistry(data_env / "models")
    assert registry.current_version(MODEL_NAME) == output["version"]
    classifier, card = registry.load(MODEL_NAME)
    assert "Escalation/Legal" in card["intents"] and classifier.text_columns == ("Title", "Message")
    [event] = [
        e
        for e in read_audit_log(OpStore(f"sqlite:///{data_env / 'opstore.sqlite'}"))
        if e.workflow == "support"
    ]
    assert (event.event, event.subject) == ("model_promoted", output["version"])
    assert event.details["metrics"]["intent"]["macro_f1"] == output["metrics"]["intent"]["macro_f1"]


def test_support_promote_refuses_an_unknown_version(data_env):
    with pytest.raises(SystemExit, match="no version"):
        main(["support", "promote", "20250101T000000-deadbeef"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_fast_transform_gives_the_same_matrix_as_the_tfidf_vectorizer(clean_tickets, dtype):
    fitted_on = ticket_texts(clean_tickets.iloc[:400])
    texts = [
        *ticket_texts(generate_tickets(200, seed=9, typo_rate=0.2)),  # words never seen in fitting
        "",
        "!!! ???",
        "Ünïcödé wörds and refund refund refund",
    ]
    fast = WordGramTfidf(min_df=2, dtype=dtype).fit(fitted_on)
    reference = TfidfVectorizer(analyzer=words_and_char_grams, min_df=2, sublinear_tf=True, dtype=dtype)
    expected = reference.fit(fitted_on).transform(texts)
    got = fast.transform(texts)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert abs(got - expected).max() < 1e-6
