"""Retention and the quiet-worker nudge on a fake clock, SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from dateutil.relativedelta import relativedelta
from sqlalchemy import select

from bot.config import Config
from bot.datacare import nudge_quiet_workers, retain
from bot.router import Router
from bot.runtime import Runtime, build_runtime
from bot.runtime.jobs import job_table, quiet_nudge_job, retention_job
from bot.transports.base import CannotEdit, Health
from flows.events import Message, Outbound
from flows.i18n import tn
from storage import audit, enrolment_guard, held, repo
from storage.db import Database
from storage.export import iter_records
from storage.models import (
    AuditEvent,
    Draft,
    EnrolmentFailure,
    EscalationEvent,
    HeldText,
    Observation,
)
from storage.retention import months_before, run_retention
from tests.conftest import TEST_TEAMS, FakeClock
from tests.support.datacare_helpers import World, add, add_status, enrol, observation, seed

NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)


class RecordingTransport:
    """A transport that keeps what it was asked to send (a fake, not a mock)."""

    text_limit = 4096
    finished = None

    def __init__(self, name: str = "telegram") -> None:
        self.name = name
        self.sent: list[Outbound] = []

    async def start(self) -> None: ...

    async def stop_receiving(self) -> None: ...

    async def stop(self) -> None: ...

    async def send_tracked(self, outbound: Outbound) -> str | None:
        self.sent.append(outbound)
        return None

    async def edit(self, chat_id: str, ref: str, message: Message) -> None:
        raise CannotEdit("kept, not edited")

    def is_permanent(self, error: BaseException) -> bool:
        return False

    def health(self) -> Health:
        return Health(running=True)


@pytest.fixture
async def world(make_config: Callable[..., Config]) -> AsyncIterator[World]:
    w = await seed(make_config(), NOW)
    yield w
    await w.db.close()


def snapshot(row: Observation) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in Observation.__table__.columns}


async def all_rows(world: World) -> dict[int, dict[str, Any]]:
    async with world.db.transaction() as session:
        rows = (await session.execute(select(Observation))).scalars().all()
        return {row.id: snapshot(row) for row in rows}


async def audit_rows(world: World, action: str) -> list[AuditEvent]:
    async with world.db.transaction() as session:
        return [e for e in await audit.list_events(session) if e.action == action]


async def add_draft(world: World, person: str, updated: datetime) -> None:
    async with world.db.transaction() as session:
        await repo.store_draft(
            session, world.people[person].person_id, {"step": "x"}, "telegram", "c", updated
        )


def test_months_are_calendar_months() -> None:
    assert months_before(datetime(2026, 3, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert months_before(datetime(2026, 11, 23, tzinfo=UTC), 24) == datetime(
        2024, 11, 23, tzinfo=UTC
    )


async def answers(world: World) -> dict[int, list[tuple[str, str | None]]]:
    async with world.db.transaction() as session:
        query = select(EscalationEvent).order_by(EscalationEvent.id)
        rows = (await session.execute(query)).scalars()
        found: dict[int, list[tuple[str, str | None]]] = {}
        for row in rows:
            found.setdefault(row.observation_id, []).append((row.status, row.text))
        return found


async def test_retention_erases_exactly_what_it_should(world: World) -> None:
    old, recent = world.observations["old"], world.observations["leadership"]
    # A leader's answer on the old entry (about the same case as its text) and one on a
    # recent entry.
    await add_status(world, old, "decided", NOW - timedelta(days=790), "Soitimme asiakkaalle.")
    await add_status(world, recent, "decided", NOW - timedelta(days=1), "Selvitämme jonot.")
    answers_before = await answers(world)
    before = await all_rows(world)
    await add_draft(world, "anna", NOW - timedelta(days=31))
    await add_draft(world, "ben", NOW - timedelta(days=29))
    async with world.db.transaction() as session:
        result = await run_retention(session, NOW, free_text_months=24, draft_days=30)
    assert (result.texts_erased, result.answers_erased, result.drafts_erased) == (1, 1, 1)
    answers_after = await answers(world)
    assert answers_after[old] == [("decided", None)], "the status stays, the text goes"
    assert answers_after[recent] == answers_before[recent]
    assert {k: v for k, v in answers_after.items() if k != old} == {
        k: v for k, v in answers_before.items() if k != old
    }

    after = await all_rows(world)
    for oid, row in before.items():
        if oid == old:
            continue
        assert after[oid] == row  # nothing else touched, not even updated_at
    erased = after[old]
    assert erased["description"] is erased["quote"] is erased["action"] is None
    assert erased["text_erased_at"] == NOW
    for name, value in before[old].items():
        if name not in ("description", "quote", "action", "text_erased_at"):
            assert erased[name] == value, name  # every code kept
    async with world.db.transaction() as session:
        drafts = (await session.execute(select(Draft.person_id))).scalars().all()
    assert drafts == [world.people["ben"].person_id]

    [row] = await audit_rows(world, audit.RETENTION)
    assert (row.actor, row.rows, row.at) == ("scheduler", 3, NOW)
    assert "texts_erased=1" in row.what and "drafts_erased=1" in row.what
    assert "answers_erased=1" in row.what

    # A second run finds nothing, and says so.
    async with world.db.transaction() as session:
        again = await run_retention(session, NOW, free_text_months=24, draft_days=30)
    assert (again.texts_erased, again.answers_erased, again.drafts_erased) == (0, 0, 0)
    assert [r.rows for r in await audit_rows(world, audit.RETENTION)] == [3, 0]

    # The export tells an erased entry from one that never had text.
    async with world.db.transaction() as session:
        records = {r.id: r async for r in iter_records(session)}
    assert records[old].text_erased and records[old].description is None
    assert records[old].theme == "theme.housing"
    assert not records[world.observations["housing"]].text_erased


async def test_retention_erases_wrong_invite_codes_a_day_old(world: World) -> None:
    """The lockout's rows (storage.enrolment_guard) are kept a day at most."""
    async with world.db.transaction() as session:
        for age in (timedelta(days=1, seconds=1), timedelta(hours=23)):
            await enrolment_guard.record_failure(session, "telegram", "9001", NOW - age)
        result = await run_retention(session, NOW, free_text_months=24, draft_days=30)
    assert result.failures_erased == 1
    async with world.db.transaction() as session:
        kept = (await session.execute(select(EnrolmentFailure.failed_at))).scalars().all()
    assert kept == [NOW - timedelta(hours=23)]
    [row] = await audit_rows(world, audit.RETENTION)
    assert "enrolment_failures_erased=1" in row.what
    assert row.rows == result.texts_erased + result.answers_erased + 1


