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

from bench import (
    capture_load,
    digests_scale,
    export_scale,
    generate,
    shared_budget,
    summary_length,
    webhook_pair,
)
from storage.db import Database
from storage.models import EscalationEvent, Observation, Person, Team
from tests.conftest import BACKENDS
from tests.support.databases import PG_ADMIN_URL

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


async def test_summary_length_benchmark_runs_and_the_summary_fits_in_two_messages(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await _generated(db_url)
    argv = ["--url", db_url, "--rows", str(SMOKE_ROWS)]
    await asyncio.to_thread(summary_length.main, argv)
    out = capsys.readouterr().out
    assert "### Monthly summary length" in out
    row = next(line for line in out.splitlines() if line.startswith("| 20,000"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "helsinki, 2026-11"
    assert 1 <= int(cells[2]) <= 2  # messages at Telegram's 4096 characters
    assert int(cells[5]) > 0 and int(cells[7]) == 2  # CSV rows; the CSV and the PDF


async def test_export_benchmark_runs_and_prints_its_figures(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await _generated(db_url)
    await asyncio.to_thread(export_scale.main, ["--url", db_url])
    out = capsys.readouterr().out
    assert "### Export to CSV" in out
    rows = [line for line in out.splitlines() if line.startswith(("| sqlite", "| postgresql"))]
    assert [r.split("|")[3].strip() for r in rows] == ["floor", "havainto", "bare"]
    written = {r.split("|")[4].strip() for r in rows}
    assert len(written) == 1 and int(written.pop().replace(" ", "")) > SMOKE_ROWS * 0.99
    # The floor did exactly the export's work: the two CSV files are the same bytes.
    assert rows[1].split("|")[8].strip() == "yes"


def _rows(out: str, title: str) -> list[list[str]]:
    """The body rows of the Markdown table titled ``title`` in ``out``, as cells."""
    lines = out.split(f"### {title}", 1)[1].split("\n\n", 2)[1].splitlines()
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


CAPTURE_COLUMNS = (
    "rate/s limiter bot updates achieved p50 p95 p99 max lag cpu floor vs_floor fake_cpu "
    "calls 429s saved failures load"
).split()


def _capture_rows(out: str) -> dict[str, dict[str, str]]:
    rows = _rows(out, "Capture, open loop")
    return {row[2]: dict(zip(CAPTURE_COLUMNS, row, strict=True)) for row in rows}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_capture_benchmark_runs_and_prints_its_figures(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A few seconds of open-loop load (short think times) with the production limiter and
    # the fake's flood limit on: the fair floor and the real bot.
    argv = ["--rates", "6", "--duration", "3", "--warmup", "1", "--think", "0.3"]
    argv += ["--variants", "floor", "havainto", "--backend", backend]
    await asyncio.to_thread(capture_load.main, argv)
    out = capsys.readouterr().out
    assert "Commit: `" in out and "### Targets" in out
    rows = _capture_rows(out)
    assert set(rows) == {"floor", "havainto"}, out
    for row in rows.values():
        assert int(row["updates"]) > 0 and float(row["p50"]) > 0, out
        assert row["failures"] == "none", out  # no timeouts, API errors or logged errors
        assert row["429s"] == "0", out  # the limiter kept under Telegram's limits
    saved, entries = rows["havainto"]["saved"].split("/")
    assert int(entries) > 0 and saved == entries, out  # every entry completed was saved
    assert rows["havainto"]["vs_floor"].endswith("x")


@pytest.mark.slow
async def test_capture_while_digests_run(capsys: pytest.CaptureFixture[str]) -> None:
    """The capture load while the weekly digests (10 teams of the generated country) and
    the whole organisation's monthly summary are built and sent by the same bot: every
    entry saved, every step answered, every digest sent, no 429 given up on."""
    argv = ["--rates", "6", "--duration", "2", "--warmup", "1", "--think", "0.3"]
    argv += ["--variants", "floor", "havainto", "--digests", "--digest-rows", "20000"]
    argv += ["--digest-teams", "10"]
    await asyncio.to_thread(capture_load.main, argv)
    out = capsys.readouterr().out
    rows = _capture_rows(out)
    busy = rows["havainto + digests"]
    saved, entries = busy["saved"].split("/")
    assert int(entries) > 0 and saved == entries, out
    assert int(busy["updates"]) > 0 and busy["failures"] == "none", out
    assert busy["429s"] == "0", out
    [digests] = _rows(out, "Digests built and sent during the capture load")
    assert digests[1] == "havainto + digests" and digests[2] == "10", out
    assert digests[-1] == "sent:11", out  # ten weekly digests and one monthly summary


@pytest.mark.skipif(
    not PG_ADMIN_URL, reason="instances share PostgreSQL (HAVAINTO_TEST_DATABASE_URL)"
)
async def test_shared_budget_benchmark_runs_and_prints_its_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    await shared_budget.main(["--instances", "2", "--private", "10", "--to-group", "5"])
    out = capsys.readouterr().out
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| 2 |")]
    assert [row[1].strip() for row in rows] == ["shared", "per instance"], out
    for row in rows:
        assert row[2].strip() == "30 / 30 (30 distinct)", out  # nothing lost or doubled
    assert rows[0][8].strip() == "0 / 0", out  # shared: no 429
    assert rows[0][7].strip() == "0", out  # the arrivals fit Telegram's buckets, no jitter
    assert int(rows[0][5]) <= 30 and int(rows[0][6]) <= 20, out


@pytest.mark.skipif(
    not PG_ADMIN_URL, reason="instances share PostgreSQL (HAVAINTO_TEST_DATABASE_URL)"
)
async def test_webhook_pair_benchmark_kills_one_instance_and_loses_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two instances behind the webhook, one killed half-way: every entry saved once."""
    args = ["--rate", "6", "--duration", "8", "--warmup", "3", "--pg-url", PG_ADMIN_URL]
    await asyncio.to_thread(webhook_pair.main, args)
    out = capsys.readouterr().out
    [row] = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| 6 ")]
    cells = [cell.strip() for cell in row]
    assert cells[1] == "two instances, one killed", out
    served = [int(n) for n in cells[9].split(" / ")]
    assert all(n > 0 for n in served), out  # both instances answered before the kill
    assert cells[11] == "0", out  # no update lost
    # No update handled twice: a reply repeats only where the outbox answered for the
    # killed instance (it may have sent that answer itself), and every entry saved once.
    assert int(cells[12]) <= int(cells[13]), out
    saved, entries = cells[14].split("/")
    assert saved == entries and int(entries) > 0, out
    assert cells[16] == "none", out
