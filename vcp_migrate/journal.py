"""The rollback journal a migration's transaction relies on: which ``PRAGMA journal_mode`` a
migration may not set inside it, and what the refusal says.

SQLite accepts ``journal_mode = OFF`` or ``MEMORY`` inside a transaction that has not written
yet. From then on the transaction's writes reach the file with no journal on disk: with OFF a
failed statement or ROLLBACK leaves pages half-written (a corrupt database), with MEMORY a
killed process does. Every other mode keeps a journal on disk (WAL, or leaving WAL, fails inside
a transaction anyway), and no other pragma takes it away: ``synchronous = OFF`` only skips the
fsyncs (which a power loss needs, not a failure or a killed process), and ``locking_mode`` only
holds the lock longer; the connection is replaced after a migration that ran either.
"""

from __future__ import annotations

from .references import key

# SQLite's own order: a value selects the first mode it is a prefix of, case aside ('o' is OFF).
_MODES = ("delete", "persist", "off", "truncate", "memory", "wal")
_UNSAFE = frozenset({"off", "memory"})


def mode_set(value: str | None) -> str | None:
    """The journal mode ``PRAGMA journal_mode = value`` selects, as SQLite reads the value
    (without its quotes); None when it only asks (no value, or one that names no mode)."""
    if value is None:
        return None
    lowered = key(value)  # ASCII letters only, as SQLite compares
    return next((mode for mode in _MODES if mode.startswith(lowered)), None)


def unsafe(value: str | None) -> bool:
    """Whether ``PRAGMA journal_mode = value`` leaves a transaction without a journal on disk."""
    return mode_set(value) in _UNSAFE


def refused(pragma: str, value: str, schema: str | None) -> str | None:
    """What a migration that sets the journal mode ``value`` inside its transaction tries, and what
    to do instead, worded for ``connection.refused`` ("... tried to <this>"), when that mode leaves
    the transaction without a journal on disk; None for any other value."""
    mode = mode_set(value)
    if mode not in _UNSAFE:
        return None
    said = f"PRAGMA {'' if schema is None else schema + '.'}{pragma} = {value}"
    what, then = ("turn the rollback journal off", "a failed statement or a crash")
    if mode == "memory":
        what, then = "keep the rollback journal in memory", "a crash"
    return (
        f"{what} inside its transaction ({said}), so {then} would corrupt the"
        " database instead of leaving it as it was; if truly needed, put it in a migration of its own that"
        " runs outside a transaction ('-- migrate:up transaction:false' in SQL, transactional = False in"
        " Python), which is not atomic"
    )
