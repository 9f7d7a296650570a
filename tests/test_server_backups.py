"""Two runs that overlap on a real libSQL server, one stalled past its lease in the middle of its
backup: the other run's backup must not delete its copy under way."""

from __future__ import annotations

import os
import signal
import time

from .cluster import Cluster
from .conftest import Project
from .test_server import cluster, history, process

__all__ = ["cluster"]  # the fixture, used by name


def test_a_run_stalled_past_its_lease_mid_backup_keeps_its_copy(project: Project, cluster: Cluster) -> None:
    """The second run removed the stalled run's partial backup, taking it for one a killed run
    left; the stalled run then failed with 'backup ... failed: No such file or directory'."""
    url = cluster.primary.url
    rows = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)"
    project.sql("001_big.sql", f"CREATE TABLE big (x BLOB); {rows} INSERT INTO big SELECT randomblob(100000) FROM n;")
    project.sql("002_fills.sql", "CREATE TABLE fills (id INTEGER PRIMARY KEY);", "DROP TABLE fills;")
    first = process(project, url, "migrate", "--to", "1", "--no-backup")
    assert first.wait(60) == 0, first.communicate()
    backups = project.root / f"127.0.0.1_{cluster.primary.port}.db.backups"
    stalled = process(project, url, "migrate", "--lease", "2")
    try:
        deadline = time.monotonic() + 60
        while not (backups.is_dir() and any(name.endswith(".partial") for name in os.listdir(backups))):
            assert stalled.poll() is None and time.monotonic() < deadline, stalled.communicate()
            time.sleep(0.001)
        stalled.send_signal(signal.SIGSTOP)  # mid-copy, past its lease
        partial = next(name for name in os.listdir(backups) if name.endswith(".partial"))
        time.sleep(3)
        other = process(project, url, "migrate", "--lease", "2")
        out, err = other.communicate(timeout=60)
        assert other.returncode == 0, out + err
        assert partial in os.listdir(backups)  # left alone: its run holds it
    finally:
        stalled.send_signal(signal.SIGCONT)
    _, err = stalled.communicate(timeout=60)
    assert stalled.returncode == 1 and "backup into" not in err, err
    # Its plan is stale (the other run applied 2): its next statement failed on that, and it says why.
    assert "the run lock's lease (2 s) expired and another run took it" in err and "nothing more was applied" in err
    assert history(url) == [1, 2]  # the other run's, once
    assert not any(name.endswith(".partial") for name in os.listdir(backups))
