"""Export at scale: every observation to CSV, with flat memory.

    python -m bench.export_scale --rows 100000 1000000 --backends sqlite postgresql

For each data set (made by ``bench.generate`` on first use and kept in
``bench/data/`` or on the PostgreSQL server) this streams all observations to
a CSV file twice, each time in a fresh process so that its peak memory is its
own:

* **havainto**: ``storage.export.write_csv(iter_records(session))``, the code
  behind ``havainto export --format csv`` (ORM rows, the latest escalation
  status, labels, hetu scrub, the pydantic record, CSV-injection guard);
* **floor**: the same work without the ORM and pydantic -- the same SQL (compiled
  from ``storage.export.observations_query``) on the bare driver (``sqlite3`` /
  ``asyncpg`` cursor), the same columns in the same order (labels, status and its
  label, path position, pseudonym, hetu-scrubbed free text, CSV-injection guard)
  written with ``csv.writer``. Both write with the same pseudonym salt, and the run
  checks that the two files are **byte for byte the same**, so the floor does exactly
  the work the export does;
* **bare**: the bare driver streaming the table's own columns straight into
  ``csv.writer`` (no labels, no scrub, no joins), printed as a second reference.

It reports rows per second, the file size, and the peak resident memory of
the process (``getrusage`` maximum) next to its memory before the export
began; memory is flat when the 1,000,000-row export peaks no higher than the
100,000-row one.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import resource
import sqlite3
import sys
import time
from datetime import UTC, datetime
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

MODES = ("floor", "havainto", "bare")
SALT = b"havainto-bench-salt"  # the same pseudonyms in both files, so they can be compared

BARE_SQL = (
    "SELECT id, observed_at, recorded_at, team_id, region, area, theme, population_group,"
    " signal, frequency, escalation, polarity, task, source, scale, description, quote,"
    " action, person_id, transport, language, flow_version, taxonomy_version"
    " FROM observations WHERE withdrawn_at IS NULL ORDER BY id"
)


# --- one export, in its own process ------------------------------------------------------


async def _havainto(url: str, out_path: Path) -> int:
    from storage.db import Database
    from storage.export import Pseudonymiser, iter_records, write_csv

    db = Database(url)
    try:
        # As `havainto export` reads: a snapshot, not a write transaction.
        async with db.snapshot() as session:
            with out_path.open("w", newline="", encoding="utf-8") as out:
                records = iter_records(session, pseudonymise=Pseudonymiser(SALT))
                return await write_csv(records, out)
    finally:
        await db.close()


class _Floor:
    """One exported row from a bare driver's tuple: the export's per-row work, by hand."""

    def __init__(self, digested: set[tuple[str, str]], lang: str = "fi") -> None:
        from digests.periods import HELSINKI, week_of
        from flows import privacy
        from flows.i18n import label
        from flows.knowledge import PROPOSAL_STATUSES, PathFacts, position
        from flows.statuses import OPEN
        from flows.taxonomy import NOT_ESCALATED
        from storage.export import CODED, FIELDS, FREE_TEXT, Pseudonymiser, status_label

        self.fields = FIELDS
        self.coded = tuple(CODED)
        self.digested = digested
        self.labels: dict[str, str] = {}
        self.label = lambda code: label(code, lang)
        self.status_label = lambda status: status_label(status, lang)
        self.pseudonym = Pseudonymiser(SALT)
        self.scrub = privacy.scrub
        self.free_text = set(FREE_TEXT)
        self.lang = lang
        self.zone, self.week_of = HELSINKI, week_of
        self.statuses, self.facts, self.position = PROPOSAL_STATUSES, PathFacts, position
        self.open, self.not_escalated = OPEN, NOT_ESCALATED

    def lab(self, code: str | None) -> str | None:
        if code is None:
            return None
        found = self.labels.get(code)
        if found is None:
            found = self.labels[code] = self.label(code)
        return found

    def row(self, r: Any) -> list[Any]:
        from digests.spreadsheet import safe_cell

        escalated = r["escalation"] != self.not_escalated
        status = (r["escalation_status"] or self.open) if escalated else None
        proposal = self.statuses[r["proposal_rank"] - 1] if r["proposal_rank"] else None
        observed = _utc(r["observed_at"])
        in_digest = bool(self.digested) and (
            (r["team_id"], self.week_of(observed.astimezone(self.zone).date())) in self.digested
        )
        facts = self.facts(in_digest, r["phenomenon_id"] is not None, escalated, proposal)
        texts = {name: self.scrub(r[name]) for name in self.free_text}
        values = {
            "id": r["id"],
            "observed_at": _iso(observed),
            "recorded_at": _iso(_utc(r["recorded_at"])),
            "team": r["team_id"],
            "team_name": r["team_name"],
            "region": r["region"],
            "area": r["area"],
            "area_name": None,  # no area names configured, as in the export run
            "region_code": None,  # nor official codes
            "municipality": None,
            "escalation_status": status,
            "escalation_status_label": self.status_label(status) if status else None,
            "text_erased": "true" if r["text_erased_at"] is not None else "false",
            "worker": self.pseudonym(r["person_id"]),
            "labels_language": self.lang,
            "proposal_status": proposal,
            "path_position": self.position(facts),
            "phenomenon_id": r["phenomenon_id"],
        }
        for name in self.coded:
            values[name], values[name + "_label"] = r[name], self.lab(r[name])
        for name, text in texts.items():
            values[name] = safe_cell(text) if text is not None else None
        for name in ("transport", "language", "flow_version", "taxonomy_version"):
            values[name] = r[name]
        return [values[name] for name in self.fields]


def _utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite keeps UTC as naive text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    """As pydantic writes an aware UTC datetime in JSON mode."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _floor_sql(dialect: Any) -> tuple[str, str]:
    from storage.export import observations_query

    digested = (
        "SELECT DISTINCT scope, period FROM deliveries WHERE kind = 'weekly' AND status = 'sent'"
    )
    query = observations_query().compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return digested, str(query)


