"""What a fleet run says about each database, and about all of them: one DatabaseResult per
database, a Summary, and the JSON report that ``--only-failed`` reads back."""

from __future__ import annotations

import fcntl
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import NamedTuple

from .. import lock, partial_files
from ..errors import UsageError, as_parameter, spelled

# What happened to one database. "failed" and "not-started" are what --only-failed reruns.
MIGRATED, UP_TO_DATE, ROLLED_BACK, NOTHING_TO_ROLL_BACK = "migrated", "up-to-date", "rolled-back", "nothing-to-undo"
CHECKED, FAILED, NOT_STARTED = "checked", "failed", "not-started"
RERUN = (FAILED, NOT_STARTED)


class DatabaseResult(NamedTuple):
    """One database of a fleet run.

    ``applied``: the versions committed (applied, or rolled back), also when a later one failed.
    ``error`` keeps the settings it names as tokens: ``message()`` spells them. ``kind`` says
    why it failed ("locked", "missing", "not-a-database", "migration", "files", "plan", ...).
    ``pending`` and ``problems`` are status's (states such as "modified", and "drifted" when its
    schema differs from most databases at its version); ``fingerprint`` is its schema's digest.
    ``warnings``: what the single command would have warned about on this database (a hard
    link, a migration changed since it was applied, a backup kept), in the order said.
    """

    path: str
    state: str
    version_before: int | None = None
    version_after: int | None = None
    applied: tuple[int, ...] = ()
    ms: float = 0.0
    error: str | None = None
    kind: str | None = None
    database_id: str | None = None
    pending: int = 0
    problems: tuple[str, ...] = ()
    fingerprint: str | None = None
    warnings: tuple[str, ...] = ()

    def message(self, spell: Callable[[str, str | None], str] = as_parameter) -> str | None:
        """The error, each setting it names spelled by ``spell`` (Python's spelling by default)."""
        return None if self.error is None else spelled(self.error, spell)

    def as_dict(self, spell: Callable[[str, str | None], str] = as_parameter) -> dict[str, object]:
        return {
            "path": self.path,
            "state": self.state,
            "version_before": self.version_before,
            "version_after": self.version_after,
            "applied": list(self.applied),
            "ms": round(self.ms, 3),
            "error": self.message(spell),
            "kind": self.kind,
            "database_id": self.database_id,
            "pending": self.pending,
            "problems": list(self.problems),
            "warnings": [spelled(warning, spell) for warning in self.warnings],
        }


class Summary(NamedTuple):
    """All databases of a run: how many in each state and at each version, the slowest five,
    the databases that failed, database ids shared by several files (clones of a template), and
    how many databases have warnings."""

    total: int
    states: dict[str, int]
    versions: dict[int, int]
    slowest: tuple[DatabaseResult, ...]
    failed: tuple[DatabaseResult, ...]
    shared_ids: dict[str, tuple[str, ...]]
    seconds: float
    warned: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.states.get(NOT_STARTED)

    def as_dict(self, spell: Callable[[str, str | None], str] = as_parameter) -> dict[str, object]:
        return {
            "databases": self.total,
            "states": self.states,
            "versions": {str(version): count for version, count in sorted(self.versions.items())},
            "slowest": [{"path": r.path, "ms": round(r.ms, 3)} for r in self.slowest],
            "failed": [{"path": r.path, "error": r.message(spell)} for r in self.failed],
            "shared_database_ids": {key: list(paths) for key, paths in self.shared_ids.items()},
            "seconds": round(self.seconds, 3),
            "with_warnings": self.warned,
        }


def summarize(results: Sequence[DatabaseResult], seconds: float) -> Summary:
    """The summary of ``results``, in their order."""
    by_id: defaultdict[str, list[str]] = defaultdict(list)
    for result in results:
        if result.database_id:
            by_id[result.database_id].append(result.path)
    versions = Counter(r.version_after for r in results if r.version_after is not None)
    return Summary(
        total=len(results),
        states=dict(Counter(result.state for result in results)),
        versions=dict(versions),
        slowest=tuple(sorted((r for r in results if r.state != NOT_STARTED), key=lambda r: -r.ms)[:5]),
        failed=tuple(r for r in results if r.state == FAILED),
        shared_ids={key: tuple(paths) for key, paths in by_id.items() if len(paths) > 1},
        seconds=seconds,
        warned=sum(1 for result in results if result.warnings),
    )


def mark_drifted(results: list[DatabaseResult]) -> list[DatabaseResult]:
    """Status: a database whose schema differs from most databases at its version is "drifted"."""
    usual: dict[int | None, str] = {}
    by_version: defaultdict[int | None, Counter[str]] = defaultdict(Counter)
    for result in results:
        if result.fingerprint is not None:
            by_version[result.version_after][result.fingerprint] += 1
    for version, counts in by_version.items():
        (most, count), *rest = counts.most_common()
        if not rest or count > rest[0][1]:  # a tie names no usual schema
            usual[version] = most
    return [
        r._replace(problems=(*r.problems, "drifted"))
        if r.fingerprint is not None and usual.get(r.version_after, r.fingerprint) != r.fingerprint
        else r
        for r in results
    ]


