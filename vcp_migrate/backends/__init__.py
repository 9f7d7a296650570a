"""Kinds of database other than a local SQLite file. Each module here is imported only when its
kind of database is used, so a command on a local file never loads it.

``hrana``: a client for libSQL's server (sqld, Turso) over Hrana over HTTP.
"""
