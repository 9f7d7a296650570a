"""vcp-migrate fleet --report and --only-failed: the report file itself, as the console script
writes it, and the databases checked after each run."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vcp_migrate.errors import UsageError

from .conftest import ENV_VARS, Project, Synced
from .test_fleet import _consistent, _digest, _fleet, _tenants


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_report_is_a_file_as_the_umask_makes_it_and_one_replaced_keeps_its_mode(project: Project) -> None:
    """It was 0600 whatever the umask (the temporary file it is renamed from), and an earlier
    report others could read became readable by its owner alone when a resumed run replaced it."""
    paths = _tenants(project, 3, rows=1, frozen=(1,))
    report = project.root / "run.json"
    first = _fleet(project, "migrate", "tenants/*.db", "--keep-going", "--jobs", "1", "--report", "run.json",
                   preexec_fn=lambda: os.umask(0o002))  # fmt: skip
    assert first.returncode == 1, first.stderr
    assert _mode(report) == 0o664
    assert [_consistent(path) for path in paths] == [2, 1, 2]
    os.chmod(report, 0o644)
    again = _fleet(project, "migrate", "--only-failed", "run.json", "--jobs", "1", "--report", "run.json",
                   preexec_fn=lambda: os.umask(0o077))  # fmt: skip
    assert again.returncode == 1, again.stderr  # the trigger still refuses the backfill
    assert _mode(report) == 0o644
    assert json.loads(report.read_text())["summary"]["states"] == {"failed": 1}
    assert [_consistent(path) for path in paths] == [2, 1, 2]
    assert sorted(p.name for p in project.root.iterdir() if p.name.startswith(".run.json")) == []


def test_a_report_named_dash_is_refused_not_written_as_a_file_named_dash(project: Project) -> None:
    """'--report -' (as '--targets-from -' reads standard input) wrote the report to a file named
    '-' in the current folder, and nothing to standard output."""
    paths = _tenants(project, 1, rows=1)
    refused = _fleet(project, "migrate", str(paths[0]), "--report", "-", "--jobs", "1")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("Error: Invalid value for --report: '-' is not standard output here")
    assert not (project.root / "-").exists() and _consistent(paths[0]) == 1
    named = _fleet(project, "migrate", str(paths[0]), "--report", "./-", "--jobs", "1")
    assert named.returncode == 0, named.stderr
    assert json.loads((project.root / "-").read_text())["summary"]["states"] == {"migrated": 1}
    assert _consistent(paths[0]) == 2


def test_only_failed_named_dash_is_refused_not_read_as_a_file_named_dash(project: Project) -> None:
    """'--only-failed -' (as '--targets-from -' reads standard input) read a file named '-' in the
    current folder, and failed saying that '-' does not exist."""
    paths = _tenants(project, 1, rows=1)
    refused = _fleet(project, "migrate", "--only-failed", "-", "--jobs", "1")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("Error: Invalid value for --only-failed: '-' is not standard input here")
    assert len(refused.stderr.strip().splitlines()) == 1 and _consistent(paths[0]) == 1
    assert _fleet(project, "migrate", str(paths[0]), "--report", "./-", "--jobs", "1").returncode == 0
    (project.root / "-").write_text((project.root / "-").read_text().replace('"migrated"', '"failed"'))
    named = _fleet(project, "migrate", "--only-failed", "./-", "--jobs", "1")
    assert named.returncode == 0 and str(paths[0]) in named.stdout, named.stdout + named.stderr


def test_only_failed_never_loads_a_file_whole_that_cannot_be_a_report(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database given to --only-failed by mistake was read whole into memory (a 400 MB file took
    800 MB) before it was found not to be a report; --report's own check reads one byte first."""
    from vcp_migrate.fleet import results, targets

    paths = _tenants(project, 2, rows=1)
    read: list[Path] = []
    real = Path.read_text

    def reading(self: Path, *args: object, **kwargs: object) -> str:
        read.append(self)
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", reading)
    with pytest.raises(UsageError, match="is not a report of a fleet run"):
        targets.choose([], None, str(paths[0]), "migrate")
    assert read == []
    report = project.root / "run.json"
    failed = {"command": "migrate", "summary": {}, "results": [{"path": str(paths[1]), "state": "failed"}]}
    report.write_text(json.dumps(failed))
    assert targets.choose([], None, str(report), "migrate") == [str(paths[1])]
    monkeypatch.setattr(results, "_REPORT_MOST", report.stat().st_size - 1)  # a bigger file is read as none
    with pytest.raises(UsageError, match="is not a report of a fleet run"):
        targets.choose([], None, str(report), "migrate")
    assert [_consistent(path) for path in paths] == [1, 1]


