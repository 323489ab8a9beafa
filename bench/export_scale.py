"""Export at scale: every observation to CSV, with flat memory.

    python -m bench.export_scale --rows 100000 1000000 --backends sqlite postgresql

For each data set (made by ``bench.generate`` on first use and kept in
``bench/data/`` or on the PostgreSQL server) this streams all observations to
a CSV file twice, each time in a fresh process so that its peak memory is its
own:

* **havainto**: ``storage.export.write_csv(iter_records(session))``, the code
  behind ``havainto export --format csv`` (ORM rows, the latest escalation
  status, labels, hetu scrub, the pydantic record, CSV-injection guard);
* **baseline**: the bare driver (``sqlite3`` / ``asyncpg`` cursor) streaming the
  same rows of the same table straight into ``csv.writer``.

It reports rows per second, the file size, and the peak resident memory of
the process (``getrusage`` maximum) next to its memory before the export
began; memory is flat when the 1,000,000-row export peaks no higher than the
100,000-row one.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import resource
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    DATA_DIR,
    DEFAULT_PG_URL,
    Table,
    asyncpg_dsn,
    human,
    measure_in_process,
    print_header,
    ratio,
    rss_bytes,
    verdict,
)

BASELINE_SQL = (
    "SELECT id, observed_at, recorded_at, team_id, region, area, theme, population_group,"
    " signal, frequency, escalation, polarity, task, source, scale, description, quote,"
    " action, person_id, transport, language, flow_version, taxonomy_version"
    " FROM observations WHERE withdrawn_at IS NULL ORDER BY id"
)


# --- one export, in its own process ------------------------------------------------------


async def _havainto(url: str, out_path: Path) -> int:
    from storage.db import Database
    from storage.export import iter_records, write_csv

    db = Database(url)
    try:
        # As `havainto export` reads: a snapshot, not a write transaction.
        async with db.snapshot() as session:
            with out_path.open("w", newline="", encoding="utf-8") as out:
                return await write_csv(iter_records(session), out)
    finally:
        await db.close()


def _baseline_sqlite(url: str, out_path: Path) -> int:
    from sqlalchemy.engine import make_url

    conn = sqlite3.connect(str(make_url(url).database))
    try:
        with out_path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\r\n")
            cursor = conn.execute(BASELINE_SQL)
            writer.writerow([c[0] for c in cursor.description])
            count = 0
            while rows := cursor.fetchmany(1000):
                writer.writerows(rows)
                count += len(rows)
            return count
    finally:
        conn.close()


async def _baseline_postgresql(url: str, out_path: Path) -> int:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        with out_path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\r\n")
            count = 0
            async with conn.transaction():
                cursor = conn.cursor(BASELINE_SQL, prefetch=1000)
                header = False
                async for row in cursor:
                    if not header:
                        writer.writerow(list(row.keys()))
                        header = True
                    writer.writerow(row.values())
                    count += 1
            return count
    finally:
        await conn.close()


def one(mode: str, url: str, out_path: Path) -> dict[str, Any]:
    import storage.export  # noqa: F401  # imported before the clock starts, as in the CLI

    rss_before = rss_bytes()
    started = time.perf_counter()
    if mode == "havainto":
        rows = asyncio.run(_havainto(url, out_path))
    elif url.startswith("sqlite"):
        rows = _baseline_sqlite(url, out_path)
    else:
        rows = asyncio.run(_baseline_postgresql(url, out_path))
    seconds = time.perf_counter() - started
    size = out_path.stat().st_size
    out_path.unlink()
    return {
        "rows": rows,
        "seconds": seconds,
        "bytes": size,
        "rss_before": rss_before,
        "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def one_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.export_scale one")
    parser.add_argument("mode", choices=("havainto", "baseline"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(one(args.mode, args.url, Path(args.out))))


async def measure(mode: str, url: str, label: str) -> dict[str, Any]:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    out = DATA_DIR / f"export-{label}-{mode}.csv"
    args = [mode, "--url", url, "--out", str(out)]
    return await measure_in_process("bench.export_scale", args, f"export {mode} on {label}")


# --- the report --------------------------------------------------------------------------


async def bench(
    rows_list: list[int],
    backends: list[str],
    pg_url: str,
    seed: int,
    urls: list[str] | None = None,
) -> list[tuple[str, int, str, dict[str, Any]]]:
    """Export each data set (made first when missing), or the databases at ``urls``."""
    from bench.generate import count_observations, ensure_dataset, upgraded
    from storage.db import normalise_url

    targets: list[tuple[str, int, str]] = []
    if urls:
        for url in urls:
            backend = "sqlite" if normalise_url(url).startswith("sqlite") else "postgresql"
            targets.append((backend, await count_observations(url), await upgraded(url)))
    else:
        for backend in backends:
            for rows in rows_list:
                targets.append((backend, rows, await ensure_dataset(backend, rows, seed, pg_url)))
    results = []
    for backend, rows, url in targets:
        for mode in ("baseline", "havainto"):
            label = f"{backend}-{rows}"
            results.append((backend, rows, mode, await measure(mode, url, label)))
    return results


def report(results: list[tuple[str, int, str, dict[str, Any]]]) -> None:
    table = Table(
        "Export to CSV",
        (
            "backend",
            "table rows",
            "exporter",
            "rows written",
            "seconds",
            "rows/s",
            "vs baseline",
            "CSV MB",
            "RSS before MB",
            "peak RSS MB",
            "load avg",
        ),
    )
    by_key = {(b, r, m): res for b, r, m, res in results}
    for backend, rows, mode, res in results:
        base = by_key[(backend, rows, "baseline")]
        speed = res["rows"] / res["seconds"]
        table.add(
            backend,
            human(rows),
            mode,
            human(res["rows"]),
            f"{res['seconds']:.1f}",
            human(speed),
            "1.00x" if mode == "baseline" else ratio(base["seconds"], res["seconds"]),
            f"{res['bytes'] / 1e6:.0f}",
            f"{res['rss_before'] / 1e6:.0f}",
            f"{res['peak'] / 1e6:.0f}",
            res["load"],
        )
    table.print()
    sizes = sorted({r for _, r, _, _ in results})
    if len(sizes) < 2:
        return
    small, large = sizes[0], sizes[-1]
    flat = Table(
        "Memory is flat",
        ("backend", f"peak RSS at {human(small)}", f"at {human(large)}", "ratio", "verdict"),
    )
    for backend in sorted({b for b, *_ in results}):
        a = by_key[(backend, small, "havainto")]["peak"]
        b = by_key[(backend, large, "havainto")]["peak"]
        flat.add(
            backend,
            f"{a / 1e6:.0f} MB",
            f"{b / 1e6:.0f} MB",
            f"{b / a:.2f}x",
            verdict(b / a < 1.1),
        )
    flat.print()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["one"]:
        one_main(argv[1:])
        return
    parser = argparse.ArgumentParser(
        prog="python -m bench.export_scale",
        description="Stream every observation to CSV and report rows/s and peak memory, "
        "against a bare-driver baseline measured in the same run.",
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--backends", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"]
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server (admin URL)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--url",
        action="append",
        help="export this database (made by bench.generate) instead of --rows/--backends",
    )
    args = parser.parse_args(argv)
    print_header("Export", ("python -m bench.export_scale " + " ".join(argv)).strip())
    report(asyncio.run(bench(args.rows, args.backends, args.pg_url, args.seed, args.url)))


if __name__ == "__main__":
    main()
