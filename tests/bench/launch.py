"""Run one command and write its wall time and its own peak memory to a file.

    python -S launch.py REPORT COMMAND [ARG ...]

The benchmark starts every command through this small process instead of directly: a process
started by the benchmark itself (vfork and exec, as subprocess does) begins with the
benchmark's own peak resident memory (about 25 MB) counted as its peak, so nothing smaller could
be seen. Here the command is forked from a process of a few MB, and its peak is its own. The
command keeps this process's standard streams, working directory and environment. REPORT gets
one line: seconds, peak KB, exit code, and the CPU seconds (user and system) of the command and
of every process it waited for.
"""

import os
import sys
import time


def main() -> None:
    report, command = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    with open(report, "w") as file:
        cpu = usage.ru_utime + usage.ru_stime
        file.write(f"{seconds} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} {cpu}\n")


if __name__ == "__main__":
    main()
