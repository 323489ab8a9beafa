"""The formats of ``havainto export``: name -> writer, the one list.

A new format is a writer and one line in ``FORMATS``: the command line offers every
format listed here (``--format``) and writes through its writer. This module is apart
from ``storage.export`` and imports it only when a file is written, so that the
command line can list the formats and ``havainto --help`` still starts fast (the
export's query loads SQLAlchemy).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from digests.spreadsheet import DEFAULT_CSV_DIALECT

if TYPE_CHECKING:
    from storage.export import ExportRecord


@dataclass(frozen=True)
class WriteOptions:
    """What a format's writer may use besides the records."""

    #: Language of the labels (the XLSX writer fits its columns to them).
    lang: str = "fi"
    #: ``digests.spreadsheet``'s dialect, for CSV.
    csv_dialect: str = DEFAULT_CSV_DIALECT
    #: The longest value of each field named in the configuration ("team_name": 24).
    names: Mapping[str, int] = field(default_factory=dict)


#: Writes the records to ``out`` (text, or bytes when the format is binary); their count.
Writer = Callable[[AsyncIterator["ExportRecord"], IO[Any], WriteOptions], Awaitable[int]]


@dataclass(frozen=True)
class ExportFormat:
    name: str
    #: Written as bytes (a file opened "wb", standard output's buffer), not as text.
    binary: bool
    write: Writer


async def _csv(records: AsyncIterator[ExportRecord], out: IO[Any], options: WriteOptions) -> int:
    from storage.export import write_csv

    return await write_csv(records, out, options.csv_dialect)


async def _xlsx(records: AsyncIterator[ExportRecord], out: IO[Any], options: WriteOptions) -> int:
    from storage.export import column_widths, write_xlsx

    return await write_xlsx(records, out, column_widths(options.lang, options.names))


async def _jsonl(records: AsyncIterator[ExportRecord], out: IO[Any], options: WriteOptions) -> int:
    from storage.export import write_jsonl

    return await write_jsonl(records, out)


#: Every export format by name, in the order the command line lists them.
FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("csv", binary=False, write=_csv),
        ExportFormat("xlsx", binary=True, write=_xlsx),
        ExportFormat("jsonl", binary=False, write=_jsonl),
    )
}
DEFAULT_FORMAT = "jsonl"
