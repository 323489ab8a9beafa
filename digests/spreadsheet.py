"""Text cells a spreadsheet shows as text: the one rule against formula injection.

Excel (and LibreOffice, Google Sheets) runs a CSV cell that starts with ``=``,
``+``, ``-`` or ``@`` as a formula, and skips a leading tab or carriage return
before looking. Free text a person wrote (a description, a quote, a team name,
a leader's answer) is therefore written with a leading ``'`` when it starts so:
the spreadsheet shows the text and hides the quote mark.

Used by every CSV file Havainto writes: the escalations of the monthly summary
(``digests.render.escalations_csv``) and the data export
(``storage.export.write_csv``). Pure and light: no imports of our own.

One CSV dialect for all of them (``[csv] dialect``): ``semicolon``, the default, is
``;`` with a UTF-8 byte order mark, what Excel with Finnish or Swedish regional
settings opens as columns; ``comma`` is RFC 4180 (``,``, no mark). Lines end in
CRLF either way, and counts are plain digits.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import IO, Any

from flows.official_codes import OfficialCodes


@dataclass(frozen=True)
class CsvDialect:
    delimiter: str
    bom: bool


CSV_DIALECTS = {
    "semicolon": CsvDialect(";", bom=True),
    "comma": CsvDialect(",", bom=False),
}
DEFAULT_CSV_DIALECT = "semicolon"
BOM = "\ufeff"


def csv_dialect(name: str) -> CsvDialect:
    """The dialect called ``name``; ValueError for an unknown one."""
    try:
        return CSV_DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown CSV dialect {name!r}: semicolon or comma") from None


def csv_writer(out: IO[str], dialect: str = DEFAULT_CSV_DIALECT) -> Any:
    """A ``csv.writer`` for ``dialect`` on ``out``, the byte order mark written first when
    the dialect has one."""
    chosen = csv_dialect(dialect)
    if chosen.bom:
        out.write(BOM)
    return csv.writer(out, delimiter=chosen.delimiter, lineterminator="\r\n")


FORMULA_START: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """``text`` as a cell no spreadsheet runs: a leading ``'`` before a formula start."""
    return "'" + text if text.startswith(FORMULA_START) else text


def official_cells(
    codes: OfficialCodes, region: str | None, team_id: str, area: str | None
) -> tuple[str, str]:
    """The ``region_code`` and ``municipality`` cells of a row (an escalated observation in
    the monthly escalations CSV and in the report's appendix): the county's official code
    and the area's municipality number as the config gives them, empty without."""
    return codes.region(region) or "", codes.municipality(team_id, area) or ""
