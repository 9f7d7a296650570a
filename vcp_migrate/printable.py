"""Text safe to show on a terminal: file names and messages are data, never commands to it.

A file may be named ``003_\\x1b]0;title\\x07.sql``: printed as it is, the terminal would obey the
escape sequence (retitle the window, recolour or erase the screen) instead of showing it.
"""

from __future__ import annotations


def printable(text: str) -> str:
    """TEXT with every character a terminal would act on or hide shown as an escape instead.

    Control characters (C0, DEL, C1), format characters such as bidirectional overrides,
    separators other than the space, surrogates from undecodable file names and unassigned
    code points become ``\\x1b``, ``\\u202e``, ``\\udcff``: what ``str.isprintable`` rejects.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
