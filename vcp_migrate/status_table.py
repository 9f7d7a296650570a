"""The table ``status`` draws on a terminal: box characters and ANSI styles of its own.

Every other table is Rich's (``render``). This one is drawn here because loading Rich takes
longer than all the rest of ``status`` on a thousand migrations, and ``status`` is what people
run most. It looks as Rich drew it: a heavy head, the state in colour, and on a narrow terminal
only the name folds, so version, state and time keep their whole width.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .printable import TIME, printable, status_summary

if TYPE_CHECKING:
    from collections.abc import Callable

    from .models import AppliedMigration, StatusReport

_RESET = "\x1b[0m"
# SGR parameters, as Rich renders these styles.
_STATE_STYLES = {
    "applied": "32",  # green
    "pending": "33",  # yellow
    "modified": "1;31",  # bold red
    "missing": "1;31",
    "out-of-order": "35",  # magenta
    "invalid": "1;31",
}
_HEADER, _TITLE, _CAPTION = "1", "3", "2;3"  # bold; italic; dim italic
_HEADERS = ("Version", "Name", "State", TIME)
_NAME = 1  # the column that folds


def status_table(report: StatusReport, *, columns: int, colour: bool) -> str:
    """The title, the table and the summary, fitted to a terminal ``columns`` wide; styled with
    ANSI sequences when ``colour`` (names are shown through ``printable``, never obeyed)."""

    def styled(text: str, style: str) -> str:
        return f"\x1b[{style}m{text}{_RESET}" if colour and style else text

    cells = [
        ("-" if row.version is None else str(row.version), printable(row.name), row.state, _applied_at(row.applied))
        for row in report.rows
    ]
    widths = [max([_width(header), *(_width(cell[i]) for cell in cells)]) for i, header in enumerate(_HEADERS)]
    # Each column takes its width and a space either side, with a border before each and at the end.
    fixed = sum(widths) - widths[_NAME] + 3 * len(widths) + 1
    # never narrower than its header, which also leaves room for any one character
    widths[_NAME] = max(_width(_HEADERS[_NAME]), min(widths[_NAME], columns - fixed))
    lines = [styled(f"Migrations of {printable(str(report.database))}", _TITLE)]
    lines.append(_rule("┏", "━", "┳", "┓", widths))
    lines.append(_row(list(_HEADERS), widths, "┃", [_HEADER] * len(widths), styled))
    lines.append(_rule("┡", "━", "╇", "┩", widths))
    for version, name, state, applied_at in cells:
        parts = _fold(name, widths[_NAME])
        styles = ["", "", _STATE_STYLES[state], ""]
        lines.append(_row([version, parts[0], state, applied_at], widths, "│", styles, styled))
        lines.extend(_row(["", part, "", ""], widths, "│", styles, styled) for part in parts[1:])
    lines.append(_rule("└", "─", "┴", "┘", widths))
    lines.append(styled(status_summary(report), _CAPTION))
    return "\n".join(lines)


def _applied_at(applied: AppliedMigration | None) -> str:
    return printable(applied.applied_at) if applied else ""


def _rule(left: str, line: str, middle: str, right: str, widths: list[int]) -> str:
    return left + middle.join(line * (width + 2) for width in widths) + right


def _row(cells: list[str], widths: list[int], border: str, styles: list[str], styled: Callable[[str, str], str]) -> str:
    padded = []
    for index, (cell, width, style) in enumerate(zip(cells, widths, styles, strict=True)):
        gap = " " * (width - _width(cell))
        text = styled(cell, style) if cell else ""
        padded.append(f" {gap}{text} " if index == 0 else f" {text}{gap} ")  # the version is right-aligned
    return border + border.join(padded) + border


def _width(text: str) -> int:
    """How many terminal cells ``text`` takes: East Asian wide characters take two, combining marks none."""
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text
    )


def _fold(text: str, width: int) -> list[str]:
    """``text`` cut into pieces of at most ``width`` cells (a name has no spaces to break at)."""
    if text.isascii():
        return [text[start : start + width] for start in range(0, len(text), width)] or [""]
    pieces, piece, used = [], "", 0
    for char in text:
        size = _width(char)
        if piece and used + size > width:
            pieces.append(piece)
            piece, used = "", 0
        piece += char
        used += size
    return [*pieces, piece]
