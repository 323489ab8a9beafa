"""Smoke runs of the benchmarks in ``bench/``: small sizes, no timing assertions.

The full runs (1,000,000 rows, up to 1,000 workers) are not part of the test
suite; their figures are in ``bench/RESULTS.md``. These tests only check that
each benchmark still runs end to end against the current code -- generator,
digest engine, export, the real Telegram runtime -- and prints its figures,
on SQLite and, with ``HAVAINTO_TEST_DATABASE_URL``, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from bench import capture_load, digests_scale, export_scale, generate
from storage.db import Database
from storage.models import EscalationEvent, Observation, Person, Team
from tests.conftest import BACKENDS

SMOKE_ROWS = 20_000


async def _generated(db_url: str, rows: int = SMOKE_ROWS) -> None:
    await generate.generate(db_url, rows)


async def test_generator_makes_a_realistic_country(db_url: str) -> None:
    await _generated(db_url)
    db = Database(db_url)
    try:
        async with db.transaction() as session:

            async def scalar(query: Any) -> int:
                return int((await session.execute(query)).scalar_one())

            assert await scalar(select(func.count(Observation.id))) == SMOKE_ROWS
            assert await scalar(select(func.count(Team.id))) == generate.TEAMS
            assert await scalar(select(func.count(func.distinct(Team.region)))) == 22
            assert await scalar(select(func.count(Person.id))) == generate.PEOPLE
            assert await scalar(select(func.count(EscalationEvent.id))) > 0
            themes = dict(
                (
                    await session.execute(
                        select(Observation.theme, func.count()).group_by(Observation.theme)
                    )
                ).all()
            )
            # Zipf-like and a winter: housing leads, and by far.
            assert max(themes, key=themes.__getitem__) == "theme.housing"
            assert themes["theme.housing"] > 4 * themes["theme.other"]
            shl48 = await scalar(
                select(func.count()).where(Observation.escalation == "escalation.shl48")
            )
            assert 0 < shl48 < SMOKE_ROWS * 0.05
            newest = (
                await session.execute(select(Observation).order_by(Observation.id.desc()).limit(1))
            ).scalar_one()
            # Times read back through the ORM as aware UTC, in the last day of the data set.
            assert newest.observed_at.tzinfo is not None
            assert newest.observed_at.astimezone(generate.HELSINKI).date() == generate.DEFAULT_END
            assert newest.description and newest.team_id and newest.region
    finally:
        await db.close()


def test_a_smaller_data_set_is_the_newest_part_of_a_larger_one() -> None:
    # The rows of the newest days do not depend on how far back the data set reaches.
    end = generate.DEFAULT_END
    small = generate.generate_day(1, end, end)
    again = generate.generate_day(1, end, end)
    assert small["description"] == again["description"]
    first_small, _ = generate.plan_days(20_000, 1, end)
    first_large, _ = generate.plan_days(100_000, 1, end)
    assert first_large < first_small <= end


async def test_digest_benchmark_runs_and_prints_its_figures(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await _generated(db_url)
    argv = ["--url", db_url, "--repeat", "1", "--max-teams", "3"]
    await asyncio.to_thread(digests_scale.main, argv)
    out = capsys.readouterr().out
    assert "### Digests" in out and "### Targets" in out
    assert "one team's weekly digest < 100 ms" in out
    assert "weekly digest / bare SQL aggregate" in out
    row = next(line for line in out.splitlines() if line.startswith(("| sqlite", "| postgresql")))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "20 000"
    assert int(cells[2].replace(" ", "")) > 0  # observations in the busiest team's week
    assert re.fullmatch(r"[\d.]+ \([\d.]+\)", cells[3])  # weekly digest: median (cold)


async def test_export_benchmark_runs_and_prints_its_figures(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await _generated(db_url)
    await asyncio.to_thread(export_scale.main, ["--url", db_url])
    out = capsys.readouterr().out
    assert "### Export to CSV" in out
    rows = [line for line in out.splitlines() if line.startswith(("| sqlite", "| postgresql"))]
    assert [r.split("|")[3].strip() for r in rows] == ["baseline", "havainto"]
    written = {r.split("|")[4].strip() for r in rows}
    assert len(written) == 1 and int(written.pop().replace(" ", "")) > SMOKE_ROWS * 0.99


@pytest.mark.parametrize("backend", BACKENDS)
async def test_capture_benchmark_runs_and_prints_its_figures(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await asyncio.to_thread(capture_load.main, ["--workers", "5", "--backends", backend])
    out = capsys.readouterr().out
    assert "### Capture under load" in out and "### Targets" in out
    lines = [line for line in out.splitlines() if line.startswith("| 5 ")]
    assert len(lines) == 4, out
    baseline, our_ptb, ours, service = (
        [c.strip() for c in line.strip("|").split("|")] for line in lines
    )
    assert baseline[1] == "baseline (bare PTB)" and our_ptb[1] == "baseline (our PTB setup)"
    assert ours[1] == f"havainto ({backend})" and service[1] == f"service only ({backend})"
    for row in (baseline, our_ptb, ours, service):
        assert row[2] == "35"  # five workers, a text and six taps each
        assert row[14] == "none", out  # no timeouts, API errors or logged errors
        assert float(row[3]) > 0 and float(row[4]) > 0  # updates/s and p50 printed
    assert ours[13] == service[13] == "5/5", out  # every observation saved
