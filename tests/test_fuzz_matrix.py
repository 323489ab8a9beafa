"""Fuzzing the Matrix transport: random room events into the real bot.

Random room events (messages of every msgtype with odd bodies, HTML, replies and
edits; reactions with random keys and relations; redactions; member events;
encrypted garbage; unknown and state types; fields left out) are parsed by nio
(``Event.parse_event``, as its sync does: a malformed event becomes a ``BadEvent``
the transport gets too) and handed to ``MatrixTransport.on_event`` with the
transport's own ``MatrixRoom`` objects: the worker's direct chat, a stranger's, the
team room and the leadership room. Sending needs a homeserver, so the transport is
logged in to the session's Synapse and its replies really go there (which makes
each event slower: 250 events on SQLite, 75 on PostgreSQL).

After every event nothing logged an error, and the events that must not store
anything (everything but the worker's own texts and locations in their direct
chat) left the observations, drafts, people, identities and invites as they were.

The accounts and rooms on Synapse are made once per test and shared by every batch
(``MatrixWorld``); each batch (hypothesis example) has a fresh database with the
same people enrolled, and a bot logged in anew. Hypothesis draws each batch's seed
from the run's seed: ``HAVAINTO_TEST_SEED`` replays a run (tests/support/fuzz.py).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import nio
import pytest
from hypothesis import given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from bot.config import Config
from bot.runtime import Runtime, build_runtime
from bot.transports.matrix import MatrixTransport
from storage import repo
from storage.admin import revoke_person
from tests.conftest import TEST_LEADERSHIP, TEST_TEAMS, FakeClock
from tests.support.fuzz import (
    BATCH_SEEDS,
    FUZZ_SETTINGS,
    ErrorRecords,
    OddValues,
    Snapshot,
    Tally,
    fresh_database,
    fuzz_seed,
    rerun_hint,
    show,
    snapshot,
    traceback_of,
)
from tests.support.synapse_harness import Synapse

# Random room events (parsed by nio's ``Event.parse_event``, as its sync does) are handed
# to the real ``MatrixTransport.on_event`` with the transport's own ``MatrixRoom`` objects.
# The transport is logged in to the session's Synapse and its replies really go there:
# sending needs a homeserver. Events come from the rooms the bot is in: the worker's
# direct chat, a stranger's direct chat, the team room and the leadership room.

MATRIX_EVENTS_SQLITE = 250
MATRIX_EVENTS_POSTGRESQL = 75
MATRIX_BATCH = 25
MSGTYPES = (
    *("m.text",) * 8,
    "m.emote",
    "m.notice",
    "m.image",
    "m.file",
    "m.audio",
    "m.video",
    "m.location",
    "m.key.verification.request",
    "m.server_notice",
    "org.example.custom",
)
OTHER_EVENT_TYPES = (
    "m.room.name",
    "m.room.topic",
    "m.call.invite",
    "m.sticker",
    "m.poll.start",
    "org.matrix.msc3381.poll.start",
    "m.room.pinned_events",
    "org.example.unknown",
    "",
)
KEYCAP_KEYS = ("1️⃣", "2️⃣", "3️⃣", "🔟", "1", "👍", "1\ufe0f\u20e3")


@dataclass
class MatrixWorld:
    """The accounts and rooms on the homeserver."""

    bot_id: str
    bot_password: str
    worker: str
    leader: str
    revoked: str
    stranger: str
    rooms: dict[str, str]  # worker_dm, stranger_dm, team, leaders


class MatrixEventMaker(OddValues):
    """Raw Matrix room events, from the same seeded generator of odd values."""

    def __init__(self, rng: random.Random, world: MatrixWorld) -> None:
        super().__init__(rng)
        self.world = world

    def event_id(self) -> str:
        # No digits: the transport logs event ids, and a random run of digits could look
        # like a personal identity code to the session's log check (tests/conftest.py).
        return "$" + "".join(
            self.rng.choice("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ_") for _ in range(24)
        )

    def sender(self) -> Any:
        kind = self.pick(worker=12, stranger=3, leader=2, revoked=1, bot=1, random=2, odd=1)
        world = self.world
        if kind == "random":
            return f"@{self.text(8)}:havainto.test"
        if kind == "odd":
            return self.rng.choice(("", "not-an-id", 42, None, ["@a:b"]))
        return {
            "worker": world.worker,
            "stranger": world.stranger,
            "leader": world.leader,
            "revoked": world.revoked,
            "bot": world.bot_id,
        }[kind]

    def body(self) -> str:
        kind = self.pick(text=6, command=3, number=5)
        if kind == "text":
            return self.any_text()
        if kind == "command":
            command = self.command_text()
            return "!" + command[1:] if self.chance(60) else command
        # Mostly "1": typed answers walk the worker's draft forward to Save.
        return self.rng.choice(("1",) * 8 + ("2", "10", "0", "99", " 1. ", "١"))

    def relation(self) -> dict[str, Any]:
        kind = self.rng.choice(("m.replace", "reply", "m.thread", "m.annotation", "x"))
        if kind == "reply":
            return {"m.in_reply_to": {"event_id": self.event_id()}}
        relation: dict[str, Any] = {"rel_type": kind, "event_id": self.event_id()}
        if kind == "m.annotation":
            relation["key"] = self.rng.choice(KEYCAP_KEYS)
        return relation

    def message_content(self) -> dict[str, Any]:
        content: dict[str, Any] = {"body": self.body()}
        if self.chance(95):
            content["msgtype"] = self.rng.choice(MSGTYPES)
        if content.get("msgtype") == "m.location":
            latitude, longitude = self.odd_float(), self.odd_float()
            content["geo_uri"] = self.rng.choice(
                (f"geo:{latitude},{longitude}", "geo:60.17,24.94", "geo:", self.text(10))
            )
        if content.get("msgtype") in ("m.image", "m.file", "m.audio", "m.video"):
            content["url"] = self.rng.choice(("mxc://havainto.test/x", self.text(10)))
            if content["msgtype"] == "m.audio" and self.chance(30):
                content["org.matrix.msc3245.voice"] = {}
        if self.chance(20):
            content["format"] = self.rng.choice(("org.matrix.custom.html", "x"))
            content["formatted_body"] = f"<b>{self.any_text()}</b><mx-reply>{self.text()}"
        if self.chance(15):
            relation = self.relation()
            content["m.relates_to"] = relation
            if relation.get("rel_type") == "m.replace":
                content["m.new_content"] = {"msgtype": "m.text", "body": self.any_text()}
            if "m.in_reply_to" in relation:
                content["body"] = f"> <@someone:havainto.test> {self.text()}\n\n{content['body']}"
        if self.chance(3):
            content["body"] = self.rng.choice((None, 42, ["x"], {"x": 1}))
        return content

    def event(self) -> tuple[str, dict[str, Any]]:
        sender = self.sender()
        if sender == self.world.worker:
            room = self.pick(worker_dm=8, stranger_dm=1, team=1, leaders=1)
        else:
            room = self.pick(worker_dm=3, stranger_dm=3, team=3, leaders=3)
        kind = self.pick(
            message=12,
            reaction=3,
            redaction=1,
            member=1,
            encrypted=2,
            other=2,
        )
        content: Any
        source: dict[str, Any] = {}
        if kind == "message":
            event_type, content = "m.room.message", self.message_content()
        elif kind == "reaction":
            relation = {
                "rel_type": self.rng.choice(("m.annotation", "m.annotation", "x")),
                "event_id": self.event_id(),
                "key": self.rng.choice((*KEYCAP_KEYS, self.text(5))),
            }
            event_type, content = "m.reaction", {"m.relates_to": relation}
        elif kind == "redaction":
            event_type, content = "m.room.redaction", {"reason": self.text()}
            source["redacts"] = self.event_id()
        elif kind == "member":
            event_type = "m.room.member"
            membership = self.rng.choice(("invite", "join", "leave", "ban", "knock", self.text(5)))
            content = {"membership": membership, "displayname": self.text(10)}
            source["state_key"] = self.rng.choice(
                (self.world.stranger, self.world.worker, f"@{self.text(5)}:havainto.test")
            )
        elif kind == "encrypted":
            event_type = "m.room.encrypted"
            content = {
                "algorithm": self.rng.choice(("m.megolm.v1.aes-sha2", "m.megolm.v1.aes-sha2", "x")),
                "ciphertext": self.text(40),
                "sender_key": self.text(10),
                "session_id": self.text(10),
                "device_id": self.text(8),
            }
        else:
            event_type = self.rng.choice(OTHER_EVENT_TYPES)
            content = {self.text(5): self.any_text() for _ in range(self.rng.randint(0, 3))}
            if self.chance(30):
                content = self.rng.choice((None, [], "text", 42))
        source.update(
            {
                "type": event_type,
                "event_id": self.event_id(),
                "sender": sender,
                "origin_server_ts": self.rng.choice(
                    (*(1_700_000_000_000 + self.rng.randint(0, 10**9),) * 8, 0, -1, 2**62)
                ),
                "content": content,
            }
        )
        if self.chance(10):
            source["unsigned"] = {"age": self.rng.randint(-5, 10**6)}
        if self.chance(4):
            self.drop_some_field(source)
        return room, source

    def events(self, size: int) -> list[tuple[str, dict[str, Any]]]:
        return [self.event() for _ in range(size)]


def matrix_may_store(room: str, source: dict[str, Any], world: MatrixWorld) -> bool:
    """The worker's own texts (commands, typed answers) and locations in their direct chat
    may change a draft or save an entry; every other event must store nothing."""
    content = source.get("content")
    if room != "worker_dm" or source.get("sender") != world.worker or not isinstance(content, dict):
        return False
    if source.get("type") != "m.room.message" or "event_id" not in source:
        return False
    relation = content.get("m.relates_to")
    if isinstance(relation, dict) and relation.get("rel_type") == "m.replace":
        return False
    return content.get("msgtype") in ("m.text", "m.emote", "m.location")


class MatrixFuzz:
    """The real Matrix runtime on Synapse, with everything recorded."""

    def __init__(
        self, config: Config, clock: FakeClock, world: MatrixWorld, tally: Tally, replay: str
    ) -> None:
        self.config = config
        self.clock = clock
        self.world = world
        self.replay = replay  # how to replay this batch, for failure messages
        self.runtime: Runtime | None = None
        self.logged = ErrorRecords()
        self.tally = tally
        self._quiet: dict[str, int] = {}

    @property
    def rt(self) -> Runtime:
        assert self.runtime is not None
        return self.runtime

    @property
    def transport(self) -> MatrixTransport:
        transport = self.rt.transports[0]
        assert isinstance(transport, MatrixTransport)
        return transport

    async def start(self) -> None:
        self.runtime = await build_runtime(self.config, clock=self.clock, terminal=False)
        logging.getLogger().addHandler(self.logged)
        self._quiet = {name: logging.getLogger(name).level for name in ("nio", "aiohttp")}
        for name in self._quiet:
            logging.getLogger(name).setLevel(logging.WARNING)
        await self.transport.start()
        rooms = self.transport.client.rooms
        deadline = time.monotonic() + 30
        while not set(self.world.rooms.values()) <= set(rooms):
            assert time.monotonic() < deadline, "the bot did not join the rooms"
            await asyncio.sleep(0.2)
        await self._people()

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
            self.runtime = None
        logging.getLogger().removeHandler(self.logged)
        for name, level in self._quiet.items():
            logging.getLogger(name).setLevel(level)

    async def _people(self) -> None:
        world, now = self.world, self.clock()
        async with self.rt.db.transaction() as session:
            for user, role, chat in (
                (world.worker, "worker", world.rooms["worker_dm"]),
                (world.leader, "leader", world.rooms["leaders"]),
                (world.revoked, "worker", world.rooms["team"]),
            ):
                invite = await repo.create_invite(
                    session, "hki-etsiva", role, now, timedelta(days=1)
                )
                await repo.redeem_invite(session, invite.code, "matrix", user, chat, "fi", now)
            revoked = await repo.find_member(session, "matrix", world.revoked)
            assert revoked is not None
            await revoke_person(session, revoked.pseudonym, "fuzz", now)
            worker = await repo.find_member(session, "matrix", world.worker)
            assert worker is not None
            long_ago = now - timedelta(days=3)
            await repo.add_observation(
                session,
                person_id=worker.person_id,
                team_id="hki-etsiva",
                region="helsinki",
                area=None,
                description="Vanha havainto",
                quote=None,
                action=None,
                theme="theme.housing",
                population_group="group.youth",
                signal="signal.queues",
                frequency="frequency.recurring",
                escalation="escalation.none",
                polarity="polarity.problem",
                task=None,
                source=None,
                scale=None,
                observed_at=long_ago,
                recorded_at=long_ago,
                updated_at=long_ago,
                withdrawn_at=None,
                transport="matrix",
                language="fi",
                flow_version="1",
                taxonomy_version="2026.1",
            )

    async def _handle(self, room: str, source: dict[str, Any]) -> None:
        """Parse the event as nio's sync does (a malformed one becomes a ``BadEvent``,
        which the transport gets too) and hand it to the transport."""
        self.tally.generated += 1
        try:
            parsed = nio.Event.parse_event(copy.deepcopy(source))
        except Exception:  # nio itself fails on some (e.g. no content): never delivered
            self.tally.rejected_by_parser += 1
            self.tally.rejected_kinds[str(source.get("type"))] += 1
            return
        self.tally.fed += 1
        self.tally.kinds[type(parsed).__name__] += 1
        await self.transport.on_event(self.transport.client.rooms[self.world.rooms[room]], parsed)

    async def feed(self, events: list[tuple[str, dict[str, Any]]], opening: str) -> None:
        """Events in order, as the sync loop hands them over; the stored rows are compared
        around every run of events that must not store anything."""
        await self._open_draft(opening)
        run: list[dict[str, Any]] = []
        before: Snapshot | None = None
        for room, source in events:
            if matrix_may_store(room, source, self.world):
                if before is not None:
                    await self._compare(before, run)
                    before, run = None, []
                self.tally.may_store += 1
                await self._handle(room, source)
            else:
                if before is None:
                    before = await snapshot(self.rt)
                run.append(source)
                await self._handle(room, source)
        if before is not None:
            await self._compare(before, run)
        await self.transport.flush()
        self.check_errors([source for _, source in events])

    async def _open_draft(self, text: str) -> None:
        async with self.rt.db.transaction() as session:
            worker = await repo.find_member(session, "matrix", self.world.worker)
            assert worker is not None
            if await repo.load_draft(session, worker.person_id) is not None:
                return
        source = {
            "type": "m.room.message",
            "event_id": "$open" + secrets.token_hex(8),
            "sender": self.world.worker,
            "origin_server_ts": 1_700_000_000_000,
            "content": {"msgtype": "m.text", "body": text},
        }
        room = self.transport.client.rooms[self.world.rooms["worker_dm"]]
        await self.transport.on_event(room, nio.Event.parse_event(source))

    async def _compare(self, before: Snapshot, run: list[dict[str, Any]]) -> None:
        after = await snapshot(self.rt)
        self.tally.checked_runs += 1
        if after != before:
            raise AssertionError(
                f"{self.replay}\nstored rows changed by events that must not store anything:\n"
                + before.diff(after)
                + "\nthe events:\n"
                + "\n".join(show(r) for r in run)
            )

    def check_errors(self, sources: list[dict[str, Any]]) -> None:
        logged = [(r.name, r.getMessage()[:200], traceback_of(r)) for r in self.logged.records]
        if logged:
            raise AssertionError(
                f"{self.replay}\nlogged: {logged}\nafter the events:\n"
                + "\n".join(show(s) for s in sources)
            )


async def matrix_world(synapse: Synapse) -> tuple[MatrixWorld, list[nio.AsyncClient]]:
    """Accounts and rooms: the bot is invited to every room and joins when it starts."""
    password = "bot-secret"
    bot_id, _, _ = await synapse.register(_matrix_name("havainto"), password)
    worker = await synapse.nio_client(_matrix_name("worker"))
    stranger = await synapse.nio_client(_matrix_name("stranger"))
    owner = await synapse.nio_client(_matrix_name("owner"))
    leader_id, _, _ = await synapse.register(_matrix_name("leader"))
    revoked_id, _, _ = await synapse.register(_matrix_name("revoked"))
    rooms: dict[str, str] = {}
    for key, client, direct in (
        ("worker_dm", worker, True),
        ("stranger_dm", stranger, True),
        ("team", owner, False),
        ("leaders", owner, False),
    ):
        created = await client.room_create(is_direct=direct, invite=[bot_id], name=key)
        assert isinstance(created, nio.RoomCreateResponse), created
        rooms[key] = created.room_id
    world = MatrixWorld(
        bot_id=bot_id,
        bot_password=password,
        worker=str(worker.user_id),
        leader=leader_id,
        revoked=revoked_id,
        stranger=str(stranger.user_id),
        rooms=rooms,
    )
    return world, [worker, stranger, owner]


def _matrix_name(prefix: str) -> str:
    # Never an all-digit part: "-12345678:" would look like a bot token to the log check.
    return f"{prefix}-f{secrets.token_hex(4)}"


def matrix_report(tally: Tally) -> str:
    return (
        f"matrix fuzz: {tally.batches} batches, {tally.generated} generated, "
        f"{tally.rejected_by_parser} refused by nio's parser "
        f"({dict(tally.rejected_kinds.most_common(5))}), {tally.fed} fed to on_event "
        f"({tally.may_store} of them allowed to store), {tally.checked_runs} storage checks, "
        f"{tally.saved} entries saved; parsed as {dict(tally.kinds.most_common())}"
    )


async def one_batch(
    db_url: str,
    folder: Path,
    make_config: Callable[..., Config],
    synapse: Synapse,
    world: MatrixWorld,
    tally: Tally,
    replay: str,
    events: list[tuple[str, dict[str, Any]]],
    opening: str,
) -> None:
    """A fresh database, the bot logged in anew, the people enrolled, then the events."""
    teams = [{**TEST_TEAMS[0], "matrix_room_id": world.rooms["team"]}, *TEST_TEAMS[1:]]
    leadership = [
        {**TEST_LEADERSHIP[0], "matrix_room_id": world.rooms["leaders"]},
        *TEST_LEADERSHIP[1:],
    ]
    async with fresh_database(db_url, folder) as url:
        config = make_config(
            database={"url": url},
            teams=teams,
            leadership=leadership,
            matrix={
                "homeserver": synapse.base_url,
                "user_id": world.bot_id,
                "password": world.bot_password,
                "store_path": str(folder / f"matrix-store-{secrets.token_hex(4)}"),
            },
        )
        bot = MatrixFuzz(config, FakeClock(), world, tally, replay)
        try:
            await bot.start()
            await bot.feed(events, opening)
            tally.saved += len((await snapshot(bot.rt)).observations) - 1
        finally:
            await bot.stop()


@pytest.mark.slow
def test_random_matrix_events_are_handled_and_store_nothing_they_must_not(
    db_url: str,
    make_config: Callable[..., Config],
    synapse: Synapse,
    tmp_path: Path,
) -> None:
    seed = fuzz_seed()
    total = MATRIX_EVENTS_POSTGRESQL if db_url.startswith("postgresql") else MATRIX_EVENTS_SQLITE
    tally = Tally()
    with asyncio.Runner() as runner:
        world, clients = runner.run(matrix_world(synapse))
        try:

            @hypothesis_seed(seed)
            @settings(FUZZ_SETTINGS, max_examples=total // MATRIX_BATCH)
            @given(st.integers(*BATCH_SEEDS))
            def fuzz(batch_seed: int) -> None:
                maker = MatrixEventMaker(random.Random(batch_seed), world)
                events, opening = maker.events(MATRIX_BATCH), maker.any_text()
                replay = f"{rerun_hint(seed)} batch seed {batch_seed}"
                tally.batches += 1
                runner.run(
                    one_batch(
                        db_url,
                        tmp_path,
                        make_config,
                        synapse,
                        world,
                        tally,
                        replay,
                        events,
                        opening,
                    )
                )

            fuzz()
        finally:
            for client in clients:
                runner.run(client.close())
    report = f"{rerun_hint(seed)}\n{matrix_report(tally)}"
    print(report)
    assert tally.generated == total, report
    assert tally.rejected_by_parser < total // 10, report
    assert tally.may_store > total // 20 and tally.checked_runs > total // 20, report
