"""The local ticket classifier: intent and urgency with calibrated probabilities, from text alone.

Features are TF-IDF weights of the words and of each word's character 4-grams (with the word's
boundaries). A misspelt word keeps most of its 4-grams (" refnud " still shares " ref" and "und "
with " refund "), so real tickets full of typos and informal wording are classified almost as well
as clean ones; one hand-written analyzer keeps the local path fast. A linear SVM per label,
calibrated by temperature scaling on cross-validation folds (one temperature for all intents, so
the distribution stays sharp where Platt scaling per label made it under-confident), gives
probabilities the router can threshold on. Any set of intents works: companies train on their own
labelled tickets under their own names (``train_on_table``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score, recall_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

from orchestration_pipelines.model_registry import ModelRegistry

MODEL_NAME = "support_classifier"
MIN_EXAMPLES_PER_LABEL = 5  # a stratified hold-out and three calibration folds need a few of each


_WORD = re.compile(r"\w+")


def _word_tokens(word: str) -> list[str]:
    padded = f" {word} "
    return [word, *(padded[i : i + 4] for i in range(len(padded) - 3))]


def words_and_char_grams(text: str) -> list[str]:
    """The tokens of a text: its lower-cased words and the character 4-grams of `` word ``."""
    tokens: list[str] = []
    for word in _WORD.findall(text.lower()):
        tokens.extend(_word_tokens(word))
    return tokens


class WordGramTfidf(TfidfVectorizer):
    """Sublinear TF-IDF of ``words_and_char_grams`` whose ``transform`` maps each distinct word of a batch
    to its feature columns once. Tickets repeat a small vocabulary, and looking every token up again was
    most of the local path's cost. The matrix is ``TfidfVectorizer.transform``'s."""

    def __init__(self, *, min_df: int = 1, dtype: type = np.float64):
        super().__init__(analyzer=words_and_char_grams, min_df=min_df, sublinear_tf=True, dtype=dtype)

    def transform(self, raw_documents) -> sp.csr_matrix:
        vocabulary = self.vocabulary_
        columns_of: dict[str, list[int]] = {}
        indices: list[int] = []
        indptr = [0]
        for text in raw_documents:
            for word in _WORD.findall(text.lower()):
                columns = columns_of.get(word)
                if columns is None:
                    columns = columns_of[word] = [
                        vocabulary[t] for t in _word_tokens(word) if t in vocabulary
                    ]
                indices.extend(columns)
            indptr.append(len(indices))
        counts = sp.csr_matrix(
            (np.ones(len(indices), dtype=self.dtype), np.asarray(indices, dtype=np.int32), indptr),
            shape=(len(indptr) - 1, len(vocabulary)),
        )
        counts.sum_duplicates()
        counts.data = ((np.log(counts.data) + 1) * self.idf_[counts.indices]).astype(self.dtype, copy=False)
        return normalize(counts, norm=self.norm, copy=False)


def calibrated_classifier(seed: int = 0) -> CalibratedClassifierCV:
    return CalibratedClassifierCV(LinearSVC(C=0.5, random_state=seed), method="temperature", cv=3)


def text_model(seed: int = 0) -> Pipeline:
    features = WordGramTfidf(min_df=2, dtype=np.float32)
    return Pipeline([("features", features), ("classifier", calibrated_classifier(seed))])


def ticket_texts(df: pd.DataFrame, text_columns: Sequence[str] = ("subject", "body")) -> list[str]:
    """The text a ticket is classified on: its text columns joined, missing values as empty."""
    parts = [df[column].fillna("").astype(str) for column in text_columns]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + "\n" + part
    return joined.tolist()


@dataclass(frozen=True)
class Predictions:
    """Per ticket: the top label and its calibrated probability, and the full distributions."""

    intent: np.ndarray
    intent_confidence: np.ndarray
    intent_probabilities: np.ndarray  # (tickets, intents), columns in ``intents`` order
    intents: list[str]
    urgency: np.ndarray | None = None
    urgency_confidence: np.ndarray | None = None

    def distribution(self, row: int) -> dict[str, float]:
        return dict(zip(self.intents, self.intent_probabilities[row].tolist(), strict=True))


@dataclass
class TicketClassifier:
    """``urgency_model`` reads the intent model's features, so a ticket is tokenised once."""

    text_columns: tuple[str, ...]
    intent_model: Pipeline
    urgency_model: CalibratedClassifierCV | None = None
    intents: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.intents = [str(label) for label in self.intent_model.classes_]

    def predict(self, df: pd.DataFrame) -> Predictions:
        texts = ticket_texts(df, self.text_columns)
        if not texts:
            empty = np.array([], dtype=object)
            return Predictions(empty, np.array([]), np.zeros((0, len(self.intents))), self.intents)
        features = self.intent_model.named_steps["features"].transform(texts)
        probabilities = self.intent_model.named_steps["classifier"].predict_proba(features)
        top = probabilities.argmax(axis=1)
        urgency = urgency_confidence = None
        if self.urgency_model is not None:
            urgency_probabilities = self.urgency_model.predict_proba(features)
            urgency = self.urgency_model.classes_[urgency_probabilities.argmax(axis=1)]
            urgency_confidence = urgency_probabilities.max(axis=1)
        return Predictions(
            intent=np.asarray(self.intents, dtype=object)[top],
            intent_confidence=probabilities[np.arange(len(top)), top],
            intent_probabilities=probabilities,
            intents=self.intents,
            urgency=urgency,
            urgency_confidence=urgency_confidence,
        )


