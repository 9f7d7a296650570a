"""The benchmark: vcp-migrate side by side with dbmate, yoyo, alembic, caribou and a floor
script on the same workloads. ``python -m tests.bench`` (or ``make bench``) runs it."""
