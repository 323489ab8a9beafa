"""Planner statistics: what SQLite needs to choose the digests' indexes well.

SQLite's query planner weighs indexes with statistics that only ``ANALYZE``
gathers (``sqlite_stat1``). Without them it guesses, and for the weekly
digest's "leaders' answers in the week" it guessed wrong: it walked the team's
whole history through ``(team_id, observed_at)`` instead of the week's events
through ``escalation_events.created_at`` -- 62-66 ms instead of 2.5 ms at a
million rows, growing with the table (bench/RESULTS-earlier.md, section 2).

SQLite's usual advice (https://sqlite.org/pragma.html#pragma_optimize) is
``PRAGMA optimize``, which samples each index (``analysis_limit``) to stay
cheap. Sampled statistics were measured not to be enough here: on the
1,000,000-row data set, ``analysis_limit=1000`` (``optimize`` uses about
2,000) estimated a team at 667 rows instead of 2,000 and kept the slow plan;
only larger samples or a full ``ANALYZE`` chose the events' index. A full
``ANALYZE`` reads every index once: 1.0 s at a million rows, once a day.
(And before SQLite 3.46 ``optimize`` only looks at tables the same connection
has queried, so a fresh connection would analyze nothing.)

``refresh_statistics`` is what a deployment runs: daily from the scheduler
(``bot.runtime.jobs``, job ``planner_statistics``) and after migrations
(``Database.upgrade``, at every start; the benchmarks in
``bench.generate.upgraded``). PostgreSQL needs nothing: autovacuum keeps its
statistics.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger("havainto.planner")


class Maintained(Protocol):
    """What the statistics need of ``storage.db.Database`` (named here, not imported:
    the database calls this module when it upgrades, so no import circle)."""

    @property
    def dialect(self) -> str: ...

    def maintenance(self) -> AbstractAsyncContextManager[AsyncSession]: ...


async def refresh_statistics(db: Maintained) -> str | None:
    """Gather SQLite's planner statistics (a full ``ANALYZE``); None on PostgreSQL."""
    if db.dialect != "sqlite":
        return None
    started = time.perf_counter()
    async with db.maintenance() as session:  # a second at a million rows: off the loop
        await session.execute(text("PRAGMA analysis_limit=0"))  # every row: see above
        await session.execute(text("ANALYZE"))
    log.info("planner_statistics ran=ANALYZE seconds=%.2f", time.perf_counter() - started)
    return "ANALYZE"
