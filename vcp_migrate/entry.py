"""The console script's entry point: the command line is imported inside a guard, so that Ctrl-C
while Python loads it (click and vcp-migrate's own modules, some tens of milliseconds at every
start) ends as any interrupt before a command begins, not with a traceback. It is imported only
when the script runs: a fleet's worker process imports its parent's main module (the script),
and so loads none of the command line."""

from __future__ import annotations

import sys

INTERRUPTED = "interrupted before anything was done; nothing was changed"  # the command line's word too


def main() -> None:
    """Run vcp-migrate's command line (exit 130 for Ctrl-C while it loads; one once it has ended
    changes nothing)."""
    try:
        from .cli import main as command_line
    except KeyboardInterrupt:
        sys.stderr.write(f"Error: {INTERRUPTED}\n")
        raise SystemExit(130) from None
    try:
        command_line()
    finally:
        import signal

        # The command has done its work, said so and chosen its exit code: a Ctrl-C from here to
        # the process's end (Python's own clean-up at exit) would print a traceback, or end the
        # process by the signal, so that a run that completed would look interrupted.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
