"""What text given where a path goes cannot mean, checked alike wherever it comes from: an option,
the environment, a ``[tool.vcp-migrate]`` table (there relative to the file), the Python API."""

from __future__ import annotations

import os
import re

from .backends import is_url

# A URL's scheme and '://', as other tools name a SQLite file (sqlite:///app.db, file:///app.db).
_ANY_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")


def not_meant(text: str, folder: str = "") -> tuple[str, str] | None:
    """What is wrong with ``text`` as a path read from ``folder`` (the current one by default),
    and what to do; None when nothing is. Empty (Path("") is the current folder) or blank (a quoted
    variable left empty: migrate made a database of ' '); a ~ no shell expanded (``--dir=~``: new
    made a folder '~'); a URL of another kind (``sqlite:///app.db``: a folder 'sqlite:'); SQLite's
    own names, ``:memory:`` and a URI ``file:app.db?mode=ro`` (migrate made a file of that name,
    status said every migration of app.db was pending). The last three are what was meant when a
    file or folder so named is there."""
    if not text:
        return "is empty", "give a path"
    if text.isspace():
        return "is blank (white space only)", "give a path"
    there = os.path.lexists(os.path.join(folder, text.split("/", 1)[0]))
    if text.startswith("~") and not there:
        return (
            f"begins with ~, which is not expanded here: {text!r}",
            "write the full path; a shell expands ~ only at the start of a word: --db ~/app.db, not --db=~/app.db",
        )
    if _ANY_URL.match(text.strip()) and not is_url(text) and not there:
        return (
            f"is a URL, not a path: {text!r}",
            "give a path, app.db and not sqlite:///app.db; the only URLs vcp-migrate reads are a libSQL"
            " server's: libsql://, http://, https://",
        )
    if text == ":memory:" and not there:
        return (
            "is :memory:, SQLite's database in memory, which ends with its connection: each command opens the"
            " database anew, so nothing migrated there would last",
            "give the path of a file, a temporary one in a test",
        )
    if text.startswith("file:") and not there:
        return (
            f"is a SQLite URI, not a path: {text!r}",
            f"give the file's path, {re.split('[?#]', text[5:], maxsplit=1)[0] or 'app.db'!r}; vcp-migrate opens"
            " it itself",
        )
    return None
