"""Standard output whose reader went away (``vcp-migrate up | head -1``), or that cannot be written
(redirected to a file on a full disk, ``> /dev/full``): what is still written to it goes nowhere,
and the run goes on to its end, as it would have with the reader there.

Python ignores SIGPIPE, so a write to a pipe nobody reads raises BrokenPipeError wherever it
lands (and a full disk OSError): in a line about a migration (after its backup was taken, before its COMMIT), in a
migration's own print(), or in Rich, which then exits at once. ``guard()`` puts a stand-in in
front of ``sys.stdout`` that swallows it, points file descriptor 1 at the null device (so that
Python's flush at exit cannot fail either) and remembers that it happened (``closed()``), so the
command can say so once it is done. Standard output closed from the start (``>&-``: Python has
no ``sys.stdout`` at all) is noted at the first write, and its descriptor is held on the null
device meanwhile. Nothing here knows of click or Rich.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO


class _Guarded:
    """``sys.stdout``, but a closed reader is noted instead of raised."""

    def __init__(self, stream: TextIO, *, missing: bool = False) -> None:
        self.stream = stream
        self.missing = missing  # no standard output from the start (>&-): whatever is written is lost
        self.gone = False
        self.failure: str | None = None  # why a write failed, when not for a reader gone (ENOSPC, EIO)
        # Unbuffered (python -u, PYTHONUNBUFFERED=1, common in containers): the text layer writes
        # straight to the file, and when the reader leaves during a write, the write is cut short
        # without an error and the text layer drops the rest. Those writes are made here, whole,
        # a line at a time (print() writes its pieces one by one: a fleet's workers, sharing
        # standard error, would cut into each other's lines).
        self.pending = ""
        raw = getattr(stream, "buffer", None)
        self.raw = raw if isinstance(raw, io.FileIO) and os.linesep == "\n" else None
        if self.raw is not None:  # one encoder for the stream, as the text layer has (UTF-16: one BOM)
            self.encode = codecs.getincrementalencoder(stream.encoding)(stream.errors or "strict").encode

    def write(self, text: str) -> int:
        if self.missing:
            self.gone = self.gone or bool(text)
        elif not self.gone:
            try:
                if self.raw is None or not isinstance(text, str):
                    return self.stream.write(text)
                self.pending += text
                cut = self.pending.rfind("\n") + 1
                if cut:
                    lines, self.pending = self.pending[:cut], self.pending[cut:]
                    self.stream.flush()
                    self._write_whole(self.encode(lines))
            except OSError as exc:
                self._went(exc)
        return len(text)

    def _write_whole(self, data: bytes) -> None:
        assert self.raw is not None
        left = memoryview(data)
        while left:
            # A short count: the reader left, or a signal came; the next write says which (EPIPE).
            written = self.raw.write(left)
            if written is None:  # a descriptor left non-blocking by whoever started us: wait until it takes more
                import select

                select.select([], [self.raw], [])
                continue
            left = left[written:]

    def flush(self) -> None:
        if not (self.gone or self.missing):
            try:
                self.stream.flush()
                if self.pending:
                    rest, self.pending = self.pending, ""
                    self._write_whole(self.encode(rest))
            except OSError as exc:
                self._went(exc)

    def _went(self, exc: OSError) -> None:
        self.gone = True
        if not isinstance(exc, BrokenPipeError):
            self.failure = exc.strerror or type(exc).__name__
        with contextlib.suppress(OSError, ValueError):  # ValueError: no descriptor behind it (a test's runner)
            nowhere = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(nowhere, self.stream.fileno())
            finally:
                os.close(nowhere)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, buffer...: the stream's own
        return getattr(self.stream, name)


def guarded() -> bool:
    """Whether ``guard()`` was done: the command line is running (or a fleet's worker)."""
    return isinstance(sys.stdout, _Guarded)


@contextlib.contextmanager
def printing_aside(aside: bool = True) -> Iterator[None]:
    """With ``aside`` and under the command line (``guard()`` done): what runs inside, migration
    code, prints to standard error, whose reader gone fails nothing either; standard output is the
    command's results (JSON, a fleet's lines). From Python, nothing is redirected."""
    if not (aside and guarded()) or sys.stderr is None:
        yield
        return
    sys.stdout.flush()
    aside_stream = _Guarded(sys.stderr)
    try:
        with _descriptor_aside(), contextlib.redirect_stdout(aside_stream):  # type: ignore[arg-type,unused-ignore]
            yield
    finally:
        aside_stream.flush()  # a last line without its end


@contextlib.contextmanager
def _descriptor_aside() -> Iterator[None]:
    """File descriptor 1 onto 2 meanwhile: what a subprocess or os.write(1, ...) prints goes aside too."""
    try:
        kept = os.dup(1)
    except OSError:  # no standard output at all
        yield
        return
    try:
        with contextlib.suppress(OSError):  # no standard error: leave it
            os.dup2(2, 1)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.dup2(kept, 1)
        os.close(kept)


def guard(*, errors: bool = False) -> None:
    """Put the stand-in in front of ``sys.stdout`` (once: a second call keeps the first); with
    ``errors``, in front of ``sys.stderr`` too: a warning or an error line that cannot be written
    (``2>> log`` on a full disk) is lost, but stops nothing and changes no exit code. Standard
    input closed from the start (``0<&-``) is held on the null device too: a run reads nothing
    there, but the first file it opened (the run lock) took number 0, a migration's input. The
    three descriptors are held before anything is opened here, so none of them is the stand-in's."""
    for descriptor, stream, flags in (
        (0, sys.stdin, os.O_RDONLY),
        (1, sys.stdout, os.O_WRONLY),
        (2, sys.stderr, os.O_WRONLY),
    ):
        if stream is None:  # closed from the start
            _hold(descriptor, flags)
    if sys.stdout is None:  # a command that prints must not end silently with 0
        nowhere = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (unguard() closes it)
        sys.stdout = _Guarded(nowhere, missing=True)
    elif not isinstance(sys.stdout, _Guarded):
        sys.stdout = _Guarded(_any_text(sys.stdout))
    if errors and sys.stderr is not None and not isinstance(sys.stderr, _Guarded):
        sys.stderr = _Guarded(_any_text(sys.stderr))  # none: nothing can be said there, its descriptor is held


def _hold(descriptor: int, flags: int = os.O_WRONLY) -> None:
    """Put the null device at ``descriptor`` (0, 1, 2) when it is closed: else the next file opened
    (the run lock) takes its number, and what is written there (``os.write(1, ...)``, C code) goes
    into that file, while a program a migration runs starts with none (``echo`` fails: EBADF)."""
    try:
        os.fstat(descriptor)
    except OSError:
        with contextlib.suppress(OSError):
            nowhere = os.open(os.devnull, flags)
            if nowhere == descriptor:  # the lowest free number: made inheritable, as dup2 makes it
                os.set_inheritable(descriptor, True)
            else:
                os.dup2(nowhere, descriptor)
                os.close(nowhere)


def _any_text(stream: TextIO) -> TextIO:
    """``stream``, made to write any text: a name in a script its encoding lacks (Chinese on a
    Latin-1 locale) as an escape, never a UnicodeEncodeError wherever it lands; and ASCII, which
    only a misconfigured locale gives (LC_ALL=C without Python's UTF-8 mode), as UTF-8, as click
    writes there (it would otherwise write around this guard, to the stream's buffer)."""
    if not isinstance(stream, io.TextIOWrapper):
        return stream
    try:
        if codecs.lookup(stream.encoding).name == "ascii":
            stream.reconfigure(encoding="utf-8", errors="backslashreplace")
        elif not codecs.lookup(stream.encoding).name.startswith("utf"):
            stream.reconfigure(errors="backslashreplace")
    except (LookupError, ValueError, OSError):  # an encoding Python does not know, a closed stream
        pass
    return stream


def closed() -> bool:
    """Whether standard output's reader went away, or a write to it failed, since ``guard()``:
    flushes what is pending first."""
    if isinstance(sys.stdout, _Guarded):
        sys.stdout.flush()
        return sys.stdout.gone
    return False


def what_happened() -> str:
    """What ``closed()`` found, said for an error line: the reader gone, or why a write failed."""
    if isinstance(sys.stdout, _Guarded) and sys.stdout.missing:
        return "standard output was closed from the start, so nothing the command printed could be seen"
    failure = sys.stdout.failure if isinstance(sys.stdout, _Guarded) else None
    if failure is None:
        return "standard output was closed before all was printed"
    return f"standard output could not be written ({failure}), so some of what the command printed is lost"


def unguard() -> None:
    """Take the stand-in away again (the command is done; a test's runner swaps streams)."""
    if isinstance(sys.stdout, _Guarded) and sys.stdout.missing:
        sys.stdout.stream.close()
        sys.stdout = None  # as Python left it
    elif isinstance(sys.stdout, _Guarded):
        sys.stdout.flush()
        sys.stdout = sys.stdout.stream
    if isinstance(sys.stderr, _Guarded):
        sys.stderr.flush()
        sys.stderr = sys.stderr.stream
