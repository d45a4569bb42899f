"""Background jobs: results, readable errors, cancellation, one-at-a-time, progress read from other threads."""

from __future__ import annotations

import threading

import pytest

from ragtune.api import RagtuneError, jobs


def test_job_returns_its_result_and_records_progress_and_log():
    def work(job, n):
        for i in range(n):
            job.report("count", i + 1, n, f"at {i + 1}")
            job.log({"step": i + 1, "loss": 1.0 / (i + 1)})
        return n * 2

    job = jobs.start(work, 3, name="count").wait(5)
    assert job.state == "done" and job.result == 6
    assert (job.progress.stage, job.progress.done, job.progress.total, job.progress.fraction) == ("count", 3, 3, 1.0)
    assert [r["step"] for r in job.records] == [1, 2, 3]
    assert jobs.get(job.id) is job and jobs.find("count") is job


def test_a_library_error_becomes_a_one_line_message_and_a_bug_keeps_its_traceback():
    def user_mistake(job):
        raise RagtuneError("bad.jsonl:3: field 'id' is missing")

    def bug(job):
        return {}["missing"]

    failed = jobs.start(user_mistake, name="t").wait(5)
    assert failed.state == "failed" and failed.error == "bad.jsonl:3: field 'id' is missing"
    assert failed.traceback is None
    crashed = jobs.start(bug, name="t").wait(5)
    assert crashed.state == "failed" and crashed.error == "KeyError: 'missing'"
    assert "Traceback" in crashed.traceback and "Traceback" not in crashed.error


def test_cancel_stops_work_that_polls_should_stop():
    started = threading.Event()

    def loop(job):
        started.set()
        steps = 0
        while not job.should_stop():
            steps += 1
            job.report("loop", steps, None, "")
        return steps

    job = jobs.start(loop, name="loop")
    assert started.wait(5)
    job.cancel()
    assert job.wait(5).state == "cancelled" and job.result >= 0


def test_exclusive_jobs_run_one_at_a_time():
    gate = threading.Event()
    first = jobs.start(lambda job: gate.wait(5), name="index-x", exclusive=True)
    with pytest.raises(RagtuneError, match="already running"):
        jobs.start(lambda job: None, name="index-x", exclusive=True)
    gate.set()
    first.wait(5)
    assert jobs.start(lambda job: "again", name="index-x", exclusive=True).wait(5).result == "again"


def test_progress_is_readable_from_another_thread_while_the_job_runs():
    step = threading.Event()
    seen = threading.Event()

    def work(job):
        job.report("embed", 5, 10, "")
        step.set()
        seen.wait(5)
        return "ok"

    job = jobs.start(work, name="embed")
    assert step.wait(5)
    observed = []
    reader = threading.Thread(target=lambda: observed.append((job.state, job.progress.done, job.progress.total)))
    reader.start()
    reader.join(5)
    seen.set()
    assert observed == [("running", 5, 10)]
    assert job.wait(5).state == "done"
