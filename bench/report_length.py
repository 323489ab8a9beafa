"""How long the social report is: pages, appendix rows, time, for one scope and period.

    python -m bench.report_length --rows 100000 [--region helsinki] [--period 2026-11]
    python -m bench.report_length --rows 100000 --team <team id> --period 2026-H2
    python -m bench.report_length --url sqlite+aiosqlite:///bench/data/x.db --period 2026

Generates the data set on first use (``bench.generate``, kept in ``bench/data/``), then
builds the report the way ``havainto report`` and the scheduler do
(``bot.reports.gather_figures``, ``digests.report.printed_report``: HTML, charts, the PDF
by WeasyPrint and the appendix CSV) and prints one Markdown table: the PDF's pages (as
WeasyPrint laid them out, and by poppler's ``pdfinfo`` when it is installed), the rows of
the appendix and the time of each step. The config is made from the data set's teams.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench.common import Table, git_commit, load_average, machine_summary

DATA = Path(__file__).resolve().parent / "data"


def pdfinfo_pages(pdf: bytes) -> int:
    """Pages of the PDF by poppler's ``pdfinfo`` (0 without pdfinfo)."""
    if not shutil.which("pdfinfo"):
        return 0
    with tempfile.NamedTemporaryFile(suffix=".pdf") as handle:
        handle.write(pdf)
        handle.flush()
        info = subprocess.run(
            ["pdfinfo", handle.name], check=True, capture_output=True, text=True
        ).stdout
    found = re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE)
    return int(found[1]) if found else 0


async def config_of(url: str, **overrides: Any) -> Any:
    """A config whose teams are the data set's (``teams`` table), on ``url``."""
    from sqlalchemy import select

    from bot.config import load_config
    from storage.db import Database
    from storage.models import Team

    db = Database(url)
    try:
        async with db.snapshot() as session:
            teams = (await session.execute(select(Team).order_by(Team.id))).scalars().all()
            rows = [
                {"id": t.id, "name": t.name, "region": t.region, "language": t.language}
                for t in teams
            ]
    finally:
        await db.close()
    values: dict[str, Any] = {
        "database": {"url": url},
        "teams": rows,
        "terminal": {"enabled": "no"},
    }
    values.update(overrides)
    return load_config(None, **values)


async def measure(
    url: str,
    period: str,
    lang: str | None = None,
    region: str | None = None,
    team: str | None = None,
    today: date | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the report of ``region`` (or ``team``) for ``period``; its size and times.
    ``overrides``: config sections beside the teams (``bodies``, ``regions``)."""
    from bot.reports import file_names, gather_figures, report_scope
    from digests.numbers import Privacy
    from digests.report import printed_report
    from digests.report_periods import parse_report_period
    from storage.db import Database

    cfg = await config_of(url, **(overrides or {}))
    scope = report_scope(cfg, team=team, region=region, lang=lang)
    named = parse_report_period(period)
    _, appendix_name = file_names(scope.language, scope, named.label)
    db = Database(url)
    try:
        started = time.perf_counter()
        async with db.snapshot() as session:
            figures = await gather_figures(
                session, cfg, scope, named.start, named.end, scope.language, appendix_name
            )
        queried = time.perf_counter()
    finally:
        await db.close()
    printed = printed_report(
        figures, scope.language, today or date.today(), Privacy(min_cell=cfg.privacy.min_cell)
    )
    done = time.perf_counter()
    appendix_rows = (
        printed.appendix.decode("utf-8-sig").count("\r\n") - 1 if printed.appendix else 0
    )
    return {
        "observations": figures.total,
        "escalations": len(figures.escalations),
        "pages": printed.pages,
        "pdfinfo_pages": pdfinfo_pages(printed.pdf),
        "appendix_rows": appendix_rows,
        "pdf": printed.pdf,
        "query_s": queried - started,
        "render_s": done - queried,
    }


def dataset(rows: int, seed: int) -> str:
    """The URL of the kept data set of ``rows`` rows, generated on first use."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"summary_{rows}_s{seed}.db"  # shared with bench.summary_length
    if not path.exists():
        from bench.generate import generate, upgraded

        asyncio.run(generate(f"sqlite:///{path}", rows, seed, progress=False))
        asyncio.run(upgraded(f"sqlite:///{path}"))
    return f"sqlite+aiosqlite:///{path}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report_length", description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--region", default=None, help="region id (default: helsinki)")
    parser.add_argument("--team", default=None, help="a team's report instead")
    parser.add_argument("--period", default="2026-11", help="2026-11, 2026-H2, 2026")
    parser.add_argument("--lang", default=None)
    parser.add_argument("--url", help="an existing data set (default: one made in bench/data/)")
    parser.add_argument("--pdf", type=Path, help="also write the PDF here")
    args = parser.parse_args(argv)
    region = args.region or (None if args.team else "helsinki")
    url = args.url or dataset(args.rows, args.seed)
    result = asyncio.run(measure(url, args.period, args.lang, region, args.team))
    if args.pdf:
        args.pdf.write_bytes(result["pdf"])
    print(f"commit {git_commit()} · {machine_summary()} · load {load_average()}\n")
    table = Table(
        "Social report length",
        [
            "rows",
            "scope, period",
            "observations",
            "escalations",
            "PDF pages",
            "pdfinfo",
            "appendix rows",
            "query",
            "render",
        ],
    )
    table.add(
        f"{args.rows:,}" if not args.url else "(given)",
        f"{args.team or region}, {args.period}",
        f"{result['observations']:,}",
        result["escalations"],
        result["pages"],
        result["pdfinfo_pages"] or "–",
        result["appendix_rows"],
        f"{result['query_s'] * 1000:.0f} ms",
        f"{result['render_s'] * 1000:.0f} ms",
    )
    table.print()


if __name__ == "__main__":
    main()