@dataclass(frozen=True)
class TrainingReport:
    """Hold-out metrics of a trained classifier; ``per_language`` only when a language column was given.
    ``holdout`` has the hold-out tickets' true ``intent``, ``local_intent`` and ``local_confidence`` (the
    calibrated top probability): what the router's thresholds are calibrated on."""

    metrics: dict
    train_rows: int
    holdout_rows: int
    dropped_rows: int
    holdout: pd.DataFrame = field(default_factory=pd.DataFrame)


def _metrics(truth: Sequence[str], predicted: Sequence[str]) -> dict:
    labels = sorted(set(truth))
    recall = recall_score(truth, predicted, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(
            float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)), 4
        ),
        "recall": {label: round(float(value), 4) for label, value in zip(labels, recall, strict=True)},
        "rows": len(truth),
    }


def train_classifier(
    df: pd.DataFrame,
    *,
    text_columns: Sequence[str],
    intent: str,
    urgency: str | None = None,
    language: str | None = None,
    holdout_share: float = 0.2,
    seed: int = 0,
    extra: pd.DataFrame | None = None,
    extra_weight: float = 1.0,
) -> tuple[TicketClassifier, TrainingReport]:
    """Train on a labelled table, evaluate on a stratified hold-out, refit on everything.

    ``extra`` (the text columns and ``intent``; reviewers' corrections) always trains the intent model
    with ``extra_weight`` per row and never enters the hold-out: reviewers pick their tickets, so they
    are no sample to judge the model by.
    """
    columns = [*text_columns, intent, *(c for c in (urgency, language) if c)]
    unknown = [c for c in columns if c not in df.columns]
    if unknown:
        raise ValueError(f"columns {unknown} not found; the table has {list(df.columns)}")
    texts = pd.Series(ticket_texts(df, text_columns), index=df.index)
    usable = texts.str.strip().ne("") & df[intent].notna() & df[intent].astype(str).str.strip().ne("")
    if urgency:
        usable &= df[urgency].notna()
    data = df[usable].assign(_text=texts[usable], _intent=df.loc[usable, intent].astype(str).str.strip())
    counts = data["_intent"].value_counts()
    if len(counts) < 2:
        raise ValueError(f"column {intent!r} needs at least two intents, found {list(counts.index)}")
    rare = counts[counts < MIN_EXAMPLES_PER_LABEL]
    if not rare.empty:
        raise ValueError(
            f"intents with fewer than {MIN_EXAMPLES_PER_LABEL} labelled tickets: {rare.to_dict()}; "
            "label more tickets or merge them into another intent"
        )
    train, holdout = train_test_split(
        data, test_size=holdout_share, stratify=data["_intent"], random_state=seed
    )
    corrections = pd.DataFrame(columns=["_text", "_intent"])
    if extra is not None and len(extra):
        corrections = pd.DataFrame(
            {"_text": ticket_texts(extra, text_columns), "_intent": extra[intent].astype(str).str.strip()}
        )
    holdout_model = _fit(train, "_intent", seed, corrections, extra_weight)
    probabilities = holdout_model.predict_proba(holdout["_text"])  # predict is their argmax
    predicted = pd.Series(holdout_model.classes_[probabilities.argmax(axis=1)], index=holdout.index)
    metrics = {"intent": _metrics(holdout["_intent"], predicted)}
    if urgency:
        urgency_model = _fit(train.assign(_urgency=train[urgency].astype(str)), "_urgency", seed)
        metrics["urgency"] = _metrics(holdout[urgency].astype(str), urgency_model.predict(holdout["_text"]))
    if language:
        metrics["per_language"] = {
            str(lang): _metrics(group["_intent"], predicted[group.index])
            for lang, group in holdout.groupby(holdout[language].fillna("und").astype(str))
        }
    intent_model = _fit(data, "_intent", seed, corrections, extra_weight)
    urgency_model = None
    if urgency:
        features = intent_model.named_steps["features"].transform(data["_text"].tolist())
        urgency_model = calibrated_classifier(seed).fit(features, data[urgency].astype(str).tolist())
    classifier = TicketClassifier(tuple(text_columns), intent_model, urgency_model)
    scored = pd.DataFrame(
        {
            "intent": holdout["_intent"].to_numpy(),
            "local_intent": predicted.to_numpy(),
            "local_confidence": probabilities.max(axis=1).round(4),
        }
    )
    report = TrainingReport(metrics, len(train), len(holdout), int((~usable).sum()), scored)
    return classifier, report


