"""One module per command, each read top to bottom in the order it happens.

``status``, ``migrate``, ``rollback`` (and redo), ``dry_run``, ``baseline``, ``repair``,
``restore`` (and the backups listing), ``validate`` (and the schema), ``new``; ``context``
holds what every command starts from, ``frame`` what every changing command shares.
"""
