"""The support policy file (``policies/support.yaml``): risk and approval per intent, refund limit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestration_pipelines.config_files import parse_yaml

SUPPORT_POLICY_PATH = Path(__file__).parents[1] / "policies" / "support.yaml"


@dataclass(frozen=True)
class IntentRule:
    risk: float
    needs_approval: bool


@dataclass(frozen=True)
class SupportPolicy:
    version: str
    intents: dict[str, IntentRule]
    default_intent: IntentRule
    urgency_risk: dict[str, float]
    refund_limit_eur: float

    def rule(self, intent: str) -> IntentRule:
        return self.intents.get(intent, self.default_intent)

    def risk(self, intent: str, urgency: str | None = None) -> float:
        return min(1.0, self.rule(intent).risk + self.urgency_risk.get(urgency or "", 0.0))

    def needs_approval(self, intent: str | None) -> bool:
        """An unknown intent (the ticket went to a person unclassified) always needs approval."""
        return intent is None or self.rule(intent).needs_approval


def load_support_policy(path: Path = SUPPORT_POLICY_PATH) -> SupportPolicy:
    document = parse_yaml(path.read_text())
    return SupportPolicy(
        version=str(document["version"]),
        intents={name: IntentRule(**rule) for name, rule in document["intents"].items()},
        default_intent=IntentRule(**document["default_intent"]),
        urgency_risk={k: float(v) for k, v in (document.get("urgency_risk") or {}).items()},
        refund_limit_eur=float(document["refund_limit_eur"]),
    )
