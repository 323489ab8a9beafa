"""The social report's length at scale: a region's month of a 100,000-row data set
(``bench.generate``) prints on at most 8 pages, the escalations beyond a few going to the
appendix file, and the first page carries no taxonomy version (it is in the colophon).

The data set is generated into the test's own SQLite file (about 7 s on two cores) and
the report built the way ``havainto report`` and the scheduler build it
(``bench.report_length.measure``: ``gather_figures``, ``printed_report``). About 16 s on
two cores (generation 7 s, PDF 4 s): not marked slow."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date
from pathlib import Path

from bench.generate import generate, upgraded
from bench.report_length import measure
from flows.taxonomy import TAXONOMY_VERSION

MAX_PAGES = 8


def pdf_text(pdf: Path, *options: str) -> str:
    command = ["pdftotext", *options, str(pdf), "-"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


async def test_a_100000_row_region_month_fits_on_eight_pages(tmp_path: Path) -> None:
    path = tmp_path / "bench.db"
    await generate(f"sqlite:///{path}", 100_000, 1, progress=False)
    await upgraded(f"sqlite:///{path}")
    result = await measure(
        f"sqlite+aiosqlite:///{path}", "2026-11", region="helsinki", today=date(2026, 12, 3)
    )
    print(
        f"pages={result['pages']} observations={result['observations']} "
        f"escalations={result['escalations']} query={result['query_s']:.2f}s "
        f"render={result['render_s']:.2f}s"
    )
    assert result["observations"] > 1000 and result["escalations"] > 100
    assert 1 <= result["pages"] <= MAX_PAGES
    # Every escalation is in the appendix, a few in the body.
    assert result["appendix_rows"] == result["escalations"]
    if shutil.which("pdfinfo"):
        assert result["pdfinfo_pages"] == result["pages"]
    if shutil.which("pdftotext"):
        pdf = tmp_path / "report.pdf"
        pdf.write_bytes(result["pdf"])
        first, everything = pdf_text(pdf, "-l", "1"), pdf_text(pdf)
        assert TAXONOMY_VERSION not in first and "taksonomi" not in first.casefold()
        assert TAXONOMY_VERSION in everything.split("Tietoja raportista", 1)[1]
