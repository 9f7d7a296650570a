"""The one exception hierarchy of vcp-migrate.

Every message names what happened, where (file, statement, database) and what to do next,
so the CLI can print it as a single ``Error: ...`` line.

A message that names a setting writes it with ``setting()``, never as a command-line option or
a parameter: ``str(error)`` spells it as the Python parameter (``migrations_dir``,
``to=0``), and the CLI as its option (``--dir``, ``--to 0``) through ``error.message()``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

Parameter = Literal[
    "replicas",
    "replica_timeout",
    "lease",
    "db_path",
    "migrations_dir",
    "lock_timeout",
    "backup",
    "keep_backups",
    "create",
    "allow_existing",
    "target",
    "to",
    "steps",
    "allow_out_of_order",
    "atomic",
    "from_history",
    "path",
    "backup_dir",
    "jobs",
    "schema_file",
    "dump_schema",
]
"""The MigrationManager parameters a message may name (of the constructor, ``migrate``, ``rollback``
and ``from_config``); the CLI maps each to its option."""

# A NUL byte cannot occur in a path or in SQLite's messages, so a token is never mistaken for text.
_TOKEN = "\x00([a-z_]+)(?:=([^\x00]*))?\x00"  # compiled by re on first use: only a message needs it


def setting(parameter: Parameter, value: bool | int | None = None) -> str:
    """A setting to name in a message, with the value to give it if any (``to=0``,
    ``allow_out_of_order=True``); rendered when the message is, by ``VcpMigrateError.message``."""
    return f"\x00{parameter}\x00" if value is None else f"\x00{parameter}={value!r}\x00"


def as_token(parameter: str, value: str | None) -> str:
    """A setting left as its token: a message kept to be spelled later (a fleet's results)."""
    return f"\x00{parameter}\x00" if value is None else f"\x00{parameter}={value}\x00"


def as_parameter(parameter: str, value: str | None) -> str:
    """How the Python API spells a setting: ``migrations_dir``, ``to=0``, ``backup=False``."""
    return parameter if value is None else f"{parameter}={value}"


def spelled(text: str, spell: Callable[[str, str | None], str] = as_parameter) -> str:
    """``text`` with each ``setting()`` in it spelled by ``spell(parameter, value)``; the value
    is the text of the Python literal (``0``, ``True``) or None."""
    if "\x00" not in text:
        return text
    return re.sub(_TOKEN, lambda found: spell(found[1], found[2]), text)


class VcpMigrateError(Exception):
    """Base of every error vcp-migrate raises on purpose; ``exit_code`` is the CLI's exit code.

    ``what`` and ``hint`` keep the settings they name as tokens; ``str(error)`` spells them as
    Python parameters, ``message(spell)`` as the caller likes (the CLI: as options).
    """

    exit_code = 1

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.what = what
        self.where = where
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        return self.message()

    def __reduce__(self) -> tuple[object, ...]:
        # By its fields, not its message: unpickling calls the class with its args, which
        # MigrationFailed cannot take, so a multiprocessing worker's failure broke the pool.
        return (_rebuilt, (type(self), dict(self.__dict__)))

    def message(self, spell: Callable[[str, str | None], str] = as_parameter) -> str:
        """The whole message, each setting it names spelled by ``spell`` (see ``spelled``)."""
        text = f"{self.where}: {self.what}" if self.where else self.what
        return spelled(f"{text} ({self.hint})" if self.hint else text, spell)


def _rebuilt(kind: type[VcpMigrateError], fields: dict[str, object]) -> VcpMigrateError:
    """An error unpickled: its fields as they were, its args its message as before."""
    error = kind.__new__(kind)
    error.__dict__.update(fields)
    Exception.__init__(error, str(error))
    return error


class UsageError(VcpMigrateError):
    """An argument, setting or environment variable is wrong; nothing was read or changed."""

    exit_code = 2


class MigrationFileError(VcpMigrateError):
    """A file in the migrations directory cannot be used: its name, its content, or loading it."""


class PlanError(VcpMigrateError):
    """History and files disagree (modified, missing, out-of-order, unknown version): the command refuses."""


class MigrationFailed(VcpMigrateError):
    """A migration failed while running; its transaction was rolled back."""

    def __init__(
        self,
        what: str,
        *,
        where: str,
        version: int,
        hint: str,
        statement_index: int | None = None,
        statement: str | None = None,
    ) -> None:
        self.version = version
        self.statement_index = statement_index
        self.statement = statement
        super().__init__(what, where=where, hint=hint)


class DatabaseError(VcpMigrateError):
    """The database cannot be opened, read or written: missing, not a database, corrupt, read-only, locked."""


class LockTimeout(DatabaseError):
    """Another process held the database longer than the lock timeout."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a command at a point where what it left needs saying: ``said``
    says it. Still a KeyboardInterrupt, so a script that is interrupted stops."""

    def __init__(self, said: str) -> None:
        super().__init__(said)
        self.said = said
