"""Turning a migration file into what runs: SQL sections or Python functions.

Loading always compiles the file's current bytes (the ones its checksum was taken from), read as
UTF-8, into a fresh module object: no bytecode cache, in sys.modules only while its top level runs
(``module_entry``), no clash between folders, no coding declaration to make the code run differ.
"""

from __future__ import annotations

import codecs
import contextlib
import inspect
import os
import re
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from . import module_entry, sqltext
from .database import Connection
from .errors import MigrationFileError
from .models import Direction, MigrationFile
from .sqltext import split_statements

_FIX = "fix the file"


class SqlStep(NamedTuple):
    """One section of a SQL migration, split into statements."""

    statements: tuple[str, ...]
    transactional: bool


class PythonStep(NamedTuple):
    """The up() or down() function of a Python migration: any callable (a function, a partial, a
    callable object), so it is named by ``name`` and its file ``where``, never by its attributes."""

    function: Callable[[Connection], object]
    transactional: bool
    name: str  # "up" or "down"
    where: str  # the file, as its code was compiled under
    folder: str | None = None  # where its module's top-level code moved the current folder: it runs there


Step = SqlStep | PythonStep


class LoadedMigration(NamedTuple):
    """A migration file made runnable; ``down`` is None when the file has none.

    ``allowed_hazards``: the hazard names the file acknowledges as reviewed (``-- vcp:allow`` in
    SQL, ``allow_hazards`` in Python), each one of ``hazards.KINDS``.
    """

    file: MigrationFile
    up: Step
    down: Step | None
    allowed_hazards: frozenset[str] = frozenset()

    def step(self, direction: Direction) -> Step:
        """The up or the down; planning refuses a rollback of a migration without down."""
        step = self.up if direction == "up" else self.down
        if step is None:
            raise MigrationFileError(
                "has no down, so it cannot be rolled back", where=str(self.file.path), hint="add one"
            )
        return step


def load(migration: MigrationFile) -> LoadedMigration:
    """Load a migration file. Raises MigrationFileError naming the file and the line, also when
    it acknowledges a hazard name that is not one of ``hazards.KINDS`` (a typo would otherwise
    silently keep a warning, or acknowledge another hazard)."""
    if migration.kind == "sql":
        return LoadedMigration(migration, *_load_sql(migration))
    module, folder = _exec_python(migration)
    transactional = getattr(module, "transactional", True)
    if not isinstance(transactional, bool):
        raise MigrationFileError(
            f"transactional must be True or False, not {transactional!r}", where=str(migration.path), hint=_FIX
        )
    up_function = _function(module, "up", migration)
    if up_function is None:
        raise MigrationFileError("has no up(connection) function", where=str(migration.path), hint=_FIX)
    down_function = _function(module, "down", migration)
    where = str(migration.path)
    return LoadedMigration(
        migration,
        PythonStep(up_function, transactional, "up", where, folder),
        PythonStep(down_function, transactional, "down", where, folder) if down_function else None,
        _python_allowances(module, str(migration.path)),
    )


def load_plan(
    plan: list[MigrationFile], direction: Direction, cache: dict[tuple[Path, str], LoadedMigration] | None = None
) -> list[LoadedMigration]:
    """Load every migration of a plan before the first one runs; with ``cache`` (a fleet), a file
    with the same path and checksum is loaded once for many databases."""
    done = "applied" if direction == "up" else "rolled back"
    loaded = []
    for file in plan:
        key = (file.path, file.checksum)
        migration = cache[key] if cache is not None and key in cache else load_or_refuse(file, f"; nothing was {done}")
        if cache is not None:
            cache[key] = migration
        if direction == "down" and migration.down is None:
            raise MigrationFileError(
                "has no down, so it cannot be rolled back", where=str(file.path), hint=f"add one; nothing was {done}"
            )
        loaded.append(migration)
    return loaded


def load_or_refuse(file: MigrationFile, then: str) -> LoadedMigration:
    """``load(file)``; a file that cannot be loaded is refused with ``then`` added to what its
    error says to do (``"; nothing was applied"``)."""
    try:
        return load(file)
    except MigrationFileError as exc:
        raise MigrationFileError(exc.what, where=exc.where, hint=f"{exc.hint}{then}") from exc.__cause__


def _load_sql(migration: MigrationFile) -> tuple[SqlStep, SqlStep | None, frozenset[str]]:
    where = str(migration.path)
    file = sqltext.read(source_text(migration), where)
    found = file.sections

    def step(direction: str) -> SqlStep:
        return SqlStep(tuple(split_statements(found[direction].text)), found[direction].transactional)

    allowed: set[str] = set()
    for allowance in file.allowances:
        _check_hazard_names(allowance.names, where, f"line {allowance.line}: '-- vcp:allow'")
        allowed.update(allowance.names)
    return step("up"), step("down") if "down" in found else None, frozenset(allowed)


