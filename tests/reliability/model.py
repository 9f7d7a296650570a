"""The model-based test run longer: random migration sets and command sequences, with
history, schema, rows, status and user_version checked after every step."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from ..test_model import Migrations
from .common import Figures, Timer


def run(examples: int, steps: int) -> Figures:
    figures = Figures("model-based")
    failure = ""
    with Timer() as timer:
        try:
            run_state_machine_as_test(
                Migrations,
                settings=settings(
                    max_examples=examples,
                    stateful_step_count=steps,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                ),
            )
        except AssertionError as exc:  # hypothesis has shrunk it to the smallest failing sequence
            failure = str(exc).splitlines()[0] if str(exc) else "assertion failed"
    figures.counts = {
        "command sequences": Migrations.machines,
        "steps checked": Migrations.checks,
        "max steps per sequence": steps,
    }
    figures.failures = {"sequences where history, schema, status or user_version disagree": int(bool(failure))}
    figures.notes = [failure] if failure else []
    figures.seconds = timer.seconds
    return figures
