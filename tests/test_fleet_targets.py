"""vcp-migrate fleet: which databases a run covers (paths, patterns, --targets-from), and what
it says of those it cannot use; the databases checked after each run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from .conftest import ENV_VARS, Project, console_script
from .test_fleet import _cli, _consistent, _digest, _tenants


def test_a_targets_from_that_cannot_be_read_is_named_once(project: Project) -> None:
    """It was "absent.txt: cannot be read: [Errno 2] No such file or directory: 'absent.txt'":
    the path twice, and Python's errno, where the report's own message said the reason alone."""
    paths = _tenants(project, 1, rows=1)
    (project.root / "lists").mkdir()
    for given, why in (("absent.txt", "No such file or directory"), ("lists", "Is a directory")):
        result = _cli(project, "migrate", "--targets-from", given)
        assert result.exit_code == 2
        assert result.stderr == f"Error: {given}: cannot be read: {why} (give a file with one path a line)\n"
    assert _consistent(paths[0]) == 1


def test_a_pattern_s_matches_leave_out_folders(project: Project) -> None:
    """'tenants/**' matched 'tenants/' and each folder below it: the first failed as "not a
    regular file" and, by default, the fleet started nothing after it."""
    paths = _tenants(project, 2, rows=1)
    below = project.root / "tenants" / "archive" / "old.db"
    below.parent.mkdir()
    shutil.copyfile(paths[0], below)
    result = _cli(project, "migrate", "tenants/**", "--no-dump")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("migrated ") == 3 and "not a regular file" not in result.output
    assert [_consistent(path) for path in (*paths, below)] == [2, 2, 2]
    (project.root / "empty" / "inside").mkdir(parents=True)
    refused = _cli(project, "migrate", "empty/*")
    assert refused.exit_code == 2
    assert "the pattern 'empty/*' matches no file but folders, backups and SQLite's own files" in refused.stderr
    named = _cli(project, "migrate", "empty/inside")  # a folder named, not matched, still fails as one
    assert named.exit_code == 1 and "empty/inside: is not a regular file" in named.stdout


def _interrupted_when(command: list[str], cwd: Path, ready: Callable[[int], bool]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` and send it Ctrl-C once ``ready(pid)``; its exit code and output."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not ready(process.pid) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _reading_standard_input(pid: int) -> bool:
    try:  # the system call it waits in: read (0 on x86-64, 63 on arm64) of file descriptor 0
        number, descriptor, *_ = Path(f"/proc/{pid}/syscall").read_text().split()
    except (OSError, ValueError):
        return False
    return number in ("0", "63") and int(descriptor, 16) == 0


def test_ctrl_c_before_any_database_started_says_nothing_was_changed(project: Project) -> None:
    """It said "interrupted (a transactional migration is rolled back whole; 'vcp-migrate status'
    shows what is applied)" while the list of databases was read, or the migrations loaded."""
    paths = _tenants(project, 2, rows=1)
    before = {path: _digest(path) for path in paths}
    said = "Error: interrupted before any database was started: nothing was changed\n"
    script = [str(console_script()), "fleet", "migrate", "--dir", str(project.dir)]
    listed = _interrupted_when([*script, "--targets-from", "-"], project.root, _reading_standard_input)
    assert (listed.returncode, listed.stderr, listed.stdout) == (130, said, "")
    marker = project.root / "loading"
    project.write("003_slow.py", f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(30)\n"
                  "def up(connection):\n    pass\n")  # fmt: skip
    loading = _interrupted_when([*script, *map(str, paths)], project.root, lambda pid: marker.exists())
    assert (loading.returncode, loading.stderr, loading.stdout) == (130, said, "")
    assert {path: _digest(path) for path in paths} == before


def test_a_binary_file_or_a_huge_line_given_as_the_list_is_refused_in_one_short_line(project: Project) -> None:
    """A database given to --targets-from by mistake was read whole and refused with its first
    "line" (tens of kB of escaped bytes, up to its first newline) in the message; a text file
    with no newline became one path as long as the file, printed three times, after a stat of it."""
    paths = _tenants(project, 1, rows=1)
    huge = project.root / "huge.txt"
    huge.write_text("a" * 100_000 + "\n")
    for listed, said in (
        (paths[0], f"Error: {paths[0]}: is not a list of paths: it holds a NUL character, which no path can"
                   " (a database?) (give a text file with one path a line)\n"),
        (huge, f"Error: a line of {huge} is 100,000 characters long, longer than any path: '{'a' * 60}'...'{'a' * 30}'"
               " (give a file with one path a line)\n"),
    ):  # fmt: skip
        result = _cli(project, "migrate", "--targets-from", str(listed))
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", said)
    assert _consistent(paths[0]) == 1