def test_the_report_names_settings_as_the_command_line_does(project: Project) -> None:
    """The JSON lines said "raise --lock-timeout" and the report, of the same run, "raise
    lock_timeout" (Python's parameter, which a command line user has not got): the report was
    spelled as for the Python API."""
    import subprocess

    paths = _tenants(project, 2, rows=1)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time\nc = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE')\nprint('held', flush=True)\ntime.sleep(60)\n", str(paths[0])],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        done = _fleet(project, "migrate", *map(str, paths), "--keep-going", "--lock-timeout", "0", "--jobs", "1",
                      "--json", "--report", "run.json")  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1, done.stderr
    line = json.loads(done.stdout.splitlines()[0])
    assert line["kind"] == "locked" and "--lock-timeout" in line["error"], line
    report = json.loads((project.root / "run.json").read_text())
    assert report["results"][0]["error"] == line["error"]
    assert report["summary"]["failed"] == [{"path": line["path"], "error": line["error"]}]
    assert "lock_timeout" not in (project.root / "run.json").read_text()
    assert _consistent(paths[0]) == 1
    assert _consistent(paths[1]) == 2


def test_a_report_a_pattern_would_match_is_no_target_of_the_next_run(project: Project) -> None:
    """'fleet migrate tenants/* --report tenants/run.json' worked once, then was refused (exit 2,
    the report "one of the databases of the run"): the pattern matched the report the first run
    had written. The report the run writes is left out of its patterns' matches."""
    paths = _tenants(project, 2, rows=1)
    first = _fleet(project, "migrate", "tenants/*", "--jobs", "1", "--report", "tenants/run.json")
    assert first.returncode == 0, first.stderr
    later = project.root / "tenants" / "later.db"
    shutil.copyfile(project.root / "template.db", later)
    again = _fleet(project, "migrate", "tenants/*", "--jobs", "1", "--report", "tenants/run.json")
    assert again.returncode == 0, again.stderr
    report = json.loads((project.root / "tenants" / "run.json").read_text())
    assert {(r["path"], r["state"]) for r in report["results"]} == {
        ("tenants/later.db", "migrated"), (f"tenants/{paths[0].name}", "up-to-date"),
        (f"tenants/{paths[1].name}", "up-to-date"),
    }  # fmt: skip
    assert [_consistent(path) for path in (*paths, later)] == [2, 2, 2]
    named = _fleet(project, "status", "tenants/run.json", "--report", "tenants/run.json")  # named: still refused
    assert named.returncode == 2 and "it is one of the databases of the run" in named.stderr


def test_a_report_and_then_its_folder_are_synced_to_disk(tmp_path: Path, synced: Synced) -> None:
    """The report was synced before its rename, but not its folder after it: a power loss could
    bring back the report it replaced, which --only-failed would then rerun from."""
    from vcp_migrate.fleet import results

    report = tmp_path / "run.json"
    summary = results.Summary(total=0, states={}, versions={}, slowest=(), failed=(), shared_ids={}, seconds=0.0)
    results.write_report(report, "migrate", [], summary)
    assert json.loads(report.read_text())["command"] == "migrate"
    written, folder = synced.order(report, tmp_path)
    assert folder > written


def test_a_report_is_written_where_nothing_can_be_locked_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where nothing can be locked (flock: ENOLCK), the report's temporary file was created, its
    lock failed, and the run ended with an error and the file left: one more each time."""
    from vcp_migrate.fleet import results

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    report = tmp_path / "run.json"
    summary = results.Summary(total=0, states={}, versions={}, slowest=(), failed=(), shared_ids={}, seconds=0.0)
    for _ in range(2):
        results.write_report(report, "migrate", [], summary)
    assert json.loads(report.read_text())["command"] == "migrate"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run.json"]


# The command line, SIGKILLed as it renames its report into place: its temporary file fully written.
KILLED_WRITING = """\
import os, signal, sys
def replace(source, target, *args, **kwargs):
    if os.path.basename(target) == "run.json":
        os.kill(os.getpid(), signal.SIGKILL)
    return real(source, target, *args, **kwargs)
