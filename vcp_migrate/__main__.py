"""``python -m vcp_migrate`` runs the command line."""

from .cli import main

main()