def _floor_sqlite(url: str, out_path: Path) -> int:
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.engine import make_url

    from digests.spreadsheet import csv_writer
    from storage.export import FIELDS

    digested_sql, sql = _floor_sql(sqlite.dialect())
    conn = sqlite3.connect(str(make_url(url).database))
    conn.row_factory = sqlite3.Row
    try:
        floor = _Floor({(r[0], r[1]) for r in conn.execute(digested_sql)})
        with out_path.open("w", newline="", encoding="utf-8") as out:
            writer = csv_writer(out)
            writer.writerow(FIELDS)
            cursor = conn.execute(sql)
            count = 0
            while rows := cursor.fetchmany(1000):
                writer.writerows(floor.row(r) for r in rows)
                count += len(rows)
            return count
    finally:
        conn.close()


async def _floor_postgresql(url: str, out_path: Path) -> int:
    import asyncpg
    from sqlalchemy.dialects import postgresql

    from digests.spreadsheet import csv_writer
    from storage.export import FIELDS

    digested_sql, sql = _floor_sql(postgresql.dialect())
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        floor = _Floor({(r[0], r[1]) for r in await conn.fetch(digested_sql)})
        with out_path.open("w", newline="", encoding="utf-8") as out:
            writer = csv_writer(out)
            writer.writerow(FIELDS)
            count = 0
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                async for r in conn.cursor(sql, prefetch=1000):
                    writer.writerow(floor.row(r))
                    count += 1
            return count
    finally:
        await conn.close()


def _bare_sqlite(url: str, out_path: Path) -> int:
    from sqlalchemy.engine import make_url

    conn = sqlite3.connect(str(make_url(url).database))
    try:
        with out_path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\r\n")
            cursor = conn.execute(BARE_SQL)
            writer.writerow([c[0] for c in cursor.description])
            count = 0
            while rows := cursor.fetchmany(1000):
                writer.writerows(rows)
                count += len(rows)
            return count
    finally:
        conn.close()


async def _bare_postgresql(url: str, out_path: Path) -> int:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        with out_path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\r\n")
            count = 0
            async with conn.transaction():
                cursor = conn.cursor(BARE_SQL, prefetch=1000)
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
    sqlite = url.startswith("sqlite")
    if mode == "havainto":
        rows = asyncio.run(_havainto(url, out_path))
    elif mode == "floor":
        rows = (
            _floor_sqlite(url, out_path)
            if sqlite
            else asyncio.run(_floor_postgresql(url, out_path))
        )
    else:
        rows = (
            _bare_sqlite(url, out_path) if sqlite else asyncio.run(_bare_postgresql(url, out_path))
        )
    seconds = time.perf_counter() - started
    size = out_path.stat().st_size
    with out_path.open("rb") as written:
        digest = hashlib.file_digest(written, "sha256").hexdigest()
    out_path.unlink()
    return {
        "rows": rows,
        "seconds": seconds,
        "bytes": size,
        "sha256": digest,
        "rss_before": rss_before,
        "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def one_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.export_scale one")
    parser.add_argument("mode", choices=MODES)
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
    floor_up_to: int | None = None,
) -> list[tuple[str, int, str, dict[str, Any]]]:
    """Export each data set (made first when missing), or the databases at ``urls``; the
    floor and the bare dump only up to ``floor_up_to`` rows (all when None)."""
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
        for mode in MODES:
            if mode != "havainto" and floor_up_to is not None and rows > floor_up_to:
                continue
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
            "vs floor",
            "same file as floor",
            "CSV MB",
            "RSS before MB",
            "peak RSS MB",
            "load avg",
        ),
    )
    by_key = {(b, r, m): res for b, r, m, res in results}
    for backend, rows, mode, res in results:
        base = by_key.get((backend, rows, "floor"))
        speed = res["rows"] / res["seconds"]
        table.add(
            backend,
            human(rows),
            mode,
            human(res["rows"]),
            f"{res['seconds']:.1f}",
            human(speed),
            "-"
            if base is None
            else "1.00x"
            if mode == "floor"
            else ratio(base["seconds"], res["seconds"]),
            "-"
            if mode != "havainto" or base is None
            else ("yes" if res["sha256"] == base["sha256"] else "NO"),
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
        "against a fair floor (the same SQL on the bare driver, the same columns and per-row work, "
        "checked byte for byte) and the bare table dump, measured in the same run.",
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
    parser.add_argument(
        "--floor-up-to",
        type=int,
        default=None,
        help="run the floor and the bare dump only for data sets of at most this many rows "
        "(the largest then get Havainto's export alone: rows/s and memory)",
    )
    args = parser.parse_args(argv)
    print_header("Export", ("python -m bench.export_scale " + " ".join(argv)).strip())
    report(
        asyncio.run(
            bench(args.rows, args.backends, args.pg_url, args.seed, args.url, args.floor_up_to)
        )
    )


if __name__ == "__main__":
    main()