real, os.replace = os.replace, replace
from vcp_migrate.entry import main
sys.argv = ["vcp-migrate", *sys.argv[1:]]
main()
"""


def _an_hour_old(path: Path) -> None:
    os.utime(path, (time.time() - 3600, time.time() - 3600))


def test_the_temporary_files_of_runs_killed_writing_a_report_are_removed_by_the_next_and_nothing_else(
    project: Project,
) -> None:
    """A run killed as it wrote its report left the temporary file beside it, and every later
    run left it there: one more a kill, for good."""
    paths = _tenants(project, 2, rows=1)
    folder = project.root
    (folder / "killed.py").write_text(KILLED_WRITING)
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    left: list[list[str]] = []
    for _ in range(2):  # the second run removes what the first left, and leaves its own
        killed = subprocess.run(
            [sys.executable, "killed.py", "fleet", "migrate", "tenants/*.db", "--dir", str(project.dir), "--jobs", "1",
             "--report", "run.json", "--no-dump"],
            cwd=folder, capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        left.append(sorted(path.name for path in folder.iterdir() if path.name.startswith(".run.json.")))
        _an_hour_old(folder / left[-1][0])  # younger than a minute, it may be a run's still being written
    assert all(len(names) == 1 and re.fullmatch(r"\.run\.json\.[0-9a-f]{8}", names[0]) for names in left), left
    assert left[0] != left[1] and json.loads((folder / left[1][0]).read_text())["command"] == "migrate"
    assert not (folder / "run.json").exists() and [_consistent(path) for path in paths] == [2, 2]
    # Named as ours, or nearly, and not ours: each stays as it is.
    kept = folder / "kept.json"
    kept.write_text('{"mine": true}\n')
    planted = {
        ".run.json.0badcafe": "my notes\n",  # not begun as a report
        ".run.json.1234abcd.bak": "{",  # another name
        ".other.json.12345678": '{\n "command": "migrate"',  # another report's
        "run.json.12345678": "{",
        ".run.json.00c0ffee": "{",  # a run writing it holds its lock
        ".run.json.abcdef12": "{",  # linked from elsewhere too
    }
    for name, text in planted.items():
        (folder / name).write_text(text)
        _an_hour_old(folder / name)
    young = folder / ".run.json.5eed5eed"  # begun a moment ago, by a run that may take no lock: it stays
    young.write_text("{")
    planted[young.name] = "{"
    os.link(folder / ".run.json.abcdef12", folder / "elsewhere")
    (folder / ".run.json.feedf00d").symlink_to(kept)  # a link, to JSON: never followed, nor removed
    held = os.open(folder / ".run.json.00c0ffee", os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = _fleet(project, "status", "tenants/*.db", "--report", "run.json")
    finally:
        os.close(held)
    assert result.returncode == 0, result.stderr
    assert json.loads((folder / "run.json").read_text())["summary"]["states"] == {"checked": 2}
    assert not (folder / left[1][0]).exists()
    assert {name: (folder / name).read_text() for name in planted} == planted
    assert os.readlink(folder / ".run.json.feedf00d") == str(kept) and kept.read_text() == '{"mine": true}\n'
    assert sorted(path.name for path in folder.iterdir() if path.name.startswith(".run.json.")) == sorted(
        [".run.json.0badcafe", ".run.json.1234abcd.bak", ".run.json.00c0ffee", ".run.json.abcdef12",
         ".run.json.feedf00d", ".run.json.5eed5eed"]
    )  # fmt: skip
    digests = {path: _digest(path) for path in paths}
    again = _fleet(project, "status", "tenants/*.db", "--report", "run.json")  # its writer gone: a leftover
    assert again.returncode == 0 and {path: _digest(path) for path in paths} == digests
    del planted[".run.json.00c0ffee"]
    assert {name: (folder / name).read_text() for name in planted} == planted
    assert not (folder / ".run.json.00c0ffee").exists()