# Module attributes that look meant as allow_hazards: read as nothing, they would drop the acknowledgement.
_NEAR_ALLOW = re.compile(r"_*(?:allow(?:ed|s)?_*hazards?|hazards?_*allow(?:ed|s)?)", re.IGNORECASE)
_ALLOW_EXAMPLE = "write allow_hazards = {'rebuild-parent'}"


def _python_allowances(module: types.ModuleType, where: str) -> frozenset[str]:
    near = sorted(name for name in vars(module) if name != "allow_hazards" and _NEAR_ALLOW.fullmatch(name))
    if near:
        raise MigrationFileError(
            f"defines {near[0]}, which is not read; hazards are acknowledged with allow_hazards",
            where=where,
            hint=_ALLOW_EXAMPLE,
        )
    allowed = vars(module).get("allow_hazards", frozenset())
    if not isinstance(allowed, (set, frozenset, list, tuple)):  # a str would be read letter by letter
        raise MigrationFileError(
            f"allow_hazards must be a set, list or tuple of hazard names, not a {type(allowed).__name__}",
            where=where,
            hint=_ALLOW_EXAMPLE,
        )
    if not all(isinstance(name, str) for name in allowed):
        raise MigrationFileError(
            "allow_hazards must hold hazard names (strings) only", where=where, hint=_ALLOW_EXAMPLE
        )
    _check_hazard_names(tuple(allowed), where, "allow_hazards")
    return frozenset(allowed)


def _check_hazard_names(names: tuple[str, ...], where: str, source: str) -> None:
    if not names:
        return
    from .hazards import KINDS  # only for a file that acknowledges hazards: the lint's patterns take 2 ms to load

    unknown = sorted({name for name in names if name not in KINDS})
    if unknown:
        which = "an unknown hazard" if len(unknown) == 1 else "unknown hazards"
        raise MigrationFileError(
            f"{source} names {which} {', '.join(map(repr, unknown))}; the known hazards are {', '.join(KINDS)}",
            where=where,
            hint="fix the name",
        )


def source_text(migration: MigrationFile) -> str:
    """The file's text as it runs: its bytes read as UTF-8 (a BOM dropped).

    A Python file is compiled from this text, never from its bytes: compile() would obey a
    coding declaration, so the code that ran could differ from the code shown. Raises
    MigrationFileError when the file is not UTF-8 or (Python) declares another encoding.
    """
    where = str(migration.path)
    try:
        text = migration.source.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MigrationFileError(f"is not UTF-8 text (byte {exc.start})", where=where, hint="save it as UTF-8") from exc
    declared = _declared_encoding(text) if migration.kind == "py" else None
    if declared is not None and not _is_utf8(declared):
        raise MigrationFileError(
            f"declares its encoding as {declared}, but migrations are read as UTF-8",
            where=where,
            hint="save it as UTF-8 and drop the declaration",
        )
    return text


