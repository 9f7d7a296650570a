"""``python -m vcp_migrate`` runs the command line."""

from .entry import main

main()