async def test_retention_erases_texts_held_as_long_as_stale_drafts(world: World) -> None:
    """A text waiting at the identifier guard is part of an unfinished entry."""
    member = next(iter(world.people.values()))
    async with world.db.transaction() as session:
        for age in (timedelta(days=31), timedelta(days=29)):
            await held.hold_text(
                session,
                person_id=member.person_id,
                transport="telegram",
                user_id=f"u{age.days}",
                chat_id=f"c{age.days}",
                is_private=True,
                reply_to=None,
                command=None,
                text="Soita 040 123 4567",
                created_at=NOW - age,
            )
        result = await run_retention(session, NOW, free_text_months=24, draft_days=30)
    assert result.held_erased == 1
    async with world.db.transaction() as session:
        kept = (await session.execute(select(HeldText.chat_id))).scalars().all()
    assert kept == ["c29"]
    [row] = await audit_rows(world, audit.RETENTION)
    assert "held_texts_erased=1" in row.what


async def test_retention_boundary_on_a_moving_clock(world: World) -> None:
    housing = world.observations["housing"]  # recorded 20 days before NOW
    recorded = NOW - timedelta(days=20)
    # One second before it is 24 months old: kept. One second after: erased.
    just_before = recorded + relativedelta(months=24) - timedelta(seconds=1)
    for moment, erased in ((just_before, False), (just_before + timedelta(seconds=2), True)):
        async with world.db.transaction() as session:
            await run_retention(session, moment, free_text_months=24, draft_days=30)
        rows = await all_rows(world)
        assert (rows[housing]["quote"] is None) is erased, moment


