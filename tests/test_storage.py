"""Storage and the service on a real database, SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import inspect, select
from sqlalchemy import text as sql

from bot.config import Config
from bot.service import Havainto
from flows import commands
from flows.events import Alert, ChoiceIn, CommandIn, Incoming, Message, Outbound, TextIn
from flows.i18n import t
from flows.taxonomy import TAXONOMY_VERSION
from storage import enrolment_guard, repo, schedule
from storage.db import Database, alembic_config
from storage.models import (
    Draft,
    EnrolmentFailure,
    Identity,
    Invite,
    Observation,
    Person,
    ProcessedEvent,
    Team,
)
from tests.conftest import FakeClock
from tests.support.db import count


@pytest.fixture
async def service(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[Havainto]:
    config = make_config()
    db = Database(config.database.url)
    svc = Havainto(config, db, clock)
    await svc.prepare()
    yield svc
    await db.close()


class Chat:
    """A worker on the neutral interface: what a transport would hand the service."""

    def __init__(self, service: Havainto, user: str = "1001", transport: str = "terminal") -> None:
        self.service, self.user, self.transport = service, user, transport
        self.last: list[Outbound] = []
        self._event = 0

    async def send(self, event: object, event_id: str | None = None) -> list[Outbound]:
        self._event += 1
        incoming = Incoming(
            self.transport,
            self.user,
            f"chat-{self.user}",
            event,  # type: ignore[arg-type]
            event_id=event_id or f"{self.user}-{self._event}",
        )
        self.last = await self.service.handle(incoming)
        return self.last

    def texts(self) -> list[str]:
        return [o.reply.text for o in self.last if isinstance(o.reply, Message | Alert)]

    async def tap(self, value: str) -> list[Outbound]:
        for outbound in reversed(self.last):
            if isinstance(outbound.reply, Message):
                for choice in outbound.reply.flat_choices():
                    if choice.data.endswith(value) or choice.data.startswith(value + ":"):
                        return await self.send(ChoiceIn(choice.data))
        raise AssertionError(f"no button {value!r} in {self.texts()}")


async def enrolled(service: Havainto, user: str = "1001", team: str = "hki-etsiva") -> Chat:
    code = await service.create_invite(team, "worker", timedelta(days=7))
    chat = Chat(service, user)
    await chat.send(CommandIn("start", code))
    assert "Helsingin etsivät" in chat.texts()[0]
    return chat


async def test_schema_is_migrated_and_upgrade_is_idempotent(service: Havainto) -> None:
    await service.db.upgrade()
    async with service.db.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {
        "observations",
        "drafts",
        "people",
        "identities",
        "invites",
        "enrolment_failures",
        "alembic_version",
    } <= tables


async def test_migrations_0007_and_0006_downgrade_and_upgrade_again(service: Havainto) -> None:
    """The newest migrations run both ways on the backend (the enrolment lockout's table;
    held texts, pending confirmations and ``observations.draft_key``)."""
    config = alembic_config(service.db.url)

    async def tables() -> set[str]:
        async with service.db.engine.connect() as conn:
            return await conn.run_sync(lambda c: set(inspect(c).get_table_names()))

    async def revision() -> str:
        async with service.db.engine.connect() as conn:
            return str(
                (await conn.execute(sql("SELECT version_num FROM alembic_version"))).scalar()
            )

    async def fail() -> None:
        async with service.db.transaction() as session:
            await enrolment_guard.record_failure(session, "terminal", "666", service.clock())

    await fail()
    assert await count(service.db, EnrolmentFailure) == 1
    await service.db.engine.dispose()  # no pooled connection holds the table
    # Alembic's env runs its own event loop: give it a thread.
    await asyncio.to_thread(command.downgrade, config, "0005")
    assert not {"enrolment_failures", "held_texts", "pending_confirmations"} & await tables()
    assert await revision() == "0005"
    await asyncio.to_thread(command.upgrade, config, "0006")
    assert {"held_texts", "pending_confirmations"} <= await tables()
    assert "enrolment_failures" not in await tables()
    await asyncio.to_thread(command.upgrade, config, "0007")
    assert "enrolment_failures" in await tables()
    assert await revision() == "0007"
    await asyncio.to_thread(command.upgrade, config, "head")
    await fail()
    assert await count(service.db, EnrolmentFailure) == 1


async def test_migration_0008_scheduled_runs_both_ways(service: Havainto) -> None:
    """``scheduled_runs`` (the scheduler's next runs) comes with 0008 and goes with its
    downgrade; its rows are written once per job however often they are stored."""
    config = alembic_config(service.db.url)
    first = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    runs = {
        "weekly_digests": schedule.StoredRun("cron[...] Europe/Helsinki", first),
        "retention": schedule.StoredRun(None, None),
    }
    async with service.db.transaction() as session:
        await schedule.store_runs(session, runs)
    moved = {"weekly_digests": runs["weekly_digests"]._replace(next_run_time=first + timedelta(7))}
    async with service.db.transaction() as session:
        await schedule.store_runs(session, moved)
        assert await schedule.stored_runs(session) == {**runs, **moved}
    await service.db.engine.dispose()

    async def tables() -> set[str]:
        async with service.db.engine.connect() as conn:
            return await conn.run_sync(lambda c: set(inspect(c).get_table_names()))

    await asyncio.to_thread(command.downgrade, config, "0007")
    assert "scheduled_runs" not in await tables()
    await asyncio.to_thread(command.upgrade, config, "head")
    assert "scheduled_runs" in await tables()
    async with service.db.transaction() as session:
        assert await schedule.stored_runs(session) == {}


async def test_times_come_back_aware_utc(service: Havainto) -> None:
    helsinki = datetime(2026, 3, 29, 3, 30, tzinfo=UTC).astimezone()
    async with service.db.transaction() as session:
        await repo.set_state(session, "k", "v")
        invite = await repo.create_invite(session, "hki-etsiva", "worker", helsinki, timedelta(1))
    async with service.db.transaction() as session:
        stored = await repo.get_state(session, "k")
        row = await session.get(type(invite), invite.code)
        assert row is not None
    assert stored == "v"
    assert row.created_at == helsinki and row.created_at.tzinfo is not None
    assert row.created_at.utcoffset() == timedelta(0)


async def test_a_draft_is_written_as_a_row_and_read_back_in_the_same_session(
    service: Havainto, clock: FakeClock
) -> None:
    # The capture path reads and writes the draft as a table row (storage.repo.draft_state,
    # store_draft); an ORM Draft loaded earlier in the session must not hide what it wrote.
    await service.enrol_directly("terminal", "77", "chat-77", "hki-etsiva")
    async with service.db.transaction() as session:
        member = await repo.find_member(session, "terminal", "77")
        assert member is not None
        person = member.person_id
        assert await repo.draft_state(session, person) is None
        await repo.store_draft(session, person, {"step": "a"}, "terminal", "c", clock(), new=True)
        assert await repo.draft_state(session, person) == {"step": "a"}
        loaded = await repo.load_draft(session, person)  # an ORM object in the session
        assert loaded is not None and loaded.state == {"step": "a"}
        later = clock() + timedelta(minutes=5)
        await repo.store_draft(session, person, {"step": "b"}, "terminal", "d", later)
        again = await repo.load_draft(session, person)
        assert again is not None and again.state == {"step": "b"} and again.chat_id == "d"
        assert again.updated_at == later and again.created_at == clock()
        await repo.store_draft(session, person, {"step": "c"}, "terminal", "d", later, new=False)
        assert await repo.draft_state(session, person) == {"step": "c"}
        await repo.delete_draft(session, person)
        # Not known whether one exists (None): it finds none and inserts.
        await repo.store_draft(session, person, {"step": "d"}, "terminal", "e", later)
    async with service.db.transaction() as session:
        assert await repo.draft_state(session, person) == {"step": "d"}
        [row] = (await session.execute(select(Draft))).scalars().all()
        assert (row.person_id, row.chat_id, row.reminded_at) == (person, "e", None)


async def test_full_entry_is_stored_with_its_metadata(service: Havainto, clock: FakeClock) -> None:
    chat = await enrolled(service)
    await chat.send(TextIn("Nuorten asuntojono on nyt puoli vuotta 🏠"))
    for value in ("theme.housing", "group.youth", "signal.queues", "frequency.growing"):
        await chat.tap(value)
    await chat.tap("escalation.leadership")
    await chat.tap("details")
    await chat.tap("area")
    await chat.tap("itakeskus")
    await chat.tap("done")
    clock.advance(minutes=2)
    await chat.tap("save")
    assert chat.texts()[0] == t("fi", "svc.saved", number=1)
    async with service.db.transaction() as session:
        entry = (await session.execute(select(Observation))).scalar_one()
        person = await session.get(Person, entry.person_id)
    assert person is not None
    assert entry.description == "Nuorten asuntojono on nyt puoli vuotta 🏠"
    assert (entry.theme, entry.population_group, entry.signal) == (
        "theme.housing",
        "group.youth",
        "signal.queues",
    )
    assert (entry.frequency, entry.escalation, entry.polarity) == (
        "frequency.growing",
        "escalation.leadership",
        "polarity.problem",
    )
    assert (entry.team_id, entry.region, entry.area) == ("hki-etsiva", "helsinki", "itakeskus")
    assert entry.transport == "terminal" and entry.language == "fi"
    assert entry.flow_version == "1" and entry.taxonomy_version == TAXONOMY_VERSION
    assert entry.recorded_at - entry.observed_at == timedelta(minutes=2)
    assert entry.observed_at.tzinfo is not None
    assert person.pseudonym.startswith("w-") and "1001" not in person.pseudonym
    assert await count(service.db, Draft) == 0


async def test_unenrolled_people_get_one_sentence_and_nothing_is_stored(service: Havainto) -> None:
    stranger = Chat(service, "666")
    await stranger.send(TextIn("Hei, tässä havainto"))
    assert stranger.texts() == [t("fi", "svc.not_enrolled")]
    await stranger.send(CommandIn("start", "WRONGCODE1"))
    assert stranger.texts() == [t("fi", "svc.invite_unknown")]
    for model in (Observation, Draft, Person, Identity, ProcessedEvent):
        assert await count(service.db, model) == 0
    # Only the wrong code's trace for the lockout: who and when, never the code.
    async with service.db.transaction() as session:
        [failure] = (await session.execute(select(EnrolmentFailure))).scalars().all()
    assert (failure.transport, failure.external_id) == ("terminal", "666")
    assert "WRONGCODE1" not in repr(failure.__dict__)


async def test_invites_are_single_use_and_expire(service: Havainto, clock: FakeClock) -> None:
    code = await service.create_invite("hki-etsiva", "worker", timedelta(hours=1))
    first, second = Chat(service, "1"), Chat(service, "2")
    await first.send(CommandIn("start", code.lower()))
    await second.send(CommandIn("start", code))
    assert second.texts() == [t("fi", "svc.invite_used")]
    late = await service.create_invite("hki-etsiva", "worker", timedelta(hours=1))
    clock.advance(hours=2)
    await second.send(CommandIn("start", late))
    assert second.texts() == [t("fi", "svc.invite_expired")]


async def test_concurrent_redemptions_of_one_code_enrol_one_person(service: Havainto) -> None:
    code = await service.create_invite("hki-etsiva", "worker", timedelta(hours=1))
    chats = [Chat(service, str(n)) for n in range(5)]
    await asyncio.gather(*(c.send(CommandIn("start", code)) for c in chats))
    welcomed = [c for c in chats if "Helsingin etsivät" in c.texts()[0]]
    assert len(welcomed) == 1
    assert await count(service.db, Person) == 1


async def test_a_second_identity_joins_the_same_person(service: Havainto) -> None:
    chat = await enrolled(service)
    async with service.db.transaction() as session:
        member = await repo.find_member(session, "terminal", "1001")
    assert member is not None
    code = await service.create_invite("hki-etsiva", "worker", timedelta(1), member.person_id)
    other = Chat(service, "@worker:example.org", transport="matrix")
    await other.send(CommandIn("start", code))
    assert await count(service.db, Person) == 1
    assert await count(service.db, Identity) == 2
    assert chat.texts()


async def test_restart_mid_flow_resumes_the_same_step(
    make_config: Callable[..., Config], clock: FakeClock
) -> None:
    config = make_config()
    db = Database(config.database.url)
    first = Havainto(config, db, clock)
    await first.prepare()
    chat = await enrolled(first)
    await chat.send(TextIn("Keskeneräinen havainto"))
    await chat.tap("theme.income")
    pending = chat.last
    await db.close()

    db2 = Database(config.database.url)
    second = Havainto(config, db2, clock)
    await second.prepare()
    chat.service = second
    chat.last = pending  # the group buttons shown before the restart still work
    await chat.tap("group.children")
    assert chat.texts() == [t("fi", "ask.signal")]
    async with db2.transaction() as session:
        draft = (await session.execute(select(Draft))).scalar_one()
    assert draft.state["description"] == "Keskeneräinen havainto"
    assert draft.state["group"] == "group.children"
    await db2.close()


async def test_redelivered_event_has_one_effect(service: Havainto) -> None:
    chat = await enrolled(service)
    await chat.send(TextIn("Kaksoistoimitus"), event_id="upd-1")
    assert chat.texts() == [t("fi", "ask.theme")]
    again = await chat.send(TextIn("Kaksoistoimitus"), event_id="upd-1")
    assert again == []
    # A new delivery of the same words is a new text: kept, and the worker asked about it.
    await chat.send(TextIn("Kaksoistoimitus"), event_id="upd-2")
    assert chat.texts()[0] == t(
        "fi", "ask.new_text", open="Kaksoistoimitus", text="Kaksoistoimitus"
    )


async def test_idle_draft_reminded_once_and_kept(service: Havainto, clock: FakeClock) -> None:
    chat = await enrolled(service)
    await chat.send(TextIn("Jäi kesken"))
    clock.advance(hours=11)
    assert await service.remind_idle_drafts() == []
    clock.advance(hours=2)
    reminders = await service.remind_idle_drafts()
    assert [o.reply.text for o in reminders if isinstance(o.reply, Message)] == [
        t("fi", "svc.draft_reminder"),
        t("fi", "ask.theme"),
    ]
    assert {o.chat_id for o in reminders} == {"chat-1001"}
    clock.advance(hours=30)
    assert await service.remind_idle_drafts() == []
    assert await count(service.db, Draft) == 1
    await chat.tap("theme.other")
    assert chat.texts() == [t("fi", "ask.group")]


async def test_own_entries_can_be_corrected_and_withdrawn_within_24_hours(
    service: Havainto, clock: FakeClock
) -> None:
    chat = await enrolled(service)
    for text in ("Ensimmäinen", "Toinen"):
        await chat.send(TextIn(text))
        for value in ("theme.income", "group.older", "signal.criteria", "frequency.single"):
            await chat.tap(value)
        await chat.tap("escalation.none")
        await chat.tap("save")
        clock.advance(hours=1)
    await chat.send(CommandIn("omat"))
    listing = chat.texts()[0]
    assert "#2" in listing and "#1" in listing and listing.index("#2") < listing.index("#1")
    await chat.tap("own:edit:1")
    assert t("fi", "summary.title") in chat.texts()[0]
    await chat.tap("edit")
    await chat.tap("theme")
    await chat.tap("theme.housing")
    await chat.tap("save")
    assert chat.texts() == [t("fi", "svc.updated", number=1)]
    await chat.send(CommandIn("omat"))
    await chat.tap("own:del:2")
    await chat.tap("own:delyes:2")
    assert chat.texts() == [t("fi", "svc.withdrawn", number=2)]
    async with service.db.transaction() as session:
        rows = (await session.execute(select(Observation).order_by(Observation.id))).scalars().all()
    assert rows[0].theme == "theme.housing" and rows[0].withdrawn_at is None
    assert rows[1].withdrawn_at is not None
    assert await count(service.db, Observation) == 2
    # After the window, and for somebody else's entry, nothing changes.
    clock.advance(hours=25)
    await chat.send(ChoiceIn("own:del:1"))
    assert chat.texts() == [t("fi", "svc.too_old", number=1, hours="24")]
    intruder = await enrolled(service, user="2002")
    await intruder.send(ChoiceIn("own:edit:1"))
    assert intruder.texts() == [t("fi", "svc.not_yours")]


async def test_language_switch_and_help(service: Havainto) -> None:
    chat = await enrolled(service)
    await chat.send(CommandIn("kieli"))
    await chat.tap("lang:sv")
    assert chat.texts() == [t("sv", "svc.language_set")]
    await chat.send(CommandIn("apua"))
    assert chat.texts() == [t("sv", "svc.help", **commands.shown("sv"))]
    help_lines = t("sv", "svc.help", **commands.shown("sv")).splitlines()
    assert len(help_lines) == 6  # with the notice of a grievance (tillsynslagen 29 §)
    assert any("tidigare 48 § socialvårdslagen" in line for line in help_lines)
    await chat.send(CommandIn("unknown"))
    assert chat.texts() == [t("sv", "svc.unknown_command", **commands.shown("sv"))]
    await chat.send(TextIn("Observation på svenska"))
    assert chat.texts() == [t("sv", "ask.theme")]


async def test_no_invite_is_made_for_a_revoked_or_unknown_person(
    service: Havainto, clock: FakeClock
) -> None:
    await enrolled(service)
    async with service.db.transaction() as session:
        person = (await session.execute(select(Person))).scalar_one()
        person.revoked_at = clock()
    for person_id in (person.id, 999, 2**40):
        with pytest.raises(ValueError):
            await service.create_invite("hki-etsiva", "worker", timedelta(1), person_id)
    assert await count(service.db, Invite) == 1  # the one she enrolled with


async def test_revoked_worker_is_refused(service: Havainto, clock: FakeClock) -> None:
    chat = await enrolled(service)
    async with service.db.transaction() as session:
        person = (await session.execute(select(Person))).scalar_one()
        person.revoked_at = clock()
    await chat.send(TextIn("Vielä yksi"))
    assert chat.texts() == [t("fi", "svc.revoked")]
    assert await count(service.db, Draft) == 0


async def test_instances_starting_together_mirror_the_teams_once(db_url: str) -> None:
    """Two instances starting at the same moment both mirror the configured teams: the
    later one updates the rows instead of failing on the primary key (it did on
    PostgreSQL), and the newest names win."""
    first, second = Database(db_url), Database(db_url)
    teams = [("t1", "Tiimi 1", "r1", "fi"), ("t2", "Team 2", "r1", "sv")]
    renamed = [("t1", "Tiimi yksi", "r1", "fi"), ("t2", "Team 2", "r2", "sv")]
    arrived = asyncio.Event()

    async def mirror(db: Database, rows: list[tuple[str, str, str, str]], wait: bool) -> None:
        async with db.transaction() as session:
            if wait:
                await arrived.wait()  # both transactions are open before either writes
            else:
                arrived.set()
            await repo.sync_teams(session, rows)

    try:
        await asyncio.gather(mirror(first, teams, True), mirror(second, renamed, False))
        await mirror(first, renamed, False)
        async with first.transaction() as session:
            stored = (await session.execute(select(Team.id, Team.name, Team.region))).all()
        assert sorted(stored) == [("t1", "Tiimi yksi", "r1"), ("t2", "Team 2", "r2")]
    finally:
        await first.close()
        await second.close()
