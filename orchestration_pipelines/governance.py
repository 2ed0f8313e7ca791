"""What data may reach a model, and in what form.

Two layers, both applied before any text leaves the process:

* the data policy (``policies/data_policy.yaml``) says, per workflow, which record fields may enter a
  model at all, which enter only as placeholders, and drops everything else;
* the redactor replaces emails, phone numbers, Luhn-valid card numbers and checksum-valid IBANs in the
  remaining free text with placeholders such as ``[EMAIL_1]``, and the values of placeholder fields
  (the customer's name) wherever they recur, in any case and by their parts (``Jane`` of ``Jane Doe``).

The placeholder map never leaves the process, so outputs that need the real values (a drafted reply)
are restored locally with ``restore``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestration_pipelines.config_files import parse_yaml

DATA_POLICY_PATH = Path(__file__).parent / "policies" / "data_policy.yaml"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Grouped (``DE89 3704 ...``) or compact IBANs; the mod-97 check rejects look-alikes.
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?|[A-Z0-9]{11,30})\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# 9 to 15 digits with the usual separators: long enough to skip dates, short enough to skip cards;
# never the middle of a longer digit run (a Luhn-invalid card number is not a phone number either).
_PHONE = re.compile(r"(?<![\w+])(?<!\d[ .-])\+?\(?\d(?:[\s().-]{0,2}\d){8,14}(?![\w])(?![ .-]?\d)")
# Name particles are ordinary words in many languages ("la factura de"): never redacted on their own.
# fmt: off
_NAME_PARTICLES = frozenset({
    "al", "bin", "da", "das", "de", "del", "della", "den", "der", "di", "do", "dos", "du", "e", "el", "ibn",
    "la", "las", "le", "los", "st", "ten", "ter", "van", "von", "y",
})
# fmt: on


def _whole_words(value: str) -> re.Pattern[str]:
    """``value`` as whole words, any case, any whitespace between its words (``Jane's`` matches Jane)."""
    words = r"\s+".join(re.escape(word) for word in value.split())
    return re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)


def name_parts(value: str) -> list[str]:
    """The parts of a name a text may use alone: no initials, no particles; none for an e-mail address."""
    if "@" in value:
        return []
    parts = [part for part in re.split(r"[\s-]+", value) if len(part) > 1]
    parts = [part for part in parts if part.casefold() not in _NAME_PARTICLES]
    return parts if len(parts) > 1 else []


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    return 15 <= len(compact) <= 34 and int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


@dataclass
class Redaction:
    """Redacted values plus the placeholder map needed to restore them locally."""

    values: dict[str, str]
    placeholders: dict[str, str] = field(default_factory=dict, repr=False)

    def restore(self, text: str) -> str:
        return restore(text, self.placeholders)


def restore(text: str, placeholders: Mapping[str, str]) -> str:
    """Put the original values back into a model output, longest placeholder first (``_10`` before ``_1``)."""
    for placeholder in sorted(placeholders, key=len, reverse=True):
        text = text.replace(placeholder, placeholders[placeholder])
    return text


class Redactor:
    """Replaces PII with placeholders; within one redaction the same value always gets the same one."""

    def __init__(self) -> None:
        self._by_value: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    @property
    def placeholders(self) -> dict[str, str]:
        return {placeholder: value for value, placeholder in self._by_value.items()}

    def placeholder(self, kind: str, value: str) -> str:
        if value not in self._by_value:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            self._by_value[value] = f"[{kind}_{self._counts[kind]}]"
        return self._by_value[value]

    def redact_literal(self, text: str, kind: str, value: str) -> str:
        """Redact a configured field's value wherever it recurs in free text (a name in a ticket body),
        in any case, and each of its parts alone as ``[KIND_n_PART_i]`` (restored to that part)."""
        value = value.strip()
        if not value:
            return text
        whole = self.placeholder(kind, value)
        text = _whole_words(value).sub(lambda _: whole, text)
        for index, part in enumerate(name_parts(value), start=1):
            if part not in self._by_value:
                self._by_value[part] = f"{whole[:-1]}_PART_{index}]"
            text = _whole_words(part).sub(lambda _, part=part: self._by_value[part], text)
        return text

    def redact_text(self, text: str) -> str:
        text = _IBAN.sub(lambda m: self._checked(m, "IBAN", iban_valid(m.group())), text)
        text = _CARD.sub(lambda m: self._checked(m, "CARD", luhn_valid(re.sub(r"\D", "", m.group()))), text)
        text = _EMAIL.sub(lambda m: self.placeholder("EMAIL", m.group()), text)
        return _PHONE.sub(lambda m: self.placeholder("PHONE", m.group()), text)

    def _checked(self, match: re.Match[str], kind: str, valid: bool) -> str:
        return self.placeholder(kind, match.group()) if valid else match.group()


def redact_text(text: str) -> Redaction:
    """Redact one free text (no data policy): for callers that only have a string."""
    redactor = Redactor()
    redacted = redactor.redact_text(text)
    return Redaction({"text": redacted}, redactor.placeholders)


class PolicyViolation(ValueError):
    """A prompt asks for a field the data policy does not let into a model."""


@dataclass(frozen=True)
class WorkflowDataPolicy:
    workflow: str
    allowed_fields: frozenset[str]
    placeholder_fields: frozenset[str]

    @property
    def model_fields(self) -> frozenset[str]:
        return self.allowed_fields | self.placeholder_fields

    def check_fields(self, requested: set[str]) -> None:
        forbidden = requested - self.model_fields
        if forbidden:
            raise PolicyViolation(
                f"workflow {self.workflow!r} may not send fields {sorted(forbidden)} to a model (data policy)"
            )

    def prepare(self, record: Mapping[str, Any]) -> Redaction:
        """Drop fields outside the policy, hide placeholder fields entirely, redact PII in the rest."""
        redactor = Redactor()
        hidden = {
            name: str(record[name])
            for name in sorted(self.placeholder_fields)
            if record.get(name) is not None
        }
        values = {name: redactor.placeholder(name.upper(), value) for name, value in hidden.items()}
        for name in sorted(self.allowed_fields):
            if record.get(name) is None:
                continue
            text = str(record[name])
            for hidden_name, hidden_value in hidden.items():
                text = redactor.redact_literal(text, hidden_name.upper(), hidden_value)
            values[name] = redactor.redact_text(text)
        return Redaction(values, redactor.placeholders)


@dataclass(frozen=True)
class DataPolicy:
    version: str
    workflows: dict[str, WorkflowDataPolicy]

    def for_workflow(self, workflow: str) -> WorkflowDataPolicy:
        """Unknown workflows get an empty policy: nothing enters a model until someone allows it."""
        return self.workflows.get(workflow, WorkflowDataPolicy(workflow, frozenset(), frozenset()))


def load_data_policy(path: Path = DATA_POLICY_PATH) -> DataPolicy:
    document = parse_yaml(path.read_text())
    workflows = {
        name: WorkflowDataPolicy(
            workflow=name,
            allowed_fields=frozenset(spec.get("allowed_fields", [])),
            placeholder_fields=frozenset(spec.get("placeholder_fields", [])),
        )
        for name, spec in (document.get("workflows") or {}).items()
    }
    return DataPolicy(version=str(document["version"]), workflows=workflows)
