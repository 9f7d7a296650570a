"""Scheduling a fleet run over worker processes, and when to stop.

Databases are handed out in small chunks, a few per worker at a time, so a failure stops the
scheduling quickly: the chunks not yet handed out are not started, and a worker skips the rest
of its chunk once told to stop. The databases in flight finish. A canary phase runs the first
databases alone and stops the run if any of them fails. Ctrl-C stops the run the same way, and
the results so far come with the Interrupted exception; a worker that dies (SIGKILL) fails the
databases it held and stops the run.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from . import worker
from .results import FAILED, DatabaseResult

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

    from ..loading import LoadedMigration

Report = Callable[[DatabaseResult], None]


class Policy(NamedTuple):
    """When to stop scheduling: after ``max_failures`` failures (None: never, keep going), and
    after a failure among the first ``canary`` databases, which run before all others."""

    max_failures: int | None = 1
    canary: int = 0


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: the databases in flight finished; ``results`` has one per path."""

    def __init__(self, results: list[DatabaseResult]) -> None:
        super().__init__()
        self.results = results


def run(
    job: worker.Job,
    paths: Sequence[str],
    jobs: int,
    policy: Policy,
    report: Report,
    loaded: dict[tuple[Path, str], LoadedMigration] | None = None,
) -> list[DatabaseResult]:
    """Run ``job`` on every database, in ``jobs`` worker processes (1: in this process); call
    ``report`` with each result as it comes. Returns one result per path, in the order given."""
    tally = _Tally(policy, len(paths), report)
    canary, rest = list(range(min(policy.canary, len(paths)))), list(range(min(policy.canary, len(paths)), len(paths)))
    try:
        if jobs <= 1:
            worker.start(job, None, loaded)
            for phase in (canary, rest):
                for index in phase:
                    tally.current = index
                    path = paths[index]
                    tally.record(index, worker.not_started(path) if tally.stopped else worker.run_one(path))
                tally.end_phase(is_canary=phase is canary)
            return tally.results(paths)
        context = multiprocessing.get_context("spawn")  # no fork: nothing of this process's state is shared
        tally.event = context.Event()
        shared = (tally.event, None, context.Value("i", 0), policy.max_failures)
        others = set(multiprocessing.active_children())
        with (
            _command_line_left_out(),
            ProcessPoolExecutor(jobs, mp_context=context, initializer=worker.start, initargs=(job, *shared)) as pool,
        ):
            try:
                for phase, size in ((canary, 1), (rest, _chunk_size(len(rest), jobs))):
                    _phase(pool, [phase[i : i + size] for i in range(0, len(phase), size)], paths, jobs, tally)
                    tally.end_phase(is_canary=phase is canary)
            finally:
                if tally.broken:  # the pool cannot stop its other workers (they ignore SIGTERM): they are ours to end
                    for child in set(multiprocessing.active_children()) - others:
                        child.kill()
        return tally.results(paths)
    except KeyboardInterrupt:
        if tally.current is not None and tally.current not in tally.by_index:  # in this process: rolled back
            tally.record(tally.current, worker.lost(paths[tally.current], "interrupted while it ran"))
        raise Interrupted(tally.results(paths)) from None