async def test_daily_job_runs_through_the_runtime(
    make_config: Callable[..., Config], world: World
) -> None:
    clock = FakeClock(NOW)
    runtime = await build_runtime(
        make_config(retention={"free_text_months": 1, "draft_days": 30}), clock, terminal=False
    )
    try:
        result = await retain(runtime.db, runtime.config.retention, clock.now)
        # Everything recorded more than a month ago: "old" and "housing" (20 days: no).
        assert result.texts_erased == 1
        clock.advance(days=40)
        result = await retain(runtime.db, runtime.config.retention, clock.now)
        # 40 days on, every other entry is over a month old, withdrawn ones too.
        assert result.texts_erased == 8
        # The scheduled jobs are these functions, bound to this runtime.
        jobs = {job.id: job.run for job in job_table(runtime)}
        for job_id, function in (("retention", retention_job), ("quiet_nudges", quiet_nudge_job)):
            run = jobs[job_id]
            assert isinstance(run, partial) and run.func is function and run.args == (runtime,)
        await jobs["retention"]()
        await jobs["quiet_nudges"]()
    finally:
        await runtime.stop()
    assert len(await audit_rows(world, audit.RETENTION)) == 3


def nudging(runtime: Runtime, clock: FakeClock) -> tuple[Database, Router, Config, datetime]:
    """The arguments of ``nudge_quiet_workers`` for this runtime, now."""
    return runtime.db, runtime.router, runtime.config, clock.now


async def runtime_with_recorder(
    config: Config, clock: FakeClock
) -> tuple[Runtime, RecordingTransport]:
    runtime = await build_runtime(config, clock, terminal=False)
    recorder = RecordingTransport()
    runtime.router.add(recorder)
    return runtime, recorder


async def test_quiet_workers_get_one_nudge_in_their_language(
    make_config: Callable[..., Config], world: World
) -> None:
    teams = [dict(t) for t in TEST_TEAMS]
    teams[1]["nudge"] = False  # the Vaasa team does not want nudges
    clock = FakeClock(NOW)
    runtime, recorder = await runtime_with_recorder(make_config(teams=teams), clock)
    try:
        leader = await enrol(world, "leader", "hki-etsiva", NOW - timedelta(days=100), "leader")
        dora = await enrol(world, "dora", "hki-etsiva", NOW - timedelta(days=100), lang="en")
        assert leader and dora
        # Now: anna logged 3 days ago, ben 2; dora never in her 100 days: only dora.
        assert await nudge_quiet_workers(*nudging(runtime, clock)) == 1
        [sent] = recorder.sent
        assert isinstance(sent.reply, Message)
        assert sent.reply.text == tn("en", "nudge.quiet", 14, "datacare", days=14)
        assert sent.chat_id == world.chat_ids[-1] and sent.transport == "telegram"
        assert await nudge_quiet_workers(*nudging(runtime, clock)) == 0  # one nudge, not one a day

        clock.advance(days=15)
        recorder.sent.clear()
        # anna (18 days) and ben (17 days) now; cecilia's team is off; the leader never.
        assert await nudge_quiet_workers(*nudging(runtime, clock)) == 2
        texts = {o.chat_id: o.reply.text for o in recorder.sent if isinstance(o.reply, Message)}
        assert set(texts) == {world.chat_ids[0], world.chat_ids[1]}
        assert set(texts.values()) == {tn("fi", "nudge.quiet", 14, "datacare", days=14)}

        # anna logs again, goes quiet again: a new nudge after 14 more days, not before.
        clock.advance(hours=1)
        await add(world, "anna-again", observation(world.people["anna"], clock.now, "helsinki"))
        clock.advance(days=13)
        assert await nudge_quiet_workers(*nudging(runtime, clock)) == 0
        clock.advance(days=2)
        recorder.sent.clear()
        assert await nudge_quiet_workers(*nudging(runtime, clock)) == 1
        assert recorder.sent[0].chat_id == world.chat_ids[0]
        assert [r.rows for r in await audit_rows(world, audit.NUDGES)] == [1, 2, 1]
    finally:
        await runtime.stop()


async def test_nudges_off_and_revoked_people_are_left_alone(
    make_config: Callable[..., Config], world: World
) -> None:
    clock = FakeClock(NOW + timedelta(days=30))
    runtime, recorder = await runtime_with_recorder(
        make_config(reminders={"enabled": False}), clock
    )
    try:
        assert await nudge_quiet_workers(*nudging(runtime, clock)) == 0
    finally:
        await runtime.stop()
    runtime, recorder = await runtime_with_recorder(make_config(), clock)
    try:
        from storage.admin import revoke_person

        async with world.db.transaction() as session:
            await revoke_person(session, world.people["ben"].pseudonym, "test", clock.now)
        assert await nudge_quiet_workers(*nudging(runtime, clock)) == 2  # anna and cecilia, not ben
        assert world.chat_ids[1] not in {o.chat_id for o in recorder.sent}
    finally:
        await runtime.stop()
