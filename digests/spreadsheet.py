"""Text cells a spreadsheet shows as text: the one rule against formula injection.

Excel (and LibreOffice, Google Sheets) runs a CSV cell that starts with ``=``,
``+``, ``-`` or ``@`` as a formula, and skips a leading tab or carriage return
before looking. Free text a person wrote (a description, a quote, a team name,
a leader's answer) is therefore written with a leading ``'`` when it starts so:
the spreadsheet shows the text and hides the quote mark.

Used by every CSV file Havainto writes: the escalations of the monthly summary
(``digests.render.escalations_csv``) and the data export
(``storage.export.write_csv``). Pure and light: no imports of our own.
"""

from __future__ import annotations

FORMULA_START: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """``text`` as a cell no spreadsheet runs: a leading ``'`` before a formula start."""
    return "'" + text if text.startswith(FORMULA_START) else text