def _chunk_size(count: int, jobs: int) -> int:
    # Big enough that handing out costs little next to migrating, small enough that a stop is quick.
    return max(1, min(16, count // (jobs * 8)))


def _phase(pool: ProcessPoolExecutor, chunks: list[list[int]], paths: Sequence[str], jobs: int, tally: _Tally) -> None:
    waiting = deque(chunks)
    running: dict[Future[list[DatabaseResult]], list[int]] = {}
    with _signals_as_a_flag() as signalled:
        while waiting or running:
            while waiting and len(running) < jobs * 2 and not tally.stopped:
                chunk = waiting.popleft()
                with _blocked_signals():  # a worker the pool starts here is born deaf to them
                    running[pool.submit(worker.run_chunk, [paths[i] for i in chunk])] = chunk
            if not running:
                break
            done, _ = wait(running, timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                _collect(future, running.pop(future), paths, tally)
            if signalled.is_set() and not tally.stopped:
                tally.stop()  # nothing more is handed out, workers skip the rest of their chunks
    if signalled.is_set():
        raise KeyboardInterrupt


_POLL_SECONDS = 0.1
_COMMAND_LINE = {"re", "sys", "main"}  # all that the console script of vcp-migrate defines


@contextmanager
def _command_line_left_out() -> Iterator[None]:
    """Workers started while this is held do not run this process's main module first when it is
    vcp-migrate's own console script.

    A spawned process imports its parent's main module before anything else, so that what the
    module defines can be unpickled there. The console script defines nothing a worker needs, yet
    importing it loads click and every command: a tenth of a second of CPU per worker. So the
    module passes for ``vcp_migrate.__main__`` (as under ``python -m vcp_migrate``), which
    multiprocessing does not import again. Any other main module (a user's script) is left as it is.
    """
    main = sys.modules.get("__main__")
    names = {name for name in vars(main) if not name.startswith("__")} if main is not None else set()
    cli = sys.modules.get("vcp_migrate.cli")
    if (
        main is None
        or getattr(main, "__spec__", None) is not None
        or names != _COMMAND_LINE
        or cli is None
        or getattr(main, "main", None) is not getattr(cli, "main", None)
    ):
        yield
        return
    main.__spec__ = ModuleSpec("vcp_migrate.__main__", None)
    try:
        yield
    finally:
        main.__spec__ = None


_STOPPING = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def _blocked_signals() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back (not lost) while the pool may start a worker: a process
    inherits its blocked signals, so a worker never dies of one sent to the whole process group
    while it starts, before it ignores them itself; here they arrive once unblocked."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPPING)


@contextmanager
def _signals_as_a_flag() -> Iterator[threading.Event]:
    """Ctrl-C and SIGTERM set a flag the scheduling loop reads, instead of raising where they land.

    Raised as KeyboardInterrupt, a signal can strike while this thread holds a lock the pool's own
    thread needs (inside ``submit``), and the run then waits forever for results that never come.
    Only the main thread can set handlers; elsewhere signals are left as they are.
    """
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {number: signal.signal(number, lambda *_: flag.set()) for number in _STOPPING}
    try:
        yield flag
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _collect(future: Future[list[DatabaseResult]], chunk: list[int], paths: Sequence[str], tally: _Tally) -> None:
    try:
        results = future.result()
    except BrokenProcessPool:  # a worker was killed: what it held is unknown, and the pool cannot go on
        tally.broken = True
        tally.stop()
        results = [worker.lost(paths[i], "its worker process ended abruptly") for i in chunk]
    for index, result in zip(chunk, results, strict=True):
        if index not in tally.by_index:
            tally.record(index, result)


class _Tally:
    """The results so far, and whether the policy says stop."""

    def __init__(self, policy: Policy, total: int, report: Report) -> None:
        self.policy = policy
        self.report = report
        self.by_index: dict[int, DatabaseResult] = {}
        self.failures = 0
        self.stopped = False
        self.event: Event | None = None  # tells the workers to stop, as soon as the policy says so
        self.current: int | None = None  # the database being run in this process (jobs 1)
        self.broken = False  # a worker process died: the others are ended too

    def stop(self) -> None:
        self.stopped = True
        if self.event is not None:
            self.event.set()

    def record(self, index: int, result: DatabaseResult) -> None:
        self.report(result)
        self.by_index[index] = result  # after the report: a result Ctrl-C cut short is reported again
        if result.state == FAILED:
            self.failures += 1
            limit = self.policy.max_failures
            if limit is not None and self.failures >= limit:
                self.stop()

    def end_phase(self, *, is_canary: bool) -> None:
        if is_canary and self.failures:
            self.stop()

    def results(self, paths: Sequence[str]) -> list[DatabaseResult]:
        missing = [i for i in range(len(paths)) if i not in self.by_index]
        for index in missing:
            self.record(index, worker.not_started(paths[index]))
        return [self.by_index[i] for i in range(len(paths))]
