"""The ticket contract: what a landed batch must hold, and what happens to every row that does not.

Every input row ends in exactly one place, keyed by its ticket id (or ``row-<n>`` when it has none,
lengthened when a real id reads the same): ``accepted`` (possibly with notes: a truncated body, an
unknown language, bytes that were not UTF-8) or ``rejected`` with a reason. Nothing is dropped
silently; ``final_states`` lists both for a check.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

TICKET_COLUMNS = ("ticket_id", "customer_id", "channel", "language", "subject", "body", "created_at")
OPTIONAL_COLUMNS = ("order_id",)
KNOWN_CHANNELS = frozenset({"email", "web_form", "chat", "app", "phone"})
# ISO 639-1 codes tickets are accepted in; anything else becomes "und" (undetermined) with a note.
KNOWN_LANGUAGES = frozenset(
    {"en", "de", "fr", "es", "it", "nl", "pt", "pl", "sv", "da", "fi", "no", "cs", "tr", "ro", "hu", "el"}
)
MAX_BODY_CHARS = 8000
UNDETERMINED_LANGUAGE = "und"
_REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class ContractResult:
    """``accepted``: contract columns + ``order_id`` + ``notes``; ``rejected``: ``ticket_id``, ``reason``."""

    accepted: pd.DataFrame
    rejected: pd.DataFrame

    def final_states(self) -> pd.DataFrame:
        """One row per input ticket id: ``accepted`` or ``rejected``, for the no-silent-drop check."""
        return pd.concat(
            [
                pd.DataFrame({"ticket_id": self.accepted["ticket_id"], "state": "accepted"}),
                pd.DataFrame({"ticket_id": self.rejected["ticket_id"], "state": "rejected"}),
            ],
            ignore_index=True,
        )


def read_ticket_file(path: Path) -> pd.DataFrame:
    """A landed CSV or Parquet file as strings. Bytes that are not UTF-8 are kept as surrogates so
    ``validate_tickets`` can note which tickets had them instead of failing the whole file."""
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    return pd.DataFrame(list(csv.DictReader(io.StringIO(text, newline=""))), dtype=object)


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="surrogateescape")
    return str(value)


def _clean_utf8(text: str) -> tuple[str, bool]:
    """Undecodable bytes (surrogates, see ``read_ticket_file``) become U+FFFD; True if there were any."""
    cleaned = text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
    return cleaned, cleaned != text or _REPLACEMENT in text


def validate_tickets(raw: pd.DataFrame, *, max_body_chars: int = MAX_BODY_CHARS) -> ContractResult:
    """Check a batch against the contract; every input row ends accepted or rejected, with reasons.

    Rows sharing a ticket id are one ticket: identical copies count once (noted); copies that differ,
    or of which one is invalid, reject the id, since nobody can tell which one is right.
    """
    missing = [c for c in TICKET_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"ticket file lacks columns {missing}; expected {list(TICKET_COLUMNS)}")
    by_id: dict[str, list[tuple[dict[str, str], list[str]]]] = {}
    rejected: list[dict[str, str]] = []
    without_id: list[int] = []
    for position, row in enumerate(raw.to_dict("records")):
        fields, notes = {}, []
        for column in (*TICKET_COLUMNS, *OPTIONAL_COLUMNS):
            value, had_bad_bytes = _clean_utf8(_text(row.get(column)).strip())
            if had_bad_bytes:
                notes.append(f"{column} had bytes that are not UTF-8 (replaced with U+FFFD)")
            fields[column] = value
        if fields["ticket_id"]:
            by_id.setdefault(fields["ticket_id"], []).append((fields, notes))
        else:
            without_id.append(position)
    for position in without_id:
        rejected.append({"ticket_id": _row_name(position, by_id), "reason": "missing ticket id"})
    accepted = []
    for ticket_id, copies in by_id.items():
        reasons = sorted({reason for fields, _ in copies if (reason := _rejection(fields))})
        if len({tuple(fields.values()) for fields, _ in copies}) > 1:
            reasons.insert(0, f"duplicate ticket id with different content ({len(copies)} rows)")
        if reasons:
            rejected.append({"ticket_id": ticket_id, "reason": "; ".join(reasons)})
            continue
        fields, notes = copies[0]
        if len(copies) > 1:
            notes = [*notes, f"{len(copies)} identical copies merged"]
        accepted.append(_normalised(fields, notes, max_body_chars))
    return ContractResult(
        pd.DataFrame(accepted, columns=[*TICKET_COLUMNS, *OPTIONAL_COLUMNS, "notes"]),
        pd.DataFrame(rejected, columns=["ticket_id", "reason"]),
    )


def _row_name(position: int, ticket_ids: Mapping[str, object]) -> str:
    """``row-<position>`` for a row without an id, made distinct from any real id that reads the same."""
    name = f"row-{position}"
    while name in ticket_ids:
        name += "-without-id"
    return name


def _rejection(fields: dict[str, str]) -> str:
    if not fields["customer_id"]:
        return "missing customer id: nobody to answer"
    if not fields["subject"] and not fields["body"]:
        return "empty ticket: no subject and no body"
    if pd.isna(pd.to_datetime(fields["created_at"], errors="coerce", utc=True)):
        return f"created_at {fields['created_at'][:40]!r} is not a timestamp"
    return ""


def _normalised(fields: dict[str, str], notes: list[str], max_body_chars: int) -> dict[str, object]:
    language = fields["language"].lower().split("-")[0].split("_")[0]
    if language not in KNOWN_LANGUAGES:
        notes.append(f"unknown language {fields['language'][:20]!r}: treated as undetermined")
        language = UNDETERMINED_LANGUAGE
    channel = fields["channel"].lower()
    if channel not in KNOWN_CHANNELS:
        notes.append(f"unknown channel {fields['channel'][:20]!r}: treated as 'other'")
        channel = "other"
    body = fields["body"]
    if not body:
        notes.append("empty body: classified on the subject alone")
    if len(body) > max_body_chars:
        notes.append(f"body truncated from {len(body)} to {max_body_chars} characters")
        body = body[:max_body_chars]
    created_at = pd.Timestamp(fields["created_at"])
    if created_at.tzinfo is None:
        notes.append("created_at had no time zone: read as UTC")
        created_at = created_at.tz_localize("UTC")
    return fields | {
        "language": language,
        "channel": channel,
        "body": body,
        "created_at": created_at.tz_convert("UTC"),
        "order_id": fields["order_id"] or None,
        "notes": "; ".join(notes),
    }
