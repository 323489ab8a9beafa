"""How long the monthly summary is: messages, characters, CSV rows, PDF pages, time.

    python -m bench.summary_length --rows 100000 [--region helsinki|all] [--month 2026-11]
    python -m bench.summary_length --rows 20000 --url postgresql://.../db   # a data set made

Generates the data set on first use (``bench.generate``, kept in ``bench/data/``),
builds the monthly summary of one region the way the scheduler does
(``monthly_summary_data``, ``render_monthly``, then ``bot.delivery.digest_parts`` at
Telegram's 4096-character limit; ``--region all``: the whole organisation's summary,
with its regions side by side) and prints one Markdown table: the text messages
and their characters, the rows of the attached CSV, the pages of the attached PDF
and the time each step took. Paste it into ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Table, git_commit, load_average, machine_summary

DATA = Path(__file__).resolve().parent / "data"
TELEGRAM_LIMIT = 4096


def _pdf_pages(pdf: bytes | None) -> int:
    """Pages of the PDF, by poppler's ``pdfinfo`` (0 without a PDF or without pdfinfo)."""
    if not pdf or not shutil.which("pdfinfo"):
        return 0
    with tempfile.NamedTemporaryFile(suffix=".pdf") as handle:
        handle.write(pdf)
        handle.flush()
        info = subprocess.run(
            ["pdfinfo", handle.name], check=True, capture_output=True, text=True
        ).stdout
    found = re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE)
    return int(found[1]) if found else 0


async def measure(url: str, region: str | None, month: str, lang: str) -> dict[str, Any]:
    from bench.generate import REGIONS
    from bot.delivery import digest_parts
    from digests.render import render_monthly
    from flows.events import Document, Message
    from storage.db import Database
    from storage.digest_queries import monthly_summary_data

    names = {region_id: name for region_id, name, _, _ in REGIONS}
    db = Database(url)
    try:
        started = time.perf_counter()
        async with db.snapshot() as session:
            data = await monthly_summary_data(
                session,
                region,
                month,
                scope_name=names.get(region, region) if region else None,
                region_names=names,
            )
        queried = time.perf_counter()
        rendered = render_monthly(data, lang, pdf=True)
        done = time.perf_counter()
    finally:
        await db.close()
    parts = digest_parts(rendered, TELEGRAM_LIMIT)
    messages = [p for p in parts if isinstance(p, Message)]
    documents = [p for p in parts if isinstance(p, Document)]
    csv_rows = max(0, rendered.csv.decode("utf-8-sig").count("\r\n") - 1) if rendered.csv else 0
    pdf = getattr(rendered, "pdf", None)
    return {
        "messages": len(messages),
        "chars": sum(len(m.html or m.text) for m in messages),
        "bullets": rendered.text.count("• "),
        "csv_rows": csv_rows,
        "pdf_pages": _pdf_pages(pdf),
        "attachments": len(documents),
        "query_s": queried - started,
        "render_s": done - queried,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.summary_length", description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--region", default="helsinki", help="a region's id, or all: the whole organisation"
    )
    parser.add_argument("--month", default="2026-11")
    parser.add_argument("--lang", default="fi")
    parser.add_argument(
        "--url", help="an existing data set of --rows rows (default: one made in bench/data/)"
    )
    args = parser.parse_args(argv)

    DATA.mkdir(exist_ok=True)
    path = DATA / f"summary_{args.rows}_s{args.seed}.db"  # made by bench.generate
    url = args.url or f"sqlite+aiosqlite:///{path}"
    if args.url is None and not path.exists():
        from bench.generate import generate, upgraded

        asyncio.run(generate(f"sqlite:///{path}", args.rows, args.seed, progress=False))
        asyncio.run(upgraded(f"sqlite:///{path}"))
    region = None if args.region == "all" else args.region
    result = asyncio.run(measure(url, region, args.month, args.lang))
    print(f"commit {git_commit()} · {machine_summary()} · load {load_average()}\n")
    table = Table(
        "Monthly summary length",
        [
            "rows",
            "region, month",
            "messages (4096)",
            "characters",
            "bullet lines",
            "CSV rows",
            "PDF pages",
            "attachments",
            "query",
            "render",
        ],
    )
    table.add(
        f"{args.rows:,}",
        f"{args.region}, {args.month}",
        result["messages"],
        f"{result['chars']:,}",
        result["bullets"],
        result["csv_rows"],
        result["pdf_pages"] or "–",
        result["attachments"],
        f"{result['query_s'] * 1000:.0f} ms",
        f"{result['render_s'] * 1000:.0f} ms",
    )
    table.print()


if __name__ == "__main__":
    main()
