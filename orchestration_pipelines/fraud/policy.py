"""The versioned fraud policy: explicit rules, risk thresholds and the bounds a batch must respect."""

from __future__ import annotations

import hashlib
import operator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from orchestration_pipelines.config_files import parse_yaml

DECISIONS = ("auto_clear", "analyst_review", "block_pending_approval")
_OPERATORS = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Rule:
    code: str
    conditions: tuple[tuple[str, str, float], ...]
    risk_floor: float | None

    def matches(self, frame: pd.DataFrame) -> np.ndarray:
        mask = np.ones(len(frame), dtype=bool)
        for column, op, value in self.conditions:
            mask &= _OPERATORS[op](frame[column].to_numpy(), value)
        return mask


NAIVE_TIMESTAMP_CHOICES = ("reject", "assume_utc")
RESENT_CHOICES = ("quarantine", "skip")


@dataclass(frozen=True)
class IntakeRules:
    """What a landed batch must satisfy besides the contract's types and codes (``intake`` section)."""

    max_amount_eur: float
    naive_timestamps: str  # one of NAIVE_TIMESTAMP_CHOICES
    resent_transactions: str  # one of RESENT_CHOICES


@dataclass(frozen=True)
class FraudPolicy:
    policy_id: str
    version: str
    auto_clear_below: float
    block_at_or_above: float
    anomaly_review_percentile: float
    rules: tuple[Rule, ...]
    max_review_share: float
    max_block_share: float
    intake: IntakeRules
    source_sha256: str

    @property
    def rule_columns(self) -> set[str]:
        return {column for rule in self.rules for column, _, _ in rule.conditions}


class PolicyError(ValueError):
    pass


def load_policy(path: str | Path | None = None) -> FraudPolicy:
    """Read and validate a policy file; the packaged ``policies/fraud.yaml`` by default."""
    text = (
        Path(path).read_text()
        if path
        else resources.files("orchestration_pipelines").joinpath("policies/fraud.yaml").read_text()
    )
    raw = parse_yaml(text)
    try:
        rules = tuple(
            Rule(
                code=r["code"],
                conditions=tuple((c, op, float(v)) for c, op, v in r["when"]),
                risk_floor=None if r.get("risk_floor") is None else float(r["risk_floor"]),
            )
            for r in raw["rules"]
        )
        policy = FraudPolicy(
            policy_id=raw["policy_id"],
            version=str(raw["version"]),
            auto_clear_below=float(raw["thresholds"]["auto_clear_below"]),
            block_at_or_above=float(raw["thresholds"]["block_at_or_above"]),
            anomaly_review_percentile=float(raw["anomaly_review_percentile"]),
            rules=rules,
            max_review_share=float(raw["bounds"]["max_review_share"]),
            max_block_share=float(raw["bounds"]["max_block_share"]),
            intake=IntakeRules(
                max_amount_eur=float(raw["intake"]["max_amount_eur"]),
                naive_timestamps=str(raw["intake"]["naive_timestamps"]),
                resent_transactions=str(raw["intake"]["resent_transactions"]),
            ),
            source_sha256=hashlib.sha256(text.encode()).hexdigest(),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyError(f"invalid fraud policy: {exc!r}") from exc
    unknown_ops = [op for r in rules for _, op, _ in r.conditions if op not in _OPERATORS]
    if unknown_ops:
        raise PolicyError(f"unknown operators in policy rules: {unknown_ops}")
    for key, value, choices in (
        ("naive_timestamps", policy.intake.naive_timestamps, NAIVE_TIMESTAMP_CHOICES),
        ("resent_transactions", policy.intake.resent_transactions, RESENT_CHOICES),
    ):
        if value not in choices:
            raise PolicyError(f"intake.{key} must be one of {', '.join(choices)}, not {value!r}")
    if not 0 < policy.intake.max_amount_eur < float("inf"):
        raise PolicyError("intake.max_amount_eur must be a positive finite number")
    if not 0 < policy.auto_clear_below <= policy.block_at_or_above <= 1:
        raise PolicyError("thresholds must satisfy 0 < auto_clear_below <= block_at_or_above <= 1")
    return policy


def apply_rules(features: pd.DataFrame, policy: FraudPolicy) -> tuple[np.ndarray, np.ndarray]:
    """(highest risk floor among matching rules, bit set of fired rules) for every row.

    Bit ``i`` stands for ``policy.rules[i]``; ``reason_strings`` turns bit sets into reason codes.
    """
    floor = np.zeros(len(features))
    fired_bits = np.zeros(len(features), dtype="int64")
    for bit, rule in enumerate(policy.rules):
        mask = rule.matches(features)
        fired_bits |= mask.astype("int64") << bit
        if rule.risk_floor is not None:
            floor = np.where(mask, np.maximum(floor, rule.risk_floor), floor)
    return floor, fired_bits


def reason_strings(bits: np.ndarray, codes: list[str]) -> np.ndarray:
    """Map bit sets to ``;``-joined codes (bit i set -> ``codes[i]``).

    Each distinct combination is joined once, not each row, which keeps this cheap on millions of rows.
    """
    uniques, inverse = np.unique(bits, return_inverse=True)
    labels = np.array(
        [";".join(code for i, code in enumerate(codes) if value >> i & 1) for value in uniques], dtype=object
    )
    return labels[inverse]


def decide(risk: np.ndarray, anomaly_percentile: np.ndarray, policy: FraudPolicy) -> np.ndarray:
    """The queue for each case: confident decisions are automated, the uncertain middle goes to people."""
    review = (risk >= policy.auto_clear_below) | (anomaly_percentile >= policy.anomaly_review_percentile)
    return np.select(
        [risk >= policy.block_at_or_above, review], ["block_pending_approval", "analyst_review"], "auto_clear"
    ).astype(object)
