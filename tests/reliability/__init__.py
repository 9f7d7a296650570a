"""Reliability campaigns: crash, concurrency and bad input, run as real processes.

``python -m tests.reliability`` runs them all and prints one table of figures;
``--quick`` runs the reduced version CI runs on every change.
"""
