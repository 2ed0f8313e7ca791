"""Evidence files (maintenance plots) named by review items, served only from the evidence folder."""

from __future__ import annotations

from pathlib import Path

EVIDENCE_SUFFIXES = {".png": "image/png"}


def evidence_file(evidence_dir: Path, name: object) -> Path | None:
    """The file ``name`` (relative to, or absolute inside, ``evidence_dir``) or None if it must not be served.

    Refused: anything but a non-empty string, a NUL, a suffix other than ``.png``, and any path whose
    resolved location (after ``..`` and symbolic links) is outside ``evidence_dir`` or is not a file.
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        return None
    candidate = Path(name)
    if candidate.suffix.lower() not in EVIDENCE_SUFFIXES:
        return None
    root = evidence_dir.resolve()
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root) or not resolved.is_file():
        return None
    return resolved
