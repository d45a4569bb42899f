"""Background jobs: long work (indexing, training, evaluation) on a thread, readable from anywhere.

A web UI reruns its script on every click, on whichever server thread serves the session; a job started
in one rerun must keep running, and its progress, log records, result or error must be readable in the
next. :func:`start` runs ``fn(job, *args, **kwargs)`` on a daemon thread and returns the :class:`Job`;
``fn`` reports through ``job.report`` (a :data:`~ragtune.progress.ProgressFn`), ``job.log`` (a record
dict, e.g. one Trainer log line) and polls ``job.should_stop()`` if it can stop early.

    >>> from ragtune.api import jobs
    >>> job = jobs.start(lambda job, n: sum(range(n)), 10, name="sum")
    >>> job.wait(5).result
    45

Every job is also kept in a process-wide registry (:func:`get`, :func:`find`, :func:`all_jobs`), so a
page can show "indexing is running" to every session, and a second indexing run can be refused while the
first one works. A :class:`Job` may be shared across threads: its fields are updated under its own lock
and read as snapshots.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ragtune.errors import RagtuneError

PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
# Log records kept per job: a 3-epoch LoRA run logging every step writes a few hundred; 5,000 bounds a
# pathological caller without losing a normal run's loss curve.
MAX_RECORDS = 5000
_KEEP_FINISHED = 50  # finished jobs the registry remembers (oldest dropped first)


class JobCancelled(RagtuneError):
    """Raised by work that noticed ``job.should_stop()``; the job ends as ``cancelled``, not ``failed``."""


@dataclass(frozen=True)
class Progress:
    """The latest progress call of one stage."""

    stage: str
    done: int
    total: int | None
    message: str = ""

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


class Job:
    """One background run. Read ``state``, ``progress``, ``stages``, ``records``, ``result``, ``error``."""

    thread_safe = True

    def __init__(self, job_id: int, name: str):
        self.id = job_id
        self.name = name
        self.state = PENDING
        self.result: Any = None
        self.error: str | None = None  # a readable one-line message, never a traceback
        self.traceback: str | None = None  # kept for debugging unexpected failures (not for users)
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self._stages: dict[str, Progress] = {}
        self._last: Progress | None = None
        self._records: deque[dict] = deque(maxlen=MAX_RECORDS)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()

    def __repr__(self) -> str:
        return f"Job(id={self.id}, name={self.name!r}, state={self.state!r})"

    # ---- what the work calls (from the worker thread)
    def report(self, stage: str, done: int, total: int | None = None, message: str = "") -> None:
        """A :data:`~ragtune.progress.ProgressFn`: remember the latest call per stage."""
        p = Progress(str(stage), int(done), None if total is None else int(total), str(message or ""))
        with self._lock:
            self._stages[p.stage] = p
            self._last = p

    def log(self, record: dict) -> None:
        """Keep a log record (a copy), e.g. ``{"step": 10, "loss": 1.9}``."""
        with self._lock:
            self._records.append(dict(record))

    def should_stop(self) -> bool:
        return self._stop.is_set()

    # ---- what a reader calls (from any thread)
    @property
    def progress(self) -> Progress | None:
        """The latest progress call of any stage (None before the first)."""
        with self._lock:
            return self._last

    @property
    def stages(self) -> dict[str, Progress]:
        with self._lock:
            return dict(self._stages)

    @property
    def records(self) -> list[dict]:
        with self._lock:
            return list(self._records)

    @property
    def running(self) -> bool:
        return self.state in (PENDING, RUNNING)

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    def cancel(self) -> None:
        """Ask the work to stop; it does at its next ``should_stop()`` poll (work that never polls runs on)."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> Job:
        """Block until the job finished (or ``timeout`` seconds passed); returns the job."""
        self._done.wait(timeout)
        return self

    def to_dict(self) -> dict:
        p = self.progress
        return {
            "id": self.id, "name": self.name, "state": self.state, "error": self.error,
            "progress": None if p is None else {"stage": p.stage, "done": p.done, "total": p.total,
                                                "message": p.message},
            "elapsed_s": round(self.elapsed, 3), "records": len(self.records),
        }

    # ---- the worker
    def _run(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self.started = time.time()
        self.state = RUNNING
        try:
            result = fn(self, *args, **kwargs)
        except JobCancelled:
            self.state = CANCELLED
        except RagtuneError as exc:
            self.error, self.state = str(exc), FAILED
        except Exception as exc:  # a bug or a library failure: readable line for users, traceback kept
            self.error = f"{type(exc).__name__}: {exc}"
            self.traceback = traceback.format_exc()
            self.state = FAILED
        else:
            self.result = result
            # Work that polled should_stop() may still return a partial result (an adapter saved early).
            self.state = CANCELLED if self._stop.is_set() else DONE
        finally:
            self.finished = time.time()
            self._done.set()


_registry: dict[int, Job] = {}
_registry_lock = threading.Lock()
_ids = itertools.count(1)


def start(fn: Callable[..., Any], *args: Any, name: str | None = None, exclusive: bool = False,
          **kwargs: Any) -> Job:
    """Run ``fn(job, *args, **kwargs)`` on a daemon thread and return its :class:`Job` at once.

    ``exclusive=True`` refuses to start while another job of the same ``name`` is running (one indexing
    run at a time): :class:`~ragtune.errors.RagtuneError` names the running job.
    """
    name = name or getattr(fn, "__name__", "job")
    with _registry_lock:
        if exclusive:
            busy = [j for j in _registry.values() if j.name == name and j.running]
            if busy:
                raise RagtuneError(f"a {name!r} job is already running (job {busy[0].id}); wait for it to finish")
        job = Job(next(_ids), name)
        _registry[job.id] = job
        _forget_old()
    thread = threading.Thread(target=job._run, args=(fn, args, kwargs), name=f"ragtune-job-{job.id}-{name}",
                              daemon=True)
    thread.start()
    return job


def get(job_id: int) -> Job | None:
    with _registry_lock:
        return _registry.get(job_id)


def find(name: str) -> Job | None:
    """The most recent job called ``name`` (running or finished), or None."""
    with _registry_lock:
        matching = [j for j in _registry.values() if j.name == name]
    return matching[-1] if matching else None


def all_jobs() -> list[Job]:
    with _registry_lock:
        return list(_registry.values())


def _forget_old() -> None:
    finished = [j for j in _registry.values() if j.state in FINISHED]
    for job in finished[: max(0, len(finished) - _KEEP_FINISHED)]:
        del _registry[job.id]
