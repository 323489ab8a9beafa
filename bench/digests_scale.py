"""Digests at scale: the weekly team digest and the monthly summary on 100,000 and 1,000,000 rows.

    python -m bench.digests_scale --rows 100000 1000000 --backends sqlite postgresql

The data sets come from ``bench.generate`` (made on first use, then kept). A
smaller data set is exactly the most recent part of a larger one, so the week
and the month measured hold the same rows at every size and only the length of
the table changes: a ratio near 1.0 between sizes means the cost follows the
rows in the period, not the size of the table.

Each data set is measured in a fresh process (so its peak memory is its own):

* **weekly**: ``weekly_digest_data`` + ``render_weekly`` (text, HTML and the PNG
  chart) for the busiest team, week 2026-W47;
* **monthly**: ``monthly_summary_data`` + ``render_monthly`` for the largest
  region (Helsinki), October 2026; and for the whole organisation;
* **all weekly**: the 500 weekly digests of the week, built and rendered one
  after the other (one session each, as the scheduler does), without sending;
* **bare SQL**: the aggregate the digest cannot do without -- the period's
  count per theme over the same index range -- through the bare driver
  (``sqlite3`` / ``asyncpg``), the floor the digest is compared to.

SQLite data sets get the planner statistics a deployment has
(``storage.planner.refresh_statistics``, run by the app after migrations and
daily); ``--no-statistics`` skips that (a data set first made so has none).

Every digest reads through ``Database.snapshot()``, the read path the bot's
digest desk uses. Times are the median of ``--repeat`` warm runs; the first run
of each in a fresh process (cold: caches, imports and the snapshot connection
made on first use) is shown in brackets. The slowest statements of one weekly
and one monthly digest are listed with ``--explain`` (and their query plans), to
say precisely where time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench.common import (
    DEFAULT_PG_URL,
    Table,
    asyncpg_dsn,
    human,
    measure_in_process,
    print_header,
    rss_bytes,
    verdict,
)

REGION = "helsinki"
TARGETS = {
    "weekly": 0.100,
    "monthly": 0.500,
    "monthly_cold": 1.0,
    "all_weekly": 30.0,
    "peak_mb": 300.0,
    "ratio": 1.5,
}


def periods(end: date) -> tuple[str, str]:
    """The last full ISO week up to ``end`` and the last full month before it."""
    from digests.periods import shift_month, week_of

    last_sunday = end - timedelta(days=(end.weekday() + 1) % 7)
    week = week_of(last_sunday)
    month = shift_month(f"{end.year:04d}-{end.month:02d}", -1)
    return week, month


# --- statement timing ------------------------------------------------------------------


class StatementLog:
    """Wall time of each SQL statement an engine runs (for "where does the time go")."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.enabled = False
        self.entries: list[tuple[float, str, Any]] = []
        self._started: dict[int, float] = {}
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.enabled:
            self._started[id(cursor)] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        started = self._started.pop(id(cursor), None)
        if self.enabled and started is not None:
            self.entries.append((time.perf_counter() - started, statement, parameters))


# --- one data set, in its own process -----------------------------------------------------


async def _timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return {"cold": times[0], "median": statistics.median(times[1:]), "max": max(times[1:])}


def _bare_sqlite(path: str, sql: str, params: tuple[Any, ...]) -> Callable[[], Awaitable[Any]]:
    conn = sqlite3.connect(path)

    async def run() -> Any:
        return conn.execute(sql, params).fetchall()

    return run


def _sqlite_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


BARE_WEEK = (
    "SELECT theme, count(*) FROM observations WHERE team_id = {p1} AND observed_at >= {p2}"
    " AND observed_at < {p3} AND withdrawn_at IS NULL GROUP BY theme"
)
BARE_MONTH = (
    "SELECT theme, count(*) FROM observations WHERE region = {p1} AND observed_at >= {p2}"
    " AND observed_at < {p3} AND withdrawn_at IS NULL GROUP BY theme"
)


