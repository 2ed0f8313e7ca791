"""A batch's lifecycle rules on plain facts: finished only when published or quarantined, bounded retries."""

import json

from orchestration_pipelines.batch_lifecycle import (
    Attempt,
    BatchFacts,
    BatchState,
    RetryBound,
    batch_state,
    plan_batch,
    quarantined_contents,
    stranded_fingerprint,
    stranded_summary,
)
from orchestration_pipelines.landing import file_sha256, quarantine_file

SHA = "a" * 64
OTHER_SHA = "b" * 64
BOUND = RetryBound(max_attempts=3, backoff_seconds=60)


def failed(run_id: str, ended_at: float, will_be_retried: bool = False) -> Attempt:
    return Attempt(run_id, finished=True, ended_at=ended_at, will_be_retried=will_be_retried)


def facts(*attempts: Attempt, published: str | None = None, quarantined: bool = False) -> BatchFacts:
    return BatchFacts("day1.csv", SHA, published, quarantined, tuple(attempts))


def test_published_means_this_exact_content_was_published():
    assert batch_state(facts(failed("r1", 10), published=SHA)) is BatchState.PUBLISHED
    # The partition was published, but from an older file: the new content is still owed.
    assert batch_state(facts(published=OTHER_SHA)) is BatchState.NEW
    assert batch_state(facts(failed("r1", 10), published=OTHER_SHA)) is BatchState.STRANDED


def test_quarantined_and_in_flight_batches_are_not_launched():
    assert batch_state(facts(failed("r1", 10), quarantined=True)) is BatchState.QUARANTINED
    queued = facts(failed("r1", 10), Attempt("r2", finished=False))
    assert batch_state(queued) is BatchState.IN_FLIGHT
    # A crashed run that the instance's run retries will re-launch is still in flight ...
    assert batch_state(facts(failed("r1", 10, will_be_retried=True))) is BatchState.IN_FLIGHT
    # ... until its retry exists and has ended too.
    assert batch_state(facts(failed("r1", 10, will_be_retried=True), failed("r2", 20))) is BatchState.STRANDED
    for plan in (plan_batch(f, BOUND, now=10_000) for f in (queued, facts(quarantined=True))):
        assert not plan.launch


def test_stranded_batches_retry_with_growing_back_off_up_to_the_bound():
    assert plan_batch(facts(), BOUND, now=0).launch  # never tried: first attempt now

    once = plan_batch(facts(failed("r1", 100)), BOUND, now=159)
    assert (once.state, once.launch, once.retry_at) == (BatchState.STRANDED, False, 160)
    assert once.attempt_number == 2
    assert plan_batch(facts(failed("r1", 100)), BOUND, now=160).launch

    twice = plan_batch(facts(failed("r1", 100), failed("r2", 200)), BOUND, now=319)
    assert (twice.launch, twice.retry_at) == (False, 320)  # the back-off doubled

    spent = plan_batch(facts(failed("r1", 100), failed("r2", 200), failed("r3", 400)), BOUND, now=10**9)
    assert (spent.state, spent.launch, spent.exhausted) == (BatchState.STRANDED, False, True)


def test_quarantine_is_read_from_the_reason_files(tmp_path):
    landing, quarantine = tmp_path / "landing", tmp_path / "quarantine"
    landing.mkdir()
    bad = landing / "bad.csv"
    bad.write_text("transaction_id,amount\nX1,abc\n")
    sha = file_sha256(bad)
    quarantine_file(bad, quarantine, {"sha256": sha, "errors": []})
    again = landing / "bad.csv"
    again.write_text("transaction_id,amount\nX1,abc\n")
    quarantine_file(again, quarantine, {"sha256": sha, "errors": []})  # the same name twice
    (quarantine / "half-written.csv.reason.json").write_text("{")
    (quarantine / "other.csv.reason.json").write_text(json.dumps({"file": "other.csv"}))

    assert quarantined_contents(quarantine) == {("bad.csv", sha)}
    assert quarantined_contents(tmp_path / "missing") == set()


def test_stranded_report_lists_attempts_next_try_and_last_error():
    retrying = plan_batch(facts(failed("run-1-abcdefgh", 100)), BOUND, now=130)
    spent_facts = BatchFacts(
        "day2.csv", OTHER_SHA, None, False, tuple(failed(f"run-{i}", 100 * i) for i in (2, 3, 4))
    )
    spent = plan_batch(spent_facts, BOUND, now=130)
    published = plan_batch(facts(failed("r0", 1), published=SHA), BOUND, now=130)
    errors = {"run-1-abcdefgh": "scores: no promoted fraud model | train one", "run-4": "worker\nkilled"}

    passed, description, table = stranded_summary([retrying, spent, published], errors, now=130)
    assert not passed and "2 batch(es)" in description and "1 used all retries" in description
    lines = table.splitlines()
    assert lines[0] == "| batch | sha256 | attempts | next attempt | last run | last error |"
    assert lines[2].startswith("| day1.csv | aaaaaaaaaaaa | 1 | in 30 s | run-1-ab |")
    assert "no promoted fraud model \\| train one" in lines[2]  # escaped for markdown
    assert "| day2.csv |" in lines[3] and "| 3 | none left" in lines[3] and "worker killed" in lines[3]

    assert stranded_summary([published], {}, now=130)[0]


def test_a_new_report_is_due_when_the_stranded_set_changes_not_when_time_passes():
    one = [plan_batch(facts(failed("r1", 100)), BOUND, now=110)]
    assert stranded_fingerprint(one) == stranded_fingerprint([plan_batch(one[0].facts, BOUND, now=150)])
    two = [plan_batch(facts(failed("r1", 100), failed("r2", 200)), BOUND, now=210)]
    assert stranded_fingerprint(one) != stranded_fingerprint(two)
    assert stranded_fingerprint([]) == stranded_fingerprint([plan_batch(facts(published=SHA), BOUND, 0)])
