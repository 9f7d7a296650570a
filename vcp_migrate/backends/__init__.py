"""Kinds of database other than a local SQLite file. Each module here is imported only when its
kind of database is used, so a command on a local file never loads it.

``hrana``: a client for libSQL's server (sqld, Turso) over Hrana over HTTP; ``remote``: a
connection to such a server as the engine uses a local one; ``lease``: the run lock on a server;
``server``: the few named functions the commands call for a server (open, lock, back up, wait for
replicas); ``replicas``: what a replica must hold to count as caught up.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

SCHEMES = ("libsql", "http", "https")
_LOOKS_LIKE = ("libsql:", "http:", "https:", "ws:", "wss:")  # a URL, even mistyped: never taken for a file name
TOKEN_VARIABLE = "VCP_MIGRATE_AUTH_TOKEN"


def is_url(text: str) -> bool:
    """Whether ``text`` names a database on a server (``libsql://``, ``http://``, ``https://``), or
    was meant to (``libsql:host``, ``ws://``): then it is checked as a URL, never made a file."""
    return text.strip().lower().startswith(_LOOKS_LIKE)


class Server(NamedTuple):
    """A database on a libSQL server: its URL, the auth token (from the environment, never
    printed), the run lock's lease in seconds, and the replicas to wait for after a change."""

    url: str
    auth_token: str | None = None
    lease: float = 30.0
    replicas: tuple[str, ...] = ()
    replica_timeout: float = 60.0

    def __repr__(self) -> str:
        token = ", auth_token=<hidden>" if self.auth_token else ""
        return f"Server({self.url!r}{token}, lease={self.lease:g}, replicas={self.replicas!r})"


def stand_in(url: str) -> Path:
    """The local name a server's database goes by for its backups: ``<host>_<port>.db`` in the
    current folder, so they land in ``<host>_<port>.db.backups/`` (or ``backup_dir``), and a tag
    of the URL tells apart two servers behind one name."""
    rest = url.partition("://")[2].split("/", 1)
    name = re.sub(r"[^A-Za-z0-9.-]+", "_", rest[0]).strip("_") or "server"
    if len(rest) > 1 and rest[1].strip("/"):
        import hashlib  # only for a URL: a command on a local file never loads OpenSSL

        name += "_" + hashlib.sha256(rest[1].encode()).hexdigest()[:8]
    return Path(f"{name}.db")
