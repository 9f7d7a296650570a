"""Scheduling a fleet run over worker processes, and when to stop.

Each worker process has its own pipe: small chunks of databases go to it, at most two ahead,
and one result per database comes back, in order, before the worker starts the next. A failure
stops the scheduling quickly: the chunks not yet handed out are not started, and a worker skips
the databases it was sent once told to stop. The databases in flight finish. A canary phase runs
the first databases alone and stops the run if any of them fails. Ctrl-C stops the run the same
way, and the results so far come with the Interrupted exception.

A worker that dies (SIGKILL) fails the database it held; those it was sent and had not started go
to the other workers, which go on undisturbed: nothing they share has a lock it could have held.
The failure counts as any other: by default the run stops, and the databases in flight finish.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .. import interrupts
from . import worker
from .results import FAILED, DatabaseResult

if TYPE_CHECKING:
    from ..loading import LoadedMigration

Report = Callable[[DatabaseResult], None]


class Policy(NamedTuple):
    """When to stop scheduling: after ``max_failures`` failures (None: never, keep going), and
    after a failure among the first ``canary`` databases, which run before all others."""

    max_failures: int | None = 1
    canary: int = 0


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: ``results`` has one per path. The databases in flight finished, unless
    ``stopped_in_flight``: Ctrl-C again stopped them too (their migrations in progress rolled back)."""

    def __init__(self, results: list[DatabaseResult], stopped_in_flight: bool = False) -> None:
        super().__init__()
        self.results = results
        self.stopped_in_flight = stopped_in_flight


class ReportRaised(Exception):
    """``report`` raised ``error`` on the result of ``path``: no database was started after it, those
    in flight finished (not reported to it); ``results`` has one per path."""

    def __init__(self, results: list[DatabaseResult], error: Exception, path: str) -> None:
        super().__init__(str(error))
        self.results, self.error, self.path = results, error, path


def run(
    job: worker.Job,
    paths: Sequence[str],
    jobs: int,
    policy: Policy,
    report: Report,
    loaded: dict[tuple[Path, str], LoadedMigration] | None = None,
) -> list[DatabaseResult]:
    """Run ``job`` on every database, in ``jobs`` worker processes (1: in this process); call
    ``report`` with each result as it comes. Returns one result per path, in the order given.
    Raises Interrupted (Ctrl-C, SIGTERM), and ReportRaised once the run stopped if ``report`` raised."""
    tally = _Tally(policy, len(paths), report)
    canary, rest = list(range(min(policy.canary, len(paths)))), list(range(min(policy.canary, len(paths)), len(paths)))
    try:
        if jobs <= 1:
            # The database in hand finishes, as in a worker; a second signal stops even its long statement.
            with _signals_as_a_flag() as signalled, interrupts.watching(stop_at=2):
                worker.start(job, loaded, stopping=signalled)
                for phase in (canary, rest):
                    for index in phase:
                        if signalled.is_set() and not tally.stopped:
                            tally.stop()
                        tally.current = index
                        path = paths[index]
                        tally.record(index, worker.not_started(path) if tally.stopped else worker.run_one(path))
                    tally.end_phase(is_canary=phase is canary)
            if signalled.is_set():
                raise KeyboardInterrupt
            return tally.finished(paths)
        context = multiprocessing.get_context("spawn")  # no fork: nothing of this process's state is shared
        count = min(jobs, len(paths))
        failures, busy = context.RawArray(ctypes.c_int, count), context.RawArray(ctypes.c_int, count)
        shared = worker.Shared(context.RawValue(ctypes.c_bool, False), failures, policy.max_failures, busy)
        tally.flag, tally.busy = shared.stop, shared.busy
        workers: list[_Worker] = []

        def start(slot: int) -> _Worker:
            # Before the signals are ignored: starting it unblocks them, and one that came while
            # ignored was lost (a Ctrl-C as the first worker started, the run then went on).
            resource_tracker.ensure_running()
            with _not_for_workers():
                return _start(context, job, shared, slot)

        with _signals_as_a_flag() as signalled:
            try:
                workers.extend(start(slot) for slot in range(count))
                for phase, size in ((canary, 1), (rest, _chunk_size(len(rest), jobs))):
                    chunks = [phase[i : i + size] for i in range(0, len(phase), size)]
                    _phase(workers, chunks, size, paths, tally, signalled, start)
                    tally.end_phase(is_canary=phase is canary)
            except KeyboardInterrupt:  # Ctrl-C again: the databases in hand are stopped too
                _stop_now(workers, shared, paths, tally)
                raise
            finally:
                _end(workers, shared)
        if signalled.is_set():
            raise KeyboardInterrupt
        return tally.finished(paths)
    except KeyboardInterrupt:
        if tally.current is not None and tally.current not in tally.by_index:  # in this process: rolled back
            tally.record(tally.current, worker.lost(paths[tally.current], "interrupted while it ran"))
            tally.stopped_in_flight = True
        raise Interrupted(tally.results(paths), tally.stopped_in_flight) from None


