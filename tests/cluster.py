"""The real libSQL cluster the tests run against (``libsql_cluster``): a sqld primary and two
replicas (``tests/sqld.py``), started once per test session on free loopback ports and stopped at
its end, even when the session fails.

Skipped, saying why, only where the binary cannot run: a system other than Linux on x86-64, or
the test dependencies not installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .sqld import Cluster, Node, Unavailable, free_port, healthy
from .sqld import sqld_binary as _extract

__all__ = ["Cluster", "Node", "free_port", "healthy", "libsql_cluster", "sqld_binary"]


def sqld_binary(folder: Path) -> Path:
    """The sqld binary, extracted into ``folder``; the test is skipped, saying why, where it cannot run."""
    try:
        return _extract(folder)
    except Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def libsql_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A running primary and two replicas for the whole session; stopped at its end, even on failure."""
    binary = sqld_binary(tmp_path_factory.mktemp("sqld-binary"))
    cluster = Cluster(binary, tmp_path_factory.mktemp("libsql-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