def write_report(
    path: Path,
    command: str,
    results: Iterable[DatabaseResult],
    summary: Summary,
    spell: Callable[[str, str | None], str] = as_parameter,
) -> None:
    """Write the JSON report whole or not at all (a new file renamed over the old one), each
    setting its errors name spelled by ``spell`` (Python's by default; the command line's
    options from it). The report it replaces keeps its permission bits; a new one gets the
    umask's, as any file the user writes (a temporary file's 0600 would hide it from others)."""
    document = {
        "command": command,
        "directory": os.getcwd(),  # what relative paths are relative to, for a rerun from elsewhere
        "summary": summary.as_dict(spell),
        "results": [result.as_dict(spell) for result in results],
    }
    folder = path.absolute().parent
    import json  # here: a worker process, which never writes a report, need not load them
    import stat

    try:
        found = os.lstat(path)
        mode = stat.S_IMODE(found.st_mode) if stat.S_ISREG(found.st_mode) else None
    except OSError:
        mode = None
    _remove_leftovers(folder, path.name)
    name, descriptor = _temporary(folder, path.name)
    try:
        if mode is not None:  # on our open handle: a read-only report is still written
            os.fchmod(descriptor, mode) if hasattr(os, "fchmod") else os.chmod(name, mode)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=1)
            out.write("\n")
            out.flush()
            # On disk before the rename: after a power loss an empty report is no report, which
            # --only-failed cannot read and --report refuses to replace.
            os.fsync(out.fileno())
            os.replace(name, path)  # still locked: never taken for a leftover (_remove_leftovers)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    partial_files.sync_folder(path)  # the rename too: a power loss could bring back the report it replaced


def _temporary(folder: Path, report: str) -> tuple[str, int]:
    """A new file to write the report named ``report`` into (O_EXCL: never a file or a link found
    there; 0666 less the umask), and its descriptor, which holds its flock until the file is
    renamed: a run that finds it meanwhile knows it is being written."""
    import secrets  # here: a worker process, which never writes a report, need not load it

    for _ in range(100):
        name = str(folder / f".{report}.{secrets.token_hex(4)}")
        descriptor = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
        with suppress(OSError):  # a file system without locks (ENOLCK): written unlocked, its age then guards it
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        if lock.same_file(name, descriptor):
            return name, descriptor
        os.close(descriptor)  # removed as a leftover between its creation and its lock: take another
    raise OSError(f"no temporary file could be kept in {folder} to write the report in")


def _remove_leftovers(folder: Path, report: str) -> None:
    """Remove the temporary files that runs killed while they wrote the report named ``report``
    (SIGKILL, a power loss) left in ``folder``: named as ``_temporary`` names them, regular files
    of this user with one link, empty or begun as a report, and not locked (a run writing one
    holds its flock until it renames it). Nothing else is touched; one that cannot go stays."""
    ours = re.compile(rf"\.{re.escape(report)}\.[0-9a-f]{{8}}")
    try:
        names = [name for name in os.listdir(folder) if ours.fullmatch(name)]
    except OSError:
        return
    for name in names:
        with suppress(OSError):
            _remove_if_abandoned(str(folder / name))


