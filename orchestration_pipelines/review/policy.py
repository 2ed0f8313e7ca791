"""The review policy file: who may decide what, four-eyes rules, deadlines, timeouts, and effects.

Loaded once and validated as a whole, so a typo in a role or a decision fails at load time with the
place it occurs, never halfway through a reviewer's decision.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from orchestration_pipelines.config_files import parse_yaml

REVIEW_POLICY_PATH = Path(__file__).parent.parent / "policies" / "review.yaml"
DECISIONS = ("approve", "reject", "correct")  # the actions that close an item
ACTIONS = (*DECISIONS, "assign", "comment")
_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class PolicyError(ValueError):
    """The review policy file is malformed; the message names the place."""


@dataclass(frozen=True)
class FourEyesRule:
    """``decision`` needs ``approvers`` distinct people, one holding ``including_role``, when the item's
    context ``field`` is above ``above``."""

    decision: str
    field: str
    above: float
    approvers: int
    including_role: str | None

    def applies(self, context: dict[str, Any]) -> bool:
        value = context.get(self.field)
        return isinstance(value, int | float) and value > self.above


@dataclass(frozen=True)
class TimeoutAction:
    escalate_to: str | None = None
    deadline: timedelta | None = None  # the escalated item's new deadline
    apply: str | None = None  # or the decision applied by default


@dataclass(frozen=True)
class KindPolicy:
    kind: str
    workflow: str
    queue: str
    deadline: timedelta
    decisions: dict[str, frozenset[str]]  # role -> allowed actions
    label_field: str | None
    label_values: tuple[str, ...] | None  # None: any non-empty text
    four_eyes: tuple[FourEyesRule, ...]
    on_timeout: TimeoutAction
    actions: dict[str, tuple[str, ...]]  # decision -> external actions

    def allowed(self, roles: frozenset[str] | set[str], action: str) -> bool:
        return any(action in self.decisions.get(role, ()) for role in roles)

    def allowed_actions(self, roles: frozenset[str] | set[str]) -> set[str]:
        return {action for role in roles for action in self.decisions.get(role, ())}


@dataclass(frozen=True)
class ReviewPolicy:
    policy_id: str
    version: str
    roles: tuple[str, ...]
    kinds: dict[str, KindPolicy]

    def kind(self, kind: str) -> KindPolicy:
        if kind not in self.kinds:
            raise PolicyError(f"review policy {self.version} has no item kind {kind!r}")
        return self.kinds[kind]


def parse_duration(text: Any, where: str) -> timedelta:
    match = _DURATION.match(str(text).strip())
    if not match:
        raise PolicyError(f"{where}: {text!r} is not a duration like 30m, 4h or 2d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _require(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise PolicyError(f"{where}: missing '{key}'")
    return mapping[key]


def _role(role: Any, roles: tuple[str, ...], where: str) -> str:
    if role not in roles:
        raise PolicyError(f"{where}: unknown role {role!r} (roles: {', '.join(roles)})")
    return role


def _kind(kind: str, raw: dict, roles: tuple[str, ...]) -> KindPolicy:
    where = f"kinds.{kind}"
    decisions: dict[str, frozenset[str]] = {}
    for role, allowed in (_require(raw, "decisions", where) or {}).items():
        _role(role, roles, f"{where}.decisions")
        unknown = set(allowed or ()) - set(ACTIONS)
        if unknown:
            raise PolicyError(f"{where}.decisions.{role}: unknown decision(s) {sorted(unknown)}")
        decisions[role] = frozenset(allowed)
    correct = raw.get("correct") or {}
    if any("correct" in allowed for allowed in decisions.values()) and "label_field" not in correct:
        raise PolicyError(f"{where}.correct: a kind that can be corrected needs a label_field")
    four_eyes = []
    for i, rule in enumerate(raw.get("four_eyes") or ()):
        rule_where = f"{where}.four_eyes[{i}]"
        decision = _require(rule, "decision", rule_where)
        if decision not in DECISIONS:
            raise PolicyError(f"{rule_where}: {decision!r} is not one of {DECISIONS}")
        when = _require(rule, "when", rule_where)
        approvers = int(_require(rule, "approvers", rule_where))
        if approvers < 2:
            raise PolicyError(f"{rule_where}: four eyes means at least 2 approvers")
        including = rule.get("including_role")
        four_eyes.append(
            FourEyesRule(
                decision=decision,
                field=_require(when, "field", f"{rule_where}.when"),
                above=float(_require(when, "above", f"{rule_where}.when")),
                approvers=approvers,
                including_role=_role(including, roles, rule_where) if including else None,
            )
        )
    timeout_raw = _require(raw, "on_timeout", where)
    if ("escalate_to" in timeout_raw) == ("apply" in timeout_raw):
        raise PolicyError(f"{where}.on_timeout: give exactly one of escalate_to or apply")
    if "apply" in timeout_raw and timeout_raw["apply"] not in DECISIONS:
        raise PolicyError(f"{where}.on_timeout.apply: {timeout_raw['apply']!r} is not one of {DECISIONS}")
    if any(rule.decision == timeout_raw.get("apply") for rule in four_eyes):
        # Applied by the clock, the decision would skip the approvers its four-eyes rule requires.
        raise PolicyError(
            f"{where}.on_timeout.apply: {timeout_raw['apply']!r} needs four eyes here; a deadline cannot "
            "grant it (escalate_to a role instead)"
        )
    on_timeout = TimeoutAction(
        escalate_to=_role(timeout_raw["escalate_to"], roles, f"{where}.on_timeout")
        if "escalate_to" in timeout_raw
        else None,
        deadline=parse_duration(timeout_raw.get("deadline", raw["deadline"]), f"{where}.on_timeout"),
        apply=timeout_raw.get("apply"),
    )
    actions = {}
    for decision, effects in (_require(raw, "actions", where) or {}).items():
        if decision not in DECISIONS:
            raise PolicyError(f"{where}.actions: {decision!r} is not one of {DECISIONS}")
        if not all(isinstance(e, str) and re.fullmatch(r"[a-z][a-z0-9_]*", e) for e in effects or ()):
            raise PolicyError(f"{where}.actions.{decision}: action names are lower_snake_case words")
        actions[decision] = tuple(effects or ())
    values = correct.get("values")
    return KindPolicy(
        kind=kind,
        workflow=str(_require(raw, "workflow", where)),
        queue=_role(_require(raw, "queue", where), roles, f"{where}.queue"),
        deadline=parse_duration(_require(raw, "deadline", where), f"{where}.deadline"),
        decisions=decisions,
        label_field=correct.get("label_field"),
        label_values=tuple(str(v) for v in values) if values else None,
        four_eyes=tuple(four_eyes),
        on_timeout=on_timeout,
        actions=actions,
    )


def load_review_policy(path: str | Path | None = None) -> ReviewPolicy:
    """Read and validate the policy: ``path``, else ``OP_REVIEW_POLICY_PATH``, else the packaged file (the
    assets, the CLI and the web app all decide by the same one). Its version is the SHA-256 of the file,
    so any edit is a new version."""
    source = Path(path or os.environ.get("OP_REVIEW_POLICY_PATH") or REVIEW_POLICY_PATH)
    stat = source.stat()  # parsed once per content: every decision loads it
    return _parse_policy(source, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _parse_policy(source: Path, _mtime_ns: int, _size: int) -> ReviewPolicy:
    content = source.read_bytes()
    try:
        raw = parse_yaml(content)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from exc
    roles = tuple(_require(raw, "roles", str(source)))
    kinds_raw = _require(raw, "kinds", str(source))
    if not isinstance(kinds_raw, dict) or not kinds_raw:
        raise PolicyError(f"{source}: 'kinds' must map item kinds to their rules")
    try:
        kinds = {kind: _kind(kind, spec, roles) for kind, spec in kinds_raw.items()}
    except PolicyError as exc:
        raise PolicyError(f"{source}: {exc}") from exc
    policy_id = str(_require(raw, "policy_id", str(source)))
    return ReviewPolicy(
        policy_id=policy_id,
        version=f"{policy_id}@{hashlib.sha256(content).hexdigest()[:16]}",
        roles=roles,
        kinds=kinds,
    )
