"""Reviewer tokens: shown once, stored hashed, refused once disabled; management is audited."""

import pytest

from orchestration_pipelines.audit import read_audit_log
from orchestration_pipelines.review import authenticate, create_reviewer, disable_reviewer, get_reviewer


def test_a_token_signs_in_its_reviewer_only_while_enabled(opstore):
    token = create_reviewer(opstore, "ana", "Ana Analyst", ["analyst", "senior_analyst"], actor="cli:ops")
    other = create_reviewer(opstore, "bob", "Bob", ["analyst"])
    assert len(token) >= 40 and token != other
    ana = authenticate(opstore, token)
    assert (ana.reviewer_id, ana.display_name, ana.roles) == (
        "ana",
        "Ana Analyst",
        {"analyst", "senior_analyst"},
    )
    assert authenticate(opstore, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert authenticate(opstore, "") is None and authenticate(opstore, None) is None
    with opstore.transaction() as cur:
        stored = cur.execute("SELECT * FROM reviewers").fetchall()
    assert not any(token in str(value) for row in stored for value in row)  # only its hash is kept
    disable_reviewer(opstore, "ana", actor="cli:ops")
    assert authenticate(opstore, token) is None and authenticate(opstore, other).reviewer_id == "bob"
    assert get_reviewer(opstore, "ana").disabled_at is not None
    with pytest.raises(LookupError, match="no enabled reviewer 'ana'"):
        disable_reviewer(opstore, "ana")
    events = [(e.event, e.subject, e.actor) for e in read_audit_log(opstore, "review")]
    assert events == [
        ("reviewer_created", "ana", "cli:ops"),
        ("reviewer_created", "bob", "admin"),
        ("reviewer_disabled", "ana", "cli:ops"),
    ]


@pytest.mark.parametrize(
    ("reviewer_id", "roles", "message"),
    [
        ("Ana Smith", ["analyst"], "reviewer id 'Ana Smith'"),
        ("../etc", ["analyst"], "reviewer id"),
        ("ana", ["cfo"], r"roles \['cfo'\] not in the policy"),
        ("ana", [], "not in the policy"),
    ],
)
def test_invalid_reviewers_are_refused(tmp_path, reviewer_id, roles, message):
    from orchestration_pipelines.opstore import OpStore

    store = OpStore(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    with pytest.raises(ValueError, match=message):
        create_reviewer(store, reviewer_id, "Someone", roles)


def test_a_reviewer_id_is_taken_once(opstore):
    create_reviewer(opstore, "ana", "Ana", ["analyst"])
    with pytest.raises(ValueError, match="exists already"):
        create_reviewer(opstore, "ana", "Another Ana", ["analyst"])