async def measure(
    url: str, seed: int, end: date, repeat: int, explain: bool, max_teams: int | None = None
) -> dict[str, Any]:
    import numpy as np
    from sqlalchemy import select
    from sqlalchemy.engine import make_url

    from bench.generate import country
    from digests.periods import iso_week_bounds, month_bounds
    from digests.render import render_monthly, render_weekly
    from storage.db import Database
    from storage.digest_queries import monthly_summary_data, weekly_digest_data
    from storage.models import Team

    land = country(seed)
    team = land.team_ids[int(np.argmax(land.team_p))]
    team_lang = land.team_languages[land.team_ids.index(team)]
    week, month = periods(end)
    week_start, week_end = iso_week_bounds(week)
    month_start, month_end = month_bounds(month)
    rss_before = rss_bytes()
    db = Database(url)
    # Digests read through the snapshot engine, as DigestDesk does (on SQLite a read-only
    # connection on aiosqlite's thread; on PostgreSQL a REPEATABLE READ transaction).
    snapshot_engine = (
        db._side_sessions("read_only").kw["bind"].sync_engine
        if db.dialect == "sqlite"
        else db.engine.sync_engine
    )
    statements = StatementLog(snapshot_engine)
    out: dict[str, Any] = {"team": team, "week": week, "month": month, "region": REGION}

    async def weekly(team_id: str = team, lang: str = team_lang) -> Any:
        async with db.snapshot() as session:
            data = await weekly_digest_data(session, team_id, week)
        return render_weekly(data, lang)

    async def weekly_data() -> Any:
        async with db.snapshot() as session:
            return await weekly_digest_data(session, team, week)

    async def monthly(region: str | None = REGION) -> Any:
        async with db.snapshot() as session:
            data = await monthly_summary_data(session, region, month)
        return render_monthly(data, "fi")

    async def monthly_data() -> Any:
        async with db.snapshot() as session:
            return await monthly_summary_data(session, REGION, month)

    try:
        out["weekly"] = await _timed(weekly, repeat)
        out["weekly_data"] = await _timed(weekly_data, repeat)
        out["monthly"] = await _timed(monthly, repeat)
        out["monthly_data"] = await _timed(monthly_data, repeat)
        out["monthly_all"] = await _timed(lambda: monthly(None), max(1, repeat // 2))
        async with db.sessions() as session:
            teams = [(t.id, t.language) for t in (await session.execute(select(Team))).scalars()]
        teams = teams[:max_teams] if max_teams else teams

        async def all_weekly() -> None:
            for team_id, lang in teams:
                await weekly(team_id, lang)

        started = time.perf_counter()
        await all_weekly()
        out["all_weekly"] = {"seconds": time.perf_counter() - started, "teams": len(teams)}

        # The bare aggregate through the bare driver, same index ranges.
        if db.dialect == "sqlite":
            path = str(make_url(url).database)
            q = {"p1": "?", "p2": "?", "p3": "?"}
            bare_week = _bare_sqlite(
                path,
                BARE_WEEK.format(**q),
                (team, _sqlite_time(week_start), _sqlite_time(week_end)),
            )
            bare_month = _bare_sqlite(
                path,
                BARE_MONTH.format(**q),
                (REGION, _sqlite_time(month_start), _sqlite_time(month_end)),
            )
        else:
            import asyncpg

            conn = await asyncpg.connect(asyncpg_dsn(url))
            q = {"p1": "$1", "p2": "$2", "p3": "$3"}

            async def bare_week() -> Any:
                return await conn.fetch(BARE_WEEK.format(**q), team, week_start, week_end)

            async def bare_month() -> Any:
                return await conn.fetch(BARE_MONTH.format(**q), REGION, month_start, month_end)

        out["bare_week"] = await _timed(bare_week, repeat)
        out["bare_month"] = await _timed(bare_month, repeat)
        out["week_rows"] = sum(n for _, n in await bare_week())
        out["month_rows"] = sum(n for _, n in await bare_month())

        # Where the time goes: each statement of one weekly and one monthly digest.
        out["statements"] = {}
        for name, fn in (("weekly", weekly_data), ("monthly", monthly_data)):
            statements.entries.clear()
            statements.enabled = True
            await fn()
            statements.enabled = False
            slowest = sorted(statements.entries, key=lambda e: e[0], reverse=True)
            out["statements"][name] = {
                "count": len(statements.entries),
                "seconds": sum(e[0] for e in statements.entries),
                "slowest": [
                    {
                        "ms": e[0] * 1000,
                        "sql": " ".join(e[1].split())[:160],
                        "plan": await _plan(db, e[1], e[2]) if explain else None,
                    }
                    for e in slowest[:3]
                ],
            }
        if db.dialect != "sqlite":
            await conn.close()
    finally:
        await db.close()
    out["rss_before"] = rss_before
    out["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


async def _plan(db: Any, statement: str, parameters: Any) -> str:
    """The query plan of one statement, on either backend."""
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        if db.dialect == "sqlite":
            cursor = await driver.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            rows = await cursor.fetchall()
            return "\n".join(str(r[-1]) for r in rows)
        rows = await driver.fetch("EXPLAIN ANALYZE " + statement, *parameters)
        return "\n".join(r[0] for r in rows)


def one_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.digests_scale one")
    parser.add_argument("--url", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--end", type=date.fromisoformat, required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--max-teams", type=int)
    args = parser.parse_args(argv)
    result = asyncio.run(
        measure(args.url, args.seed, args.end, args.repeat, args.explain, args.max_teams)
    )
    print(json.dumps(result))


# --- the driver and the report ---------------------------------------------------------------


async def run_one(
    url: str, seed: int, end: date, repeat: int, explain: bool, max_teams: int | None = None
) -> dict[str, Any]:
    args = ["--url", url, "--seed", str(seed), "--end", end.isoformat(), "--repeat", str(repeat)]
    args += ["--explain"] if explain else []
    args += ["--max-teams", str(max_teams)] if max_teams else []
    return await measure_in_process("bench.digests_scale", args, f"digest measurement on {url}")


async def bench(
    rows_list: list[int],
    backends: list[str],
    pg_url: str,
    seed: int,
    repeat: int,
    explain: bool,
    urls: list[str] | None = None,
    max_teams: int | None = None,
    statistics: bool = True,
) -> list[tuple[str, int, dict[str, Any]]]:
    """Measure each data set (made first when missing), or the databases at ``urls``."""
    from bench.generate import DEFAULT_END, count_observations, ensure_dataset, upgraded
    from storage.db import normalise_url

    targets: list[tuple[str, int, str]] = []
    if urls:
        for url in urls:
            backend = "sqlite" if normalise_url(url).startswith("sqlite") else "postgresql"
            rows = await count_observations(url)
            targets.append((backend, rows, await upgraded(url, statistics)))
    else:
        for backend in backends:
            for rows in rows_list:
                url = await ensure_dataset(backend, rows, seed, pg_url, statistics)
                targets.append((backend, rows, url))
    results = []
    for backend, rows, url in targets:
        result = await run_one(url, seed, DEFAULT_END, repeat, explain, max_teams)
        results.append((backend, rows, result))
    return results


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def report(results: list[tuple[str, int, dict[str, Any]]], explain: bool) -> None:
    first = results[0][2]
    print(
        f"Team {first['team']} (the busiest), week {first['week']}; region {first['region']}, "
        f"month {first['month']}. Times in ms: median of warm runs (cold run in brackets).\n"
    )
    table = Table(
        "Digests",
        (
            "backend",
            "table rows",
            "week rows",
            "weekly digest",
            "of which queries",
            "render + chart",
            "bare SQL (week)",
            "weekly vs bare",
            "month rows",
            "monthly summary",
            "of which queries",
            "render + chart",
            "bare SQL (month)",
            "monthly vs bare",
            "whole org. monthly",
            "all weekly digests, s",
            "RSS before MB",
            "peak RSS MB",
            "load avg",
        ),
    )
    for backend, rows, r in results:
        table.add(
            backend,
            human(rows),
            human(r["week_rows"]),
            f"{_ms(r['weekly']['median'])} ({_ms(r['weekly']['cold'])})",
            _ms(r["weekly_data"]["median"]),
            _ms(r["weekly"]["median"] - r["weekly_data"]["median"]),
            _ms(r["bare_week"]["median"]),
            f"{r['weekly']['median'] / r['bare_week']['median']:.0f}x",
            human(r["month_rows"]),
            f"{_ms(r['monthly']['median'])} ({_ms(r['monthly']['cold'])})",
            _ms(r["monthly_data"]["median"]),
            _ms(r["monthly"]["median"] - r["monthly_data"]["median"]),
            _ms(r["bare_month"]["median"]),
            f"{r['monthly']['median'] / r['bare_month']['median']:.0f}x",
            _ms(r["monthly_all"]["median"]),
            f"{r['all_weekly']['seconds']:.1f} ({r['all_weekly']['teams']} teams)",
            f"{r['rss_before'] / 1e6:.0f}",
            f"{r['peak'] / 1e6:.0f}",
            r["load"],
        )
    table.print()

    statements = Table(
        "Where the time goes (one run, slowest statements)",
        ("backend", "table rows", "digest", "statements", "SQL total ms", "slowest ms", "SQL"),
    )
    for backend, rows, r in results:
        for name in ("weekly", "monthly"):
            s = r["statements"][name]
            for i, slow in enumerate(s["slowest"]):
                statements.add(
                    backend if i == 0 else "",
                    human(rows) if i == 0 else "",
                    name if i == 0 else "",
                    s["count"] if i == 0 else "",
                    f"{s['seconds'] * 1000:.1f}" if i == 0 else "",
                    f"{slow['ms']:.1f}",
                    "`" + slow["sql"][:110] + "`",
                )
    statements.print()
    if explain:
        for backend, rows, r in results:
            for name in ("weekly", "monthly"):
                for slow in r["statements"][name]["slowest"][:1]:
                    print(f"#### Plan of the slowest {name} statement, {backend}, {human(rows)}")
                    print(f"```\n{slow['sql']}\n--\n{slow['plan']}\n```\n")

    targets = Table("Targets", ("target", "backend", "measured", "verdict"))
    largest = max(rows for _, rows, _ in results)
    smallest = min(rows for _, rows, _ in results)
    by = {(b, n): r for b, n, r in results}
    for backend in dict.fromkeys(b for b, _, _ in results):
        r = by[(backend, largest)]
        label = f"{backend}, {human(largest)} rows"
        weekly, monthly = r["weekly"]["median"], r["monthly"]["median"]
        targets.add(
            "one team's weekly digest < 100 ms",
            label,
            f"{_ms(weekly)} ms",
            verdict(weekly < TARGETS["weekly"]),
        )
        targets.add(
            "one region's monthly summary < 500 ms",
            label,
            f"{_ms(monthly)} ms",
            verdict(monthly < TARGETS["monthly"]),
        )
        cold = r["monthly"]["cold"]
        targets.add(
            "one region's monthly summary < 1 s cold (first after start)",
            label,
            f"{_ms(cold)} ms",
            verdict(cold < TARGETS["monthly_cold"]),
        )
        all_s = r["all_weekly"]["seconds"]
        targets.add(
            "all 500 weekly digests < 30 s",
            label,
            f"{all_s:.1f} s",
            verdict(all_s < TARGETS["all_weekly"]),
        )
        peak = r["peak"] / 1e6
        targets.add("peak memory < 300 MB", label, f"{peak:.0f} MB", verdict(peak < 300))
        if smallest != largest:
            s = by[(backend, smallest)]
            for name, key in (("weekly", "weekly"), ("monthly", "monthly")):
                value = r[key]["median"] / s[key]["median"]
                targets.add(
                    f"{name}: {human(largest)} / {human(smallest)} rows < 1.5",
                    backend,
                    f"{value:.2f}",
                    verdict(value < TARGETS["ratio"]),
                )
            for name, key in (("weekly", "weekly_data"), ("monthly", "monthly_data")):
                value = r[key]["median"] / s[key]["median"]
                targets.add(
                    f"{name}, queries only: {human(largest)} / {human(smallest)} rows < 1.5",
                    backend,
                    f"{value:.2f}",
                    verdict(value < TARGETS["ratio"]),
                )
            value = r["all_weekly"]["seconds"] / s["all_weekly"]["seconds"]
            targets.add(
                f"all weekly: {human(largest)} / {human(smallest)} rows < 1.5",
                backend,
                f"{value:.2f}",
                verdict(value < TARGETS["ratio"]),
            )
        targets.add(
            "weekly digest / bare SQL aggregate (reported)",
            label,
            f"{weekly / r['bare_week']['median']:.0f}x",
            "-",
        )
        targets.add(
            "monthly summary / bare SQL aggregate (reported)",
            label,
            f"{monthly / r['bare_month']['median']:.0f}x",
            "-",
        )
    targets.print()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["one"]:
        one_main(argv[1:])
        return
    parser = argparse.ArgumentParser(
        prog="python -m bench.digests_scale",
        description="Time the weekly digest, the monthly summary and all 500 weekly digests "
        "on data sets of different sizes, against the bare SQL aggregate.",
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--backends", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"]
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server (admin URL)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5, help="warm runs per measurement")
    parser.add_argument("--explain", action="store_true", help="print query plans")
    parser.add_argument(
        "--url",
        action="append",
        help="measure this database (made by bench.generate) instead of --rows/--backends",
    )
    parser.add_argument(
        "--max-teams", type=int, help="build only this many of the weekly digests (smoke runs)"
    )
    parser.add_argument(
        "--no-statistics",
        action="store_true",
        help="do not refresh SQLite's planner statistics (a data set first made so has none)",
    )
    args = parser.parse_args(argv)
    print_header("Digests at scale", ("python -m bench.digests_scale " + " ".join(argv)).strip())
    results = asyncio.run(
        bench(
            args.rows,
            args.backends,
            args.pg_url,
            args.seed,
            args.repeat,
            args.explain,
            args.url,
            args.max_teams,
            not args.no_statistics,
        )
    )
    report(results, args.explain)


if __name__ == "__main__":
    main()
