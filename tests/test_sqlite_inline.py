"""The inline SQLite driver (storage.sqlite_inline): units of work that do not give the
event loop away, and a write lock held by someone else waited for on the loop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

import storage.sqlite_inline as inline
from storage import repo
from storage.db import Database
from storage.models import ProcessedEvent

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'inline.db'}")
    await database.upgrade()
    try:
        yield database
    finally:
        await database.close()


class Ticker:
    """Counts how often the event loop gets to run something else."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def test_the_libraries_it_imitates_are_the_pinned_ones() -> None:
    """The module stands in for aiosqlite's connection and cursor inside SQLAlchemy's
    aiosqlite dialect (their internals, not their documented surface): both are pinned
    exactly in pyproject.toml, and another version fails here first."""
    assert version("aiosqlite") == "0.22.1", "moved the pin? run these tests and the benchmark"
    assert version("sqlalchemy") == "2.1.9", "moved the pin? run these tests and the benchmark"


async def test_a_unit_of_work_runs_without_giving_the_loop_away(db: Database) -> None:
    async with Ticker() as ticker:
        seen: dict[str, int] = {}
        engine = db.engine.sync_engine
        event.listen(engine, "begin", lambda _conn: seen.setdefault("begin", ticker.ticks))
        event.listen(engine, "commit", lambda _conn: seen.setdefault("commit", ticker.ticks))
        async with db.transaction() as session:
            for n in range(5):
                assert await repo.first_time_seen(session, "telegram", f"e{n}", NOW)
            assert await repo.find_member(session, "telegram", "nobody") is None
        # From BEGIN IMMEDIATE to COMMIT (five inserts and a select) no other task ran:
        # the write lock is held for the unit of work's own work only.
        assert seen["commit"] == seen["begin"]
    async with db.snapshot() as session:
        assert (await session.execute(select(func.count(ProcessedEvent.event_id)))).scalar() == 5


async def test_a_lock_held_elsewhere_is_waited_for_on_the_loop(
    db: Database, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "inline.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing
    try:

        async def write() -> bool:
            async with db.transaction() as session:
                return await repo.first_time_seen(session, "telegram", "waited", NOW)

        async with Ticker() as ticker:
            writing = asyncio.create_task(write())
            await asyncio.sleep(0.3)
            assert not writing.done(), "the write went on while the lock was held"
            assert ticker.ticks > 10, "the loop was blocked while waiting for the lock"
            other.execute("COMMIT")
            assert await asyncio.wait_for(writing, 5) is True
    finally:
        other.close()


async def test_a_lock_never_released_fails_after_the_busy_timeout(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inline, "BUSY_TIMEOUT_S", 0.2)
    other = sqlite3.connect(tmp_path / "inline.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(OperationalError, match="locked"):
            async with db.transaction() as session:
                await repo.first_time_seen(session, "telegram", "never", NOW)
        assert 0.15 < loop.time() - started < 2
    finally:
        other.execute("ROLLBACK")
        other.close()
    async with db.transaction() as session:  # and the database is usable afterwards
        assert await repo.first_time_seen(session, "telegram", "after", NOW)
