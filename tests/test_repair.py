"""repair: show how applied files changed and record their new checksums once confirmed."""

from __future__ import annotations

import os
import subprocess

import pytest

from vcp_migrate import PlanError

from .conftest import Project, console_script, three


def test_repair_shows_the_diff_and_records_after_confirmation(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    three(project)
    project.manager().migrate()
    project.sql("002_b.sql", "CREATE TABLE b(x); -- reviewed: comment only", "DROP TABLE b;")
    before = project.digest()
    for piped in (None, "y\n"):  # no terminal to answer, and input that is not one: nothing is recorded
        declined = project.cli("repair", input=piped)
        assert declined.exit_code == 1
        assert declined.stderr.strip() == (
            f"Error: recording the new checksum of {project.dir / '002_b.sql'} accepts an edit to an applied"
            " migration, and there is no terminal to ask (review the diff shown above and pass --yes; nothing was"
            " recorded)"
        )
        assert "-CREATE TABLE b(x);" in declined.stdout
        assert "+CREATE TABLE b(x); -- reviewed: comment only" in declined.stdout
        assert project.digest() == before
    assert project.manager().status()[1]["state"] == "modified"
    monkeypatch.setattr("vcp_migrate.cli.asking.interactive", lambda: True)
    answered_no = project.cli("repair", input="n\n")
    assert answered_no.exit_code == 0 and "Recorded new checksums: nothing." in answered_no.stdout
    assert project.digest() == before
    result = project.cli("repair", "--yes")
    assert result.exit_code == 0 and "Recorded new checksums: 2." in result.stdout
    assert project.manager().status()[1]["state"] == "applied"
    assert project.manager().migrate() == []
    with pytest.raises(PlanError, match="version 1 is applied and its file has not changed since: repair records"):
        project.manager().repair([1])


def test_repair_with_standard_input_closed_refuses_as_without_a_terminal(project: Project) -> None:
    """No standard input at all (``<&-``): Python has none to ask; the same refusal, one line."""
    three(project)
    project.manager().migrate()
    project.sql("002_b.sql", "CREATE TABLE b(x); -- reviewed", "DROP TABLE b;")
    before = project.digest()
    command = [str(console_script()), "repair", "--db", str(project.db), "--dir", str(project.dir)]
    result = subprocess.run(
        command, cwd=project.root, capture_output=True, text=True, timeout=60, preexec_fn=lambda: os.close(0)
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "and there is no terminal to ask" in result.stderr
    assert project.digest() == before


def test_repair_of_a_version_not_applied_or_whose_file_is_missing_says_which(project: Project) -> None:
    """Both were 'not an applied migration whose file changed'; a missing one is applied."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    project.manager().migrate()
    project.sql("003_c.sql", "CREATE TABLE c (x);", "DROP TABLE c;")
    (project.dir / "002_b.sql").unlink()
    before = project.digest()
    with pytest.raises(PlanError, match=r"version 2 is applied but its file is missing from .* \(restore it first\)"):
        project.manager().repair([2])
    with pytest.raises(PlanError, match="version 3 is not applied: repair records a changed file's checksum"):
        project.manager().repair([3])
    assert project.digest() == before and project.history() == [1, 2]