# PEP 263: a comment on the first line, or on the second after a comment or blank first line.
_CODING = re.compile(r"[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.ASCII)
_BLANK_OR_COMMENT = re.compile(r"[ \t\f]*(?:#.*)?", re.ASCII)


def _declared_encoding(text: str) -> str | None:
    lines = re.split(r"\r\n|\r|\n", text, maxsplit=2)
    for index, line in enumerate(lines[:2]):
        found = _CODING.match(line)
        if found:
            return found[1]
        if index == 0 and not _BLANK_OR_COMMENT.fullmatch(line):
            return None
    return None


def _is_utf8(name: str) -> bool:
    normal = name.lower().replace("_", "-")
    if normal == "utf-8" or normal.startswith("utf-8-"):  # as Python's tokenizer reads it (utf-8-unix)
        return True
    try:
        return codecs.lookup(name).name in ("utf-8", "utf-8-sig")
    except LookupError:
        return False


class Folder:
    """The current folder migration code left, when it changed it (``keeping_cwd``)."""

    left: str | None = None


@contextmanager
def keeping_cwd(inside: str | None = None) -> Iterator[Folder]:
    """Migration code leaves the current folder as it found it: a chdir() of its own would move
    every relative path the run uses after it (the database, the schema file, the backups).
    ``inside``: the folder to run the code in (the one its module's load moved to)."""
    folder = Folder()
    try:
        before = os.getcwd()
    except OSError:  # gone already: nothing to keep
        yield folder
        return
    if inside is not None:
        with contextlib.suppress(OSError):
            os.chdir(inside)
    try:
        yield folder
    finally:
        try:
            now: str | None = os.getcwd()
        except OSError:
            now = None
        if now != before:
            folder.left = now
            with contextlib.suppress(OSError):
                os.chdir(before)


def _exec_python(migration: MigrationFile) -> tuple[types.ModuleType, str | None]:
    """The module, and the folder its top-level code moved to (its functions run there), if it moved."""
    where = str(migration.path)
    text = source_text(migration)
    if "\0" in text:  # compile() refuses it without a line (a ValueError before 3.11, then a SyntaxError)
        nul_line = len(re.split(r"\r\n|\r|\n", text[: text.index("\0")]))
        raise MigrationFileError(
            f"line {nul_line}: holds a NUL character, which Python source cannot contain", where=where, hint="remove it"
        )
    try:
        code = compile(text, where, "exec", dont_inherit=True)
    except SyntaxError as exc:
        line = f"line {exc.lineno}: " if exc.lineno else ""
        raise MigrationFileError(f"{line}{exc.msg}", where=where, hint=_FIX) from exc
    module = types.ModuleType(name := f"vcp_migration_{migration.version}_{migration.name}")
    module.__file__ = where
    try:
        with keeping_cwd() as folder, module_entry.registered(module, name):
            exec(code, module.__dict__)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit, GeneratorExit and the like fail the load too
        raise MigrationFileError(
            f"loading failed{at_line(exc.__traceback__, where)}: {describe(exc)}", where=where, hint=_FIX
        ) from exc
    return module, folder.left


def _function(module: types.ModuleType, name: str, migration: MigrationFile) -> Callable[[Connection], object] | None:
    function = getattr(module, name, None)
    if function is None:
        return None
    where = str(migration.path)
    if not callable(function):
        raise MigrationFileError(f"{name} is not a function", where=where, hint=f"define def {name}(connection):")
    kind = _never_runs(function)
    if kind is not None:
        use, drop = _USE[kind]
        raise MigrationFileError(
            f"{name} is {kind}: vcp-migrate calls it and does not {use} it, so its body would never run",
            where=where,
            hint=f"make it a plain function, without {drop}",
        )
    if not _takes_one_argument(function):
        raise MigrationFileError(
            f"{name}() must take exactly one argument, the connection",
            where=where,
            hint=f"define def {name}(connection):",
        )
    return function  # type: ignore[no-any-return]


# What vcp-migrate does not do to what calling each kind returns, and what the function must drop.
_USE = {
    "an async function": ("await", "async"),
    "a generator function": ("iterate", "yield"),
    "an async generator function": ("iterate", "async and yield"),
}


def _never_runs(function: Callable[..., object]) -> str | None:
    """What kind of function ``function`` is when calling it runs none of its body (it makes a
    coroutine or a generator), also behind a partial or as a callable object's ``__call__``."""
    for candidate in (function, type(function).__call__):
        if inspect.isasyncgenfunction(candidate):
            return "an async generator function"
        if inspect.iscoroutinefunction(candidate):
            return "an async function"
        if inspect.isgeneratorfunction(candidate):
            return "a generator function"
    return None


_VARARGS = inspect.CO_VARARGS


def _takes_one_argument(function: Callable[..., object]) -> bool:
    """Whether ``function`` can be called with one positional argument, as inspect.signature(function)
    .bind(None) says; a plain function is read from its code object (the same answer, a tenth of
    the time), anything else (decorated, partial, a callable object, a builtin) through inspect."""
    attributes = getattr(function, "__dict__", None)
    if type(function) is types.FunctionType and not attributes:  # no __wrapped__ nor __signature__
        code = function.__code__
        defaults = function.__defaults__ or ()
        keyword_only = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
        if any(name not in (function.__kwdefaults__ or {}) for name in keyword_only):
            return False
        return code.co_argcount - len(defaults) <= 1 and (code.co_argcount >= 1 or bool(code.co_flags & _VARARGS))
    try:
        inspect.signature(function).bind(None)
    except TypeError:
        return False
    except ValueError:  # builtins without a signature: let the call itself decide
        pass
    return True


def at_line(tb: TracebackType | None, filename: str) -> str:
    """' at line N' for the last frame of ``tb`` in ``filename``, or ''."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" at line {line}" if line else ""


def describe(exc: BaseException) -> str:
    """'TypeName: message' on one line; a message that cannot be read (its ``__str__`` raises,
    or returns no string) is said so, so the failure stays the migration's."""
    try:
        text = " ".join(str(exc).split())
    except KeyboardInterrupt:
        raise
    except BaseException:
        return f"{type(exc).__name__} (its message could not be read)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