def _fit(
    data: pd.DataFrame,
    label: str,
    seed: int,
    extra: pd.DataFrame | None = None,
    extra_weight: float = 1.0,
) -> Pipeline:
    """A text model fitted on ``data`` and ``extra`` (same columns), whose rows weigh ``extra_weight``."""
    if extra is None or extra.empty:
        return text_model(seed).fit(data["_text"].tolist(), data[label].tolist())
    texts = [*data["_text"], *extra["_text"]]
    labels = [*data[label], *extra[label]]
    weights = np.r_[np.ones(len(data)), np.full(len(extra), extra_weight)]
    return text_model(seed).fit(texts, labels, classifier__sample_weight=weights)


def train_on_table(
    df: pd.DataFrame,
    *,
    text_columns: Sequence[str],
    intent: str,
    urgency: str | None = None,
    language: str | None = None,
    registry: ModelRegistry,
    source: str | Path | None = None,
) -> tuple[str, TrainingReport]:
    """Train on a company's own labelled tickets and save (not promote) a model version."""
    classifier, report = train_classifier(
        df, text_columns=text_columns, intent=intent, urgency=urgency, language=language
    )
    version = registry.save(
        MODEL_NAME,
        classifier,
        {
            "intents": classifier.intents,
            "text_columns": list(text_columns),
            "columns": {"intent": intent, "urgency": urgency, "language": language},
            "metrics": report.metrics,
            "train_rows": report.train_rows,
            "holdout_rows": report.holdout_rows,
            "dropped_rows": report.dropped_rows,
            "source": str(source) if source else None,
        },
    )
    return version, report