def _chunk_size(count: int, jobs: int) -> int:
    # Big enough that handing out costs little next to migrating, small enough that a stop is quick.
    return max(1, min(16, count // (jobs * 8)))


@dataclass
class _Worker:
    """One worker process, its slot in what the workers share, the fleet's end of its pipe, and
    the databases sent to it whose results have not come back yet, in the order it runs them."""

    process: SpawnProcess
    slot: int
    connection: Connection
    sent: deque[int] = field(default_factory=deque)


def _start(context: SpawnContext, job: worker.Job, shared: worker.Shared, slot: int) -> _Worker:
    # A worker started in the slot of one that died holding a database has none in hand: if it dies
    # before taking its first, the flag must not say otherwise (a database never touched failed).
    shared.busy[slot] = 0
    ours, theirs = context.Pipe()
    process = context.Process(target=worker.serve, args=(theirs, job, shared, slot), name=f"vcp-migrate-worker-{slot}")
    process.start()
    theirs.close()  # the worker's end is its own: when it dies, reading ours ends (EOFError)
    return _Worker(process, slot, ours)


def _end(workers: list[_Worker], shared: worker.Shared) -> None:
    """Let every worker finish the database in hand, skip any other it was sent, and exit."""
    shared.stop.value = True  # when this run was cut short by an error here: nothing more starts
    for one in workers:
        one.connection.close()  # its end then reads end-of-file: it exits
    for one in workers:
        one.process.join()


def _stop_now(workers: list[_Worker], shared: worker.Shared, paths: Sequence[str], tally: _Tally) -> None:
    """End every worker at once (Ctrl-C a second time): the database each had in hand is
    interrupted, its migration in progress rolled back when the database is next opened; the
    others it was sent were never started."""
    shared.stop.value = True
    for one in workers:
        if one.process.is_alive():
            one.process.kill()
    for one in workers:
        if _gone(one, paths, tally, "stopped by a second interrupt while it ran"):
            tally.stopped_in_flight = True
        one.sent.clear()


def _phase(
    workers: list[_Worker],
    chunks: list[list[int]],
    size: int,
    paths: Sequence[str],
    tally: _Tally,
    signalled: threading.Event,
    start: Callable[[int], _Worker],
) -> None:
    """Hand out ``chunks`` and take the results in, until all are back or the run stops. A worker
    that dies is replaced while there is work left and the run goes on: a crash that only some
    databases cause never leaves the others unrun (one that died with nothing in hand is
    replaced at most as many times as there are workers, so that one that cannot start ends it)."""
    waiting = deque(chunks)
    idle_deaths = 0

    def died(one: _Worker) -> None:
        nonlocal idle_deaths
        idle_deaths += not _died(one, waiting, paths, tally)
        if waiting and not tally.stopped and idle_deaths <= len(workers):
            workers[workers.index(one)] = start(one.slot)

    while True:
        if signalled.is_set() and not tally.stopped:
            tally.stop()  # nothing more is handed out, workers skip the databases they were sent
        for one in list(workers):
            wanted = bool(waiting) and not tally.stopped and not one.connection.closed and len(one.sent) <= size
            if wanted and not _send(one, waiting, paths):
                died(one)
        busy = {one.connection: one for one in workers if one.sent}
        if not busy:
            return  # all handed out and back, or stopped, or no worker left
        for ready in wait(list(busy), timeout=_POLL_SECONDS):
            one = busy[ready]  # type: ignore[index]
            try:
                result: DatabaseResult = one.connection.recv()
            except (EOFError, OSError):
                died(one)
            else:
                tally.record(one.sent.popleft(), result)


def _send(one: _Worker, waiting: deque[list[int]], paths: Sequence[str]) -> bool:
    """Send the next chunk to ``one``; False if it is dead (the chunk is back in ``waiting``)."""
    chunk = waiting.popleft()
    try:
        one.connection.send([paths[i] for i in chunk])
    except OSError:  # it died waiting for work
        waiting.appendleft(chunk)
        return False
    one.sent.extend(chunk)
    return True


def _died(one: _Worker, waiting: deque[list[int]], paths: Sequence[str], tally: _Tally) -> bool:
    """A worker process ended abruptly: ``_gone``, and the databases it had been sent and had not
    started go back to ``waiting``. Returns whether it had one in hand."""
    held = _gone(one, paths, tally, "its worker process ended abruptly")
    if one.sent:
        waiting.appendleft(list(one.sent))  # for another worker, if the run goes on
        one.sent.clear()
    return held


def _gone(one: _Worker, paths: Sequence[str], tally: _Tally, why: str) -> bool:
    """Settle what a worker that has ended held: the results it had sent and the run had not read
    yet are taken in; then, if it had a database in hand, that is the first one still unanswered
    (lost, for ``why``: its migration in progress rolls back); it had not started the others,
    which stay in ``one.sent``. Returns whether it had one in hand."""
    one.process.join()
    _drain(one, tally)
    one.connection.close()
    held = bool(one.sent) and tally.busy is not None and bool(tally.busy[one.slot])
    if held:
        index = one.sent.popleft()
        tally.record(index, worker.lost(paths[index], why))
    return held


def _drain(one: _Worker, tally: _Tally) -> None:
    """Take in the results a worker that is gone had sent and the run had not read yet."""
    try:
        while one.sent and not one.connection.closed and one.connection.poll():
            result: DatabaseResult = one.connection.recv()
            tally.record(one.sent.popleft(), result)
    except Exception:  # a result cut off as it died: it is the one in hand
        return


_POLL_SECONDS = 0.1
_STOPPING = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def _not_for_workers() -> Iterator[None]:
    """Ctrl-C and SIGTERM, while a worker is started: ignored by it from its first instruction,
    held back (not lost) here.

    A signal's being ignored survives exec, and Python keeps an ignored SIGINT ignored, so a
    worker never dies of one sent to the whole process group while it starts, before it ignores
    them itself (blocking them alone did not reach it: its start undoes the mask). Here they are
    blocked meanwhile, and arrive once the handlers are back. Only the main thread can set
    handlers: a run started from another thread (whose process's signals are not the run's to
    handle, see ``_signals_as_a_flag``) starts its workers as they are.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
    try:
        previous = {number: signal.signal(number, signal.SIG_IGN) for number in _STOPPING}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPPING)


@contextmanager
def _signals_as_a_flag() -> Iterator[threading.Event]:
    """Ctrl-C and SIGTERM set a flag the scheduling loop reads, instead of raising where they land.

    Raised as KeyboardInterrupt, a signal can strike in the middle of handing out or receiving
    (it once struck inside a process pool's own locking and left the run waiting forever). A
    second one is raised: the run then stops at once, those in flight too (a migration that
    hangs must not make the run impossible to stop). Only the main thread can set handlers;
    elsewhere signals are left as they are.
    """
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    stop = _Stopping(flag)
    previous = {number: signal.signal(number, stop) for number in _STOPPING}
    try:
        yield flag
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class _Tally:
    """The results so far, and whether the policy says stop."""

    def __init__(self, policy: Policy, total: int, report: Report) -> None:
        self.policy = policy
        self.report = report
        self.by_index: dict[int, DatabaseResult] = {}
        self.failures = 0
        self.stopped = False
        self.flag: ctypes.c_bool | None = None  # tells the workers to stop, as soon as the policy says so
        self.busy: ctypes.Array[ctypes.c_int] | None = None  # which workers have a database in hand
        self.stopped_in_flight = False  # Ctrl-C again stopped databases that were running
        self.current: int | None = None  # the database being run in this process (jobs 1)
        self.raised: tuple[Exception, str] | None = None  # what report raised, on which database

    def stop(self) -> None:
        self.stopped = True
        if self.flag is not None:
            self.flag.value = True

    def record(self, index: int, result: DatabaseResult) -> None:
        # Kept before it is reported: a second Ctrl-C that cuts the report of it short (its line
        # printed or not) must not lose a result that came back.
        self.by_index[index] = result
        if result.state == FAILED:
            self.failures += 1
            limit = self.policy.max_failures
            if limit is not None and self.failures >= limit:
                self.stop()
        if self.raised is None:  # once it raised, never again: its state is its own to trust
            try:
                self.report(result)
            except Exception as exc:  # stops the run as a failure would; raised once it ended
                self.raised = (exc, result.path)
                self.stop()

    def end_phase(self, *, is_canary: bool) -> None:
        if is_canary and self.failures:
            self.stop()

    def finished(self, paths: Sequence[str]) -> list[DatabaseResult]:
        results = self.results(paths)
        if self.raised is not None:
            raise ReportRaised(results, *self.raised) from self.raised[0]
        return results

    def results(self, paths: Sequence[str]) -> list[DatabaseResult]:
        missing = [i for i in range(len(paths)) if i not in self.by_index]
        for index in missing:
            self.record(index, worker.not_started(paths[index]))
        return [self.by_index[i] for i in range(len(paths))]


class _Stopping:
    """The handler of ``_signals_as_a_flag``: the first signal sets the flag, the second raises
    KeyboardInterrupt (once: what follows is the run stopping). Two that came during one long
    SQLite statement of the in-process run reach it as one call: ``interrupts`` counted them."""

    def __init__(self, flag: threading.Event) -> None:
        self.flag = flag
        self.raised = False

    def __call__(self, *_: object) -> None:
        if self.raised:
            return
        if self.flag.is_set() or interrupts.fired():  # the second: stop now, those in flight too
            self.flag.set()
            self.raised = True
            raise KeyboardInterrupt
        self.flag.set()
