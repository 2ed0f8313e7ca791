"""The inbox's guards that need no review items: binding, the session secret, evidence paths."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from instance_helpers import REPO

from orchestration_pipelines.review.web.evidence import evidence_file
from orchestration_pipelines.review.web.security import (
    RemoteBindRefused,
    check_bind_host,
    csrf_token,
    csrf_valid,
    is_loopback,
    session_secret,
)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_hosts_are_served_without_a_flag(host):
    assert is_loopback(host)
    assert check_bind_host(host, allow_remote=False) == host


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "example.org", "localhost.evil"]
)
def test_any_other_host_is_refused_unless_explicitly_allowed(host):
    with pytest.raises(RemoteBindRefused, match="REVIEW_ALLOW_REMOTE"):
        check_bind_host(host, allow_remote=False)
    assert check_bind_host(host, allow_remote=True) == host


def test_an_empty_host_is_refused_even_with_the_flag():
    with pytest.raises(RemoteBindRefused):
        check_bind_host("", allow_remote=True)


def test_the_server_process_refuses_a_public_host_before_listening(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REVIEW_ALLOW_REMOTE"}
    env.update(REVIEW_HOST="0.0.0.0", OP_DATA_DIR=str(tmp_path), PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "orchestration_pipelines.review.web"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "not a loopback address" in done.stderr
    assert not (tmp_path / "review_session_secret").exists()  # refused before anything was set up


def test_session_secret_is_generated_once_private_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("REVIEW_SESSION_SECRET", raising=False)
    first = session_secret(tmp_path)
    assert len(first) >= 32
    assert stat.S_IMODE((tmp_path / "review_session_secret").stat().st_mode) == 0o600
    assert session_secret(tmp_path) == first


def test_session_secret_from_the_environment_must_be_long(tmp_path, monkeypatch):
    monkeypatch.setenv("REVIEW_SESSION_SECRET", "short")
    with pytest.raises(ValueError, match="at least 32"):
        session_secret(tmp_path)
    monkeypatch.setenv("REVIEW_SESSION_SECRET", "x" * 40)
    assert session_secret(tmp_path) == "x" * 40
    assert not (tmp_path / "review_session_secret").exists()


def test_an_emptied_secret_file_is_refused_not_used(tmp_path, monkeypatch):
    monkeypatch.delenv("REVIEW_SESSION_SECRET", raising=False)
    (tmp_path / "review_session_secret").write_text("\n")
    with pytest.raises(ValueError, match="no usable secret"):
        session_secret(tmp_path)


def test_csrf_token_is_stable_per_session_and_checked_exactly():
    session: dict = {}
    assert not csrf_valid(session, "anything")  # no token made yet: nothing matches
    token = csrf_token(session)
    assert csrf_token(session) == token
    assert csrf_valid(session, token)
    for wrong in (None, "", token[:-1], token + "x", ["list"]):
        assert not csrf_valid(session, wrong)
    assert csrf_token({}) != token


def test_evidence_is_served_only_from_inside_the_evidence_folder(tmp_path):
    evidence = tmp_path / "evidence"
    (evidence / "pump-7").mkdir(parents=True)
    plot = evidence / "pump-7" / "2026-11-01.png"
    plot.write_bytes(b"\x89PNG")
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"\x89PNG")
    (evidence / "escape.png").symlink_to(outside)
    (evidence / "notes.txt").write_text("x")

    assert evidence_file(evidence, "pump-7/2026-11-01.png") == plot.resolve()
    assert evidence_file(evidence, str(plot)) == plot.resolve()  # absolute, but inside
    for refused in (
        "../secret.png",
        "pump-7/../../secret.png",
        str(outside),
        "escape.png",  # a symbolic link pointing out
        "notes.txt",
        "pump-7/missing.png",
        "pump-7",
        "pump-7/2026-11-01.png\x00.png",
        "",
        None,
        42,
    ):
        assert evidence_file(evidence, refused) is None, refused