def _remove_if_abandoned(name: str) -> None:
    """Remove ``name`` if it is one of ``_remove_leftovers``'s (never through a link)."""
    import stat

    descriptor = os.open(name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    try:
        found = os.fstat(descriptor)
        if not stat.S_ISREG(found.st_mode) or found.st_nlink != 1 or found.st_uid != os.geteuid():
            return
        if not partial_files.untouched(found):
            return  # being written, perhaps unlocked (no locks there, or a release that took none)
        if os.read(descriptor, 1) not in (b"", b"{"):
            return
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a run is writing it
        if lock.same_file(name, descriptor):  # still the file locked, not one a run created since
            os.unlink(name)
    finally:
        os.close(descriptor)


def replaceable(path: str, targets: Sequence[str] = (), own: Sequence[Path] = ()) -> str | None:
    """Why a report cannot be written at ``path``, or None: it may name a new file in a folder
    that exists, or a report a fleet run wrote (a resumed run's report replaces its own), never
    anything else: one of the ``targets`` (there or not yet), something of vcp-migrate's own
    (``own``: the migrations folder, the schema file, the backups folder; a run lock), a link, a file that is not a
    report. Checked before the run, and again just before the report is written."""
    if not path or path.endswith(("/", os.sep)):
        return "it names no file: name one"
    absolute = os.path.abspath(path)
    folder = os.path.dirname(absolute)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        return "its folder does not exist or cannot be written: name a file in a folder that exists"
    key = file_key(absolute)
    if any(file_key(target) == key for target in targets):
        return "it is one of the databases of the run: name another file"
    real = os.path.realpath(absolute)
    if _beside_a_target(absolute, real, targets):
        return "it is where SQLite keeps a journal of a database of the run, and would be deleted: name another file"
    if os.path.basename(absolute).startswith(lock.PREFIX) or any(
        real == (mine := os.path.realpath(place)) or real.startswith(mine + os.sep) for place in own
    ):
        return (
            "it is vcp-migrate's own or inside it (the migrations folder, the schema file, the backups folder or"
            " a run lock): name another file"
        )
    if not os.path.lexists(absolute):
        return None
    if os.path.islink(absolute) or not os.path.isfile(absolute):
        return "it is a link or not a regular file, which the report would replace: name a new file"
    if not _is_report(Path(absolute)):
        return "it exists and is not a fleet run's report, which would be lost: name a new file or an earlier report"
    return None


_SQLITE_FILES = ("-journal", "-wal", "-shm")


def _beside_a_target(absolute: str, real: str, targets: Sequence[str]) -> bool:
    """Whether the report would be a file SQLite keeps beside a database of the run (its journal,
    its write-ahead log, its shared memory): the next open of that database would take it for a
    journal and delete it. Named from the path given or from the file it leads to, as SQLite may."""
    if not absolute.endswith(_SQLITE_FILES):
        return False
    for target in targets:
        spelled = os.path.abspath(target)
        found = os.path.realpath(spelled)
        if any(name in (spelled + suffix, found + suffix) for suffix in _SQLITE_FILES for name in (absolute, real)):
            return True
    return False


def file_key(path: str) -> tuple[int, int] | str:
    """What makes two paths one file: its device and inode (a symbolic link, or a hard link in
    another folder, is the same file), or for a path that names nothing, the path resolved."""
    try:
        status = os.stat(path)
    except (OSError, ValueError):
        return os.path.realpath(path)
    return (status.st_dev, status.st_ino)


_REPORT_MOST = 1 << 28  # 256 MB: a report of a million databases; a bigger file is read as none


def _is_report(path: Path) -> bool:
    """Whether ``path`` holds a report as a fleet run writes it (not merely JSON that looks like
    one), read only when it starts as one: a database given by mistake is never loaded whole."""
    import json

    try:
        if path.stat().st_size > _REPORT_MOST:
            return False
        with path.open("rb") as file:
            if file.read(1) != b"{":
                return False
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: arrays nested 100,000 deep
        return False
    return (
        isinstance(document, dict)
        and document.get("command") in _COMMANDS
        and isinstance(document.get("summary"), dict)
        and isinstance(document.get("results"), list)
    )


_COMMANDS = ("migrate", "migrate --dry-run", "rollback", "status", "validate")


def _document(report: Path) -> tuple[str, object, list[str]]:
    """A report's command, directory and the paths it says failed or were not started."""
    import json

    with report.open("rb") as file:  # a database given by mistake is never loaded whole, as in _is_report
        if os.fstat(file.fileno()).st_size > _REPORT_MOST or file.read(1) != b"{":
            raise ValueError("not a report")
        document = json.loads(b"{" + file.read())
    paths = [result["path"] for result in document["results"] if result["state"] in RERUN]
    found, base = document["command"], document.get("directory")
    if not all(isinstance(path, str) and path and "\0" not in path for path in paths):
        raise TypeError("a path that is not a file name")
    if not isinstance(found, str) or not (base is None or (isinstance(base, str) and "\0" not in base)):
        raise TypeError("a command or a directory that is not one")
    return found, base, paths


# The reports whose databases a command reruns: a real run never takes a rehearsal's (its
# "migrated" databases were not), a rehearsal takes either.
_RERUNS_OF = {
    "migrate": ("migrate",),
    "migrate --dry-run": ("migrate", "migrate --dry-run"),
    "rollback": ("rollback",),
}


def to_rerun(report: Path, command: str) -> list[str]:
    """The databases of a report that failed or were not started: what --only-failed runs again.

    Relative paths are taken from the folder the report was written in. Raises UsageError when
    ``command`` changes databases and the report is another command's (a migrate run's failures
    are not databases to roll back)."""
    where = str(report)
    try:
        found, base, paths = _document(report)
    except OSError as exc:
        raise UsageError(
            f"cannot be read: {exc.strerror}", where=where, hint="give a report a fleet run wrote"
        ) from exc
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise UsageError(
            "is not a report of a fleet run",
            where=where,
            hint="give the JSON report a fleet run wrote",
        ) from exc
    if command in _RERUNS_OF and found not in _RERUNS_OF[command]:
        raise UsageError(
            f"is the report of a fleet {found} run, not of fleet {command}",
            where=where,
            hint=f"give the report of a fleet {command} run; nothing was changed",
        )
    if isinstance(base, str) and os.path.abspath(base) != os.getcwd():
        paths = [os.path.join(base, path) for path in paths]
    return paths
