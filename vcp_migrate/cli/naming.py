"""How the command line names the settings that errors mention: its options, not Python's parameters."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from ..errors import VcpMigrateError

# Each MigrationManager parameter a message may name (errors.Parameter), and its option.
OPTIONS = {
    "db_path": "--db",
    "migrations_dir": "--dir",
    "lock_timeout": "--lock-timeout",
    "backup": "--backup",
    "keep_backups": "--keep-backups",
    "create": "--create",
    "allow_existing": "--allow-existing",
    "target": "--to",
    "to": "--to",
    "steps": "--steps",
    "allow_out_of_order": "--allow-out-of-order",
    "atomic": "--atomic",
    "from_history": "--from-history",
    "path": "--config",  # of MigrationManager.from_config
    "replicas": "--wait-for-replica",
    "replica_timeout": "--replica-timeout",
    "lease": "--lease",
    "backup_dir": "--backup-dir",
    "jobs": "--jobs",
    "dump_schema": "--dump",
}
# Settings the command line takes from the [tool.vcp-migrate] table only, without an option.
TABLE_ONLY = {"schema_file": "schema_file (in [tool.vcp-migrate])"}
OPTIONS.update(TABLE_ONLY)


# How to set a setting with a command that has no option for it (status reads a server with
# each request waiting the lock timeout, but has no --lock-timeout).
ELSEWHERE = {"lock_timeout": "VCP_MIGRATE_LOCK_TIMEOUT (or lock_timeout in [tool.vcp-migrate])"}


def without_options(options: Iterable[str]) -> dict[str, str]:
    """How a command whose parameters are named ``options`` is told to set a setting it has no
    option for (``ELSEWHERE``): named as where it is set instead, as ``where_from`` names them."""
    return {parameter: how for parameter, how in ELSEWHERE.items() if parameter not in options}


def as_option(parameter: str, value: str | None) -> str:
    """The option for a setting: ``--dir``, ``--to 0``, a flag for True, its ``--no-`` form for False."""
    option = OPTIONS.get(parameter, parameter)
    if value == "True":
        return option
    if value == "False":
        return f"--no-{option.removeprefix('--')}"
    return option if value is None else f"{option} {value}"


def where_from(
    origins: Mapping[str, str], spell: Callable[[str, str | None], str] = as_option
) -> Callable[[str, str | None], str]:
    """``spell``, but a setting whose value came from the environment or the configuration file
    (``origins``, see ``config.ManagerSettings``) is named by where it came from: the user who
    set VCP_MIGRATE_DB never typed --db. A setting named with a value to give it (``--no-backup``)
    stays an option: giving it on the command line is a way to do what the message asks."""

    def spelled(parameter: str, value: str | None) -> str:
        return origins[parameter] if value is None and parameter in origins else spell(parameter, value)

    return spelled


def message(error: VcpMigrateError, origins: Mapping[str, str] | None = None) -> str:
    """The error's message as the command line says it, naming options, or where a value came from."""
    return error.message(where_from(origins or {}))
