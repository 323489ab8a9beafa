"""The Matrix transport end to end: the real bot against a real Synapse, driven by real nio clients.

Every test registers its own bot and worker users on the session's Synapse
(``synapse`` fixture in conftest.py), builds the runtime as ``havainto run``
does and talks to the bot from a second ``nio.AsyncClient``, syncing by hand
so each test sees exactly what reached the worker's phone. The main flows run
on SQLite and PostgreSQL (``db_url``).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import nio
import pytest
from sqlalchemy import select

from bot.config import Config
from bot.runtime import DatabaseState, Runtime, build_runtime
from bot.transports.matrix import KEYCAPS, MatrixTransport, matrix_commands, render_message
from flows import commands, taxonomy
from flows.events import Choice, Document, Image, Message, Outbound
from flows.i18n import label, t
from storage import repo
from storage.models import (
    Draft,
    Identity,
    Observation,
    Person,
    ProcessedEvent,
)
from tests.conftest import TEST_LEADERSHIP, TEST_TEAMS
from tests.support.db import count
from tests.support.fake_telegram import FakeTelegram
from tests.support.synapse_harness import Synapse
from tests.support.telegram import telegram_config

TEAM = "hki-etsiva"
REPLY_TIMEOUT = 20.0
ENCRYPTION = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}
PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


# The main flow, the restart and the shared person run on every database backend; the
# rest of the Matrix behaviour does not depend on the database and runs on SQLite only,
# which keeps the suite fast.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def unique(prefix: str) -> str:
    # Never "-12345678:": an all-digit part before the server name looks like a Telegram
    # bot token to the session's log check (tests/support/logcheck.py).
    return f"{prefix}-u{uuid.uuid4().hex[:8]}"


# --- a person on a real Matrix client -------------------------------------------------


@dataclass
class Notice:
    event_id: str
    body: str
    formatted: str
    arrived: float
    source: dict[str, Any]
    decrypted: bool

    def options(self) -> list[str]:
        """The labels of the numbered options at the end of the body."""
        found = []
        for line in self.body.splitlines():
            number, dot, rest = line.partition(". ")
            if dot and number.isdecimal() and int(number) == len(found) + 1:
                found.append(rest)
        return found


@dataclass
class Peer:
    """Someone on a phone: a nio client that syncs only when the test says so."""

    client: nio.AsyncClient
    bot_id: str
    notices: dict[str, list[Notice]] = field(default_factory=lambda: defaultdict(list))
    files: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    bot_reactions: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    memberships: list[tuple[str, str, str]] = field(default_factory=list)
    cursor: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def user_id(self) -> str:
        return str(self.client.user_id)

    async def sync(self, wait_ms: int = 300) -> None:
        response = await self.client.sync(timeout=wait_ms)
        assert isinstance(response, nio.SyncResponse), response
        now = time.monotonic()
        for room_id, info in [*response.rooms.join.items(), *response.rooms.leave.items()]:
            for event in info.timeline.events:
                self._record(room_id, event, now)
        if self.client.olm is not None:
            if self.client.should_upload_keys:
                await self.client.keys_upload()
            if self.client.should_query_keys:
                await self.client.keys_query()
            if self.client.should_claim_keys:
                await self.client.keys_claim(self.client.get_users_for_key_claiming())
            await self.client.send_to_device_messages()

    def _record(self, room_id: str, event: Any, now: float) -> None:
        if isinstance(event, nio.RoomMemberEvent):
            self.memberships.append((room_id, event.state_key, event.membership))
            return
        if getattr(event, "sender", None) != self.bot_id:
            return
        content = event.source.get("content", {})
        if isinstance(event, nio.ReactionEvent):
            self.bot_reactions[event.reacts_to].append(event.key)
        elif content.get("msgtype") == "m.notice":
            self.notices[room_id].append(
                Notice(
                    event.event_id,
                    content["body"],
                    content.get("formatted_body", ""),
                    now,
                    event.source,
                    bool(getattr(event, "decrypted", False)),
                )
            )
        elif content.get("msgtype") in ("m.image", "m.file"):
            self.files[room_id].append(content)

    async def until(self, condition: Callable[[], bool], within: float = REPLY_TIMEOUT) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.user_id}: condition not met within {within}s")
            await self.sync()

    async def replies(self, room_id: str, count: int = 1) -> list[Notice]:
        """The next ``count`` notices from the bot in the room (each returned once)."""
        start = self.cursor[room_id]
        await self.until(lambda: len(self.notices[room_id]) >= start + count)
        self.cursor[room_id] = start + count
        return self.notices[room_id][start : start + count]

    async def reply(self, room_id: str) -> Notice:
        return (await self.replies(room_id, 1))[0]

    async def quiet(self, room_id: str, seconds: float = 1.5) -> None:
        """Nothing more from the bot for a while."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self.sync(wait_ms=300)
        extra = self.notices[room_id][self.cursor[room_id] :]
        assert not extra, [n.body for n in extra]

    async def send(self, room_id: str, body: str, **content: Any) -> float:
        """Send a text; returns when it was sent (for reply times)."""
        sent_at = time.monotonic()
        response = await self.client.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": body, **content},
            ignore_unverified_devices=True,
        )
        assert isinstance(response, nio.RoomSendResponse), response
        return sent_at

    async def react(self, room_id: str, event_id: str, key: str) -> None:
        relation = {"rel_type": "m.annotation", "event_id": event_id, "key": key}
        response = await self.client.room_send(
            room_id, "m.reaction", {"m.relates_to": relation}, ignore_unverified_devices=True
        )
        assert isinstance(response, nio.RoomSendResponse), response

    async def open_dm(self, encrypted: bool = False) -> str:
        created = await self.client.room_create(
            is_direct=True,
            invite=[self.bot_id],
            preset=nio.RoomPreset.trusted_private_chat,
            initial_state=[ENCRYPTION] if encrypted else [],
        )
        assert isinstance(created, nio.RoomCreateResponse), created
        await self.until(lambda: (created.room_id, self.bot_id, "join") in self.memberships)
        return str(created.room_id)


async def peer(synapse: Synapse, bot_id: str, store: Path | None = None) -> Peer:
    """A registered, logged-in person (with an encryption store if ``store`` is given)."""
    if store is None:
        client = await synapse.nio_client(unique("worker"))
    else:
        user_id, token, device_id = await synapse.register(unique("worker"))
        await asyncio.to_thread(store.mkdir, parents=True, exist_ok=True)
        client = nio.AsyncClient(synapse.base_url, user_id, store_path=str(store))
        client.restore_login(user_id, device_id, token)
        await client.keys_upload()
    someone = Peer(client, bot_id)
    await someone.sync(wait_ms=0)
    return someone


# --- the bot ------------------------------------------------------------------------


@dataclass
class Bot:
    user_id: str
    password: str
    store: Path
    token: str


@pytest.fixture
async def bot_account(synapse: Synapse, tmp_path: Path) -> Bot:
    user_id, token, _ = await synapse.register(unique("havainto"), "bot-secret")
    return Bot(user_id, "bot-secret", tmp_path / "matrix-store", token)


def matrix_section(synapse: Synapse, bot: Bot, **extra: Any) -> dict[str, Any]:
    return {
        "homeserver": synapse.base_url,
        "user_id": bot.user_id,
        "password": bot.password,
        "device_name": "havainto-test",
        "store_path": str(bot.store),
        **extra,
    }


@pytest.fixture
async def runtimes() -> AsyncIterator[list[Runtime]]:
    """Runtimes a test starts; whatever is still running is stopped at the end."""
    started: list[Runtime] = []
    yield started
    for runtime in started:
        await runtime.stop()


async def start(config: Config, runtimes: list[Runtime]) -> tuple[Runtime, MatrixTransport]:
    runtime = await build_runtime(config)
    runtimes.append(runtime)
    for transport in runtime.transports:
        await transport.start()
    matrix = next(t for t in runtime.transports if isinstance(t, MatrixTransport))
    return runtime, matrix


async def stop(runtime: Runtime, runtimes: list[Runtime]) -> None:
    runtimes.remove(runtime)
    await runtime.stop()


async def enrol(runtime: Runtime, worker: Peer, room_id: str, **invite: Any) -> Notice:
    code = await runtime.service.create_invite(TEAM, "worker", timedelta(days=1), **invite)
    await worker.send(room_id, f"!start {code}")
    welcome = await worker.reply(room_id)
    assert welcome.body.startswith("Tervetuloa Havaintoon"), welcome.body
    return welcome


async def leadership_room(synapse: Synapse, bot: Bot) -> tuple[Peer, str, list[dict[str, Any]]]:
    """A leader on a phone who made the Helsinki leadership room and invited the bot: the
    leader, the room's id and the ``leadership`` config that puts Helsinki's channel there."""
    leader = await peer(synapse, bot.user_id)
    channel = await leader.client.room_create(name="Helsingin johto", invite=[bot.user_id])
    assert isinstance(channel, nio.RoomCreateResponse)
    leadership = [
        dict(TEST_LEADERSHIP[0], chats={"matrix": channel.room_id}),
        *TEST_LEADERSHIP[1:],
    ]
    return leader, channel.room_id, leadership


async def observations(runtime: Runtime) -> list[Observation]:
    async with runtime.db.transaction() as session:
        return list((await session.scalars(select(Observation).order_by(Observation.id))).all())


async def save_by_numbers(worker: Peer, room: str, text: str, escalation: str = "1") -> None:
    """A text, then theme, group, signal and novelty by "1", the escalation by its number
    (1 none, 3 a notice of a grievance), then Save: the bot says the entry is saved."""
    await worker.send(room, text)
    for answer in ("1", "1", "1", "1", escalation):
        await worker.reply(room)
        await worker.send(room, answer)
    await worker.reply(room)  # the summary
    await worker.send(room, "1")
    assert (await worker.reply(room)).body.startswith("Tallennettu havainto #")


def codes(dimension: taxonomy.Dimension) -> list[str]:
    return list(dimension.codes)


# --- the main flow ----------------------------------------------------------------------


async def test_enrol_and_full_flow_by_numbers(
    synapse: Synapse,
    bot_account: Bot,
    make_config: Callable[..., Config],
    runtimes: list[Runtime],
    capsys: pytest.CaptureFixture[str],
) -> None:
    runtime, matrix = await start(
        make_config(matrix=matrix_section(synapse, bot_account)), runtimes
    )
    worker = await peer(synapse, bot_account.user_id)
    room = await worker.open_dm()

    welcome = await enrol(runtime, worker, room)
    # Element keeps "/" for itself: the bot names its commands with "!".
    assert "!uusi" in welcome.body and "/uusi" not in welcome.body
    assert welcome.source["content"]["msgtype"] == "m.notice"
    assert welcome.source["content"]["format"] == "org.matrix.custom.html"

    reply_times: list[float] = []

    async def answer(text: str) -> Notice:
        sent_at = await worker.send(room, text)
        notice = await worker.reply(room)
        reply_times.append(notice.arrived - sent_at)
        return notice

    theme = await answer("Nuoret <b>asunnottomat</b> & jonot asumisneuvontaan")
    assert theme.body.startswith(t("fi", "ask.theme"))
    assert theme.options() == [label(c, "fi") for c in codes(taxonomy.THEME)]
    assert "<ol><li>" in theme.formatted
    # The bot puts the first ten options under the question as one-tap reactions.
    await worker.until(lambda: len(worker.bot_reactions[theme.event_id]) == 10)
    assert worker.bot_reactions[theme.event_id] == list(KEYCAPS)

    group = await answer("1")
    assert group.body.startswith(t("fi", "ask.group"))
    signal = await answer("3")
    assert signal.body.startswith(t("fi", "ask.signal"))
    frequency = await answer("2.")
    assert frequency.body.startswith(t("fi", "ask.frequency"))
    escalation = await answer("1")
    assert escalation.body.startswith(t("fi", "ask.escalation"))
    summary = await answer("1")
    # The worker's text comes back escaped in HTML and as typed in the plain body.
    assert "Nuoret <b>asunnottomat</b> & jonot" in summary.body
    assert "Nuoret &lt;b&gt;asunnottomat&lt;/b&gt; &amp; jonot" in summary.formatted
    assert summary.options()[0] == t("fi", "button.save")
    saved = await answer("1")
    assert saved.body.startswith("Tallennettu havainto #"), saved.body

    [entry] = await observations(runtime)
    assert (entry.theme, entry.population_group, entry.signal) == (
        codes(taxonomy.THEME)[0],
        codes(taxonomy.GROUP)[2],
        codes(taxonomy.SIGNAL)[1],
    )
    assert (entry.frequency, entry.escalation) == (
        codes(taxonomy.FREQUENCY)[0],
        codes(taxonomy.ESCALATION)[0],
    )
    assert entry.transport == "matrix"
    assert entry.description == "Nuoret <b>asunnottomat</b> & jonot asumisneuvontaan"
    assert matrix.rate_limited == 0
    await worker.quiet(room, 0.5)
    await worker.client.close()

    median_ms = statistics.median(reply_times) * 1000
    with capsys.disabled():
        print(
            f"\n[matrix] median bot reply time over {len(reply_times)} steps "
            f"({runtime.db.dialect}): {median_ms:.0f} ms "
            f"(min {min(reply_times) * 1000:.0f}, max {max(reply_times) * 1000:.0f})"
        )
    assert median_ms < 2000


@sqlite_only
async def test_labels_reactions_quick_capture_and_service_choices(
    synapse: Synapse,
    bot_account: Bot,
    make_config: Callable[..., Config],
    runtimes: list[Runtime],
) -> None:
    runtime, _ = await start(make_config(matrix=matrix_section(synapse, bot_account)), runtimes)
    worker = await peer(synapse, bot_account.user_id)
    room = await worker.open_dm()
    await enrol(runtime, worker, room)

    # Quick capture: the text comes with the command.
    await worker.send(room, "!uusi Päihdepalveluihin ei pääse ilman lähetettä")
    theme = await worker.reply(room)
    assert theme.body.startswith(t("fi", "ask.theme"))
    # A label typed in other case counts as that option.
    await worker.send(room, label(codes(taxonomy.THEME)[2], "fi").upper())
    group = await worker.reply(room)
    assert group.body.startswith(t("fi", "ask.group"))
    # One tap: the worker reacts 2️⃣ on the question.
    await worker.react(room, group.event_id, KEYCAPS[1])
    signal = await worker.reply(room)
    assert signal.body.startswith(t("fi", "ask.signal"))
    # A reaction that is not a number, or on an older question, changes nothing stale.
    await worker.react(room, signal.event_id, "👍")
    await worker.react(room, signal.event_id, "4\u20e3")  # keycap without the variation selector
    frequency = await worker.reply(room)
    assert frequency.body.startswith(t("fi", "ask.frequency"))
    await worker.react(room, group.event_id, KEYCAPS[0])  # the group question is spent
    stale = await worker.replies(room, 2)
    assert stale[0].body == t("fi", "flow.stale_button")
    assert stale[1].body.startswith(t("fi", "ask.frequency"))
    await worker.react(room, stale[1].event_id, KEYCAPS[2])
    escalation = await worker.reply(room)
    await worker.react(room, escalation.event_id, KEYCAPS[0])
    summary = await worker.reply(room)
    await worker.react(room, summary.event_id, KEYCAPS[0])
    saved = await worker.reply(room)
    assert saved.body.startswith("Tallennettu havainto #")

    [entry] = await observations(runtime)
    assert entry.description == "Päihdepalveluihin ei pääse ilman lähetettä"
    assert entry.theme == codes(taxonomy.THEME)[2]
    assert entry.population_group == codes(taxonomy.GROUP)[1]
    assert entry.signal == codes(taxonomy.SIGNAL)[3]
    assert entry.frequency == codes(taxonomy.FREQUENCY)[2]

    # Choices outside the flow: the language by typed number, back by reaction.
    await worker.send(room, "!kieli")
    ask = await worker.reply(room)
    assert ask.options() == ["Suomi", "Svenska", "English"]
    await worker.send(room, "2")
    assert (await worker.reply(room)).body == t("sv", "svc.language_set")
    await worker.send(room, "/kieli")  # "/" works too where a client lets it through
    ask = await worker.reply(room)
    await worker.react(room, ask.event_id, KEYCAPS[0])
    assert (await worker.reply(room)).body == t("fi", "svc.language_set")
    # The typed answer was used up: "1" is now an observation text, not a language.
    await worker.send(room, "1")
    assert (await worker.reply(room)).body.startswith(t("fi", "ask.theme"))

    # Own entries: "withdraw" by typed label, confirmation by number.
    await worker.send(room, "!peru")
    await worker.reply(room)
    await worker.send(room, "!omat")
    own = await worker.reply(room)
    withdraw = t("fi", "button.own_withdraw", number=entry.id)
    assert withdraw in own.options()
    await worker.send(room, withdraw.lower())
    confirm = await worker.reply(room)
    assert confirm.body.startswith(t("fi", "svc.withdraw_confirm", number=entry.id))
    await worker.send(room, "1")
    assert (await worker.reply(room)).body == t("fi", "svc.withdrawn", number=entry.id)
    [entry] = await observations(runtime)
    assert entry.withdrawn_at is not None
    await worker.client.close()


@sqlite_only
async def test_bad_input_is_refused_and_nothing_is_processed_twice(
    synapse: Synapse,
    bot_account: Bot,
    make_config: Callable[..., Config],
    runtimes: list[Runtime],
) -> None:
    runtime, matrix = await start(
        make_config(matrix=matrix_section(synapse, bot_account)), runtimes
    )
    worker = await peer(synapse, bot_account.user_id)
    room = await worker.open_dm()
    await enrol(runtime, worker, room)

    # A very long message is refused (and nothing is kept of it).
    await worker.send(room, "a" * 5000)
    too_long = await worker.reply(room)
    assert too_long.body == t("fi", "flow.too_long", length=5000, limit=4000)

    await worker.send(room, "Ensimmäinen versio")
    theme = await worker.reply(room)
    # An edit is not read back into the draft; the question comes again.
    edited = await worker.client.room_send(
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "* Korjattu versio",
            "m.new_content": {"msgtype": "m.text", "body": "Korjattu versio"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": theme.event_id},
        },
    )
    assert isinstance(edited, nio.RoomSendResponse)
    refused, again = await worker.replies(room, 2)
    assert refused.body == t("fi", "flow.edit_ignored")
    assert again.body.startswith(t("fi", "ask.theme"))

    # An image is never stored.
    uploaded, _ = await worker.client.upload(
        lambda *_: PNG_1x1, content_type="image/png", filename="kuva.png", filesize=len(PNG_1x1)
    )
    assert isinstance(uploaded, nio.UploadResponse)
    image = {"msgtype": "m.image", "body": "kuva.png", "url": uploaded.content_uri}
    assert isinstance(
        await worker.client.room_send(room, "m.room.message", image), nio.RoomSendResponse
    )
    refused, again = await worker.replies(room, 2)
    assert refused.body == t("fi", "flow.media_refused")
    voice = {
        "msgtype": "m.audio",
        "body": "ääni.ogg",
        "url": uploaded.content_uri,
        "org.matrix.msc3245.voice": {},
    }
    await worker.client.room_send(room, "m.room.message", voice)
    refused, again = await worker.replies(room, 2)
    assert refused.body == t("fi", "flow.media_refused")

    # A redaction is ignored: nothing is answered.
    sent = await worker.client.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "1"})
    group = await worker.reply(room)
    assert group.body.startswith(t("fi", "ask.group"))
    assert isinstance(await worker.client.room_redact(room, sent.event_id), nio.RoomRedactResponse)
    await worker.quiet(room, 1.0)

    # The same event delivered twice is processed once: in the transport ...
    duplicate = nio.RoomMessageText.from_dict(
        {
            "type": "m.room.message",
            "event_id": "$duplicate-" + uuid.uuid4().hex,
            "sender": worker.user_id,
            "origin_server_ts": int(time.time() * 1000),
            "room_id": room,
            "content": {"msgtype": "m.text", "body": "2"},
        }
    )
    matrix_room = matrix.client.rooms[room]
    await matrix.on_event(matrix_room, duplicate)
    await matrix.on_event(matrix_room, duplicate)
    signal = await worker.reply(room)
    assert signal.body.startswith(t("fi", "ask.signal"))
    # ... and, after a restart forgot what the transport saw, in the service.
    matrix._seen.clear()
    await matrix.on_event(matrix_room, duplicate)
    # on_event returns after the replies went out: a short look is enough.
    await worker.quiet(room, 0.5)
    async with runtime.db.transaction() as session:
        draft = await session.get(Draft, (await session.scalar(select(Person.id))))
        assert draft is not None and draft.state["group"] == codes(taxonomy.GROUP)[1]

    # Replies to a message: the quoted fallback is not part of the answer.
    await worker.send(
        room,
        f"> <{bot_account.user_id}> {signal.body.splitlines()[0]}\n\n1",
        **{"m.relates_to": {"m.in_reply_to": {"event_id": signal.event_id}}},
    )
    frequency = await worker.reply(room)
    assert frequency.body.startswith(t("fi", "ask.frequency"))
    await worker.client.close()


@sqlite_only
async def test_rooms_unenrolled_people_and_media_out(
    synapse: Synapse,
    bot_account: Bot,
    make_config: Callable[..., Config],
    runtimes: list[Runtime],
) -> None:
    lead = await peer(synapse, bot_account.user_id)
    team_room = await lead.client.room_create(
        name="Helsingin etsivät", invite=[bot_account.user_id]
    )
    assert isinstance(team_room, nio.RoomCreateResponse)
    teams = [dict(TEST_TEAMS[0], matrix_room_id=team_room.room_id), *TEST_TEAMS[1:]]
    # Logged in with an access token this time (no password in the config).
    section = matrix_section(synapse, bot_account, password="", access_token=bot_account.token)
    runtime, _ = await start(make_config(matrix=section, teams=teams), runtimes)

    # The configured team room is joined; there "!uusi" gets "private chats only".
    await lead.until(lambda: (team_room.room_id, bot_account.user_id, "join") in lead.memberships)
    await lead.send(team_room.room_id, "!uusi")
    assert (await lead.reply(team_room.room_id)).body == matrix_commands(
        t("fi", "svc.private_only")
    )
    await lead.send(team_room.room_id, "Tavallista keskustelua tiimissä")
    await lead.send(team_room.room_id, "1")
    await lead.quiet(team_room.room_id, 1.0)

    # A stranger opens a DM: the bot joins, answers politely and stores nothing.
    stranger = await peer(synapse, bot_account.user_id)
    dm = await stranger.open_dm()
    await stranger.send(dm, "Hei, kuka olet?")
    assert (await stranger.reply(dm)).body == matrix_commands(t("fi", "svc.not_enrolled"))
    await stranger.send(dm, "!start VÄÄRÄKOODI")
    assert (await stranger.reply(dm)).body == t("fi", "svc.invite_unknown")
    for model in (Person, Identity, Draft, Observation, ProcessedEvent):
        assert await count(runtime.db, model) == 0, model

    # Invited into a room of three that is not in the config: the bot leaves.
    third = await peer(synapse, bot_account.user_id)
    group = await stranger.client.room_create(invite=[bot_account.user_id, third.user_id])
    assert isinstance(group, nio.RoomCreateResponse)
    await stranger.until(
        lambda: (group.room_id, bot_account.user_id, "leave") in stranger.memberships
    )
    assert (group.room_id, bot_account.user_id, "join") in stranger.memberships

    # When the stranger leaves the DM, the bot does not stay alone in it.
    assert dm in await joined_rooms(synapse, bot_account)
    await stranger.client.room_leave(dm)
    deadline = time.monotonic() + REPLY_TIMEOUT
    while dm in await joined_rooms(synapse, bot_account):
        assert time.monotonic() < deadline, "the bot stayed in an empty room"
        await asyncio.sleep(0.1)

    # Pictures and files go to the media repository and into the room.
    await runtime.router.deliver(
        [
            Outbound("matrix", team_room.room_id, Image(PNG_1x1, "Viikon kaavio", "kaavio.png")),
            Outbound(
                "matrix",
                team_room.room_id,
                Document(b"id;teema\n1;asuminen\n", "havainnot.csv", "", "text/csv"),
            ),
        ]
    )
    await lead.until(lambda: len(lead.files[team_room.room_id]) == 2)
    image, document = lead.files[team_room.room_id]
    assert image["msgtype"] == "m.image" and image["url"].startswith("mxc://")
    assert image["info"] == {"mimetype": "image/png", "size": len(PNG_1x1), "w": 1, "h": 1}
    assert document["msgtype"] == "m.file" and document["body"] == "havainnot.csv"
    assert (await lead.reply(team_room.room_id)).body == "Viikon kaavio"
    for person in (lead, stranger, third):
        await person.client.close()


async def joined_rooms(synapse: Synapse, bot: Bot) -> list[str]:
    """The rooms the bot account is in, asked from the homeserver."""
    url = f"{synapse.base_url}/_matrix/client/v3/joined_rooms"
    headers = {"Authorization": f"Bearer {bot.token}"}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        return list((await response.json())["joined_rooms"])


async def test_restart_mid_flow_neither_replays_nor_misses(
    synapse: Synapse,
    bot_account: Bot,
    make_config: Callable[..., Config],
    runtimes: list[Runtime],
) -> None:
    config = make_config(matrix=matrix_section(synapse, bot_account))
    runtime, _ = await start(config, runtimes)
    worker = await peer(synapse, bot_account.user_id)
    room = await worker.open_dm()
    await enrol(runtime, worker, room)
    await worker.send(room, "Kotihoidon asiakkaat jäävät ilman iltakäyntejä")
    await worker.reply(room)
    await worker.send(room, "2")
    group = await worker.reply(room)
    assert group.body.startswith(t("fi", "ask.group"))
    await worker.until(lambda: len(worker.bot_reactions[group.event_id]) == 7)
    await stop(runtime, runtimes)

    # While the bot is down the worker taps 4️⃣ under the open question.
    await worker.react(room, group.event_id, KEYCAPS[3])
    await worker.quiet(room, 0.5)

    runtime, matrix = await start(config, runtimes)
    # Exactly one answer: the next question. Nothing from before is answered again.
    signal = await worker.reply(room)
    assert signal.body.startswith(t("fi", "ask.signal"))
    # start() returns once the catch-up batch was handled and answered.
    await worker.quiet(room, 0.7)
    assert matrix.events_handled == 1
    await worker.send(room, "1")
    await worker.reply(room)
    await worker.send(room, "1")
    await worker.reply(room)
    await worker.send(room, "1")
    summary = await worker.reply(room)
    await worker.send(room, t("fi", "button.save"))
    assert (await worker.reply(room)).body.startswith("Tallennettu havainto #")
    [entry] = await observations(runtime)
    assert entry.theme == codes(taxonomy.THEME)[1]
    assert entry.population_group == codes(taxonomy.GROUP)[3]
    assert "Kotihoidon" in summary.body
    await worker.client.close()


@sqlite_only
async def test_first_start_does_not_answer_history(
    synapse: Synapse,
    bot_account: Bot,
    make_config: Callable[..., Config],
    runtimes: list[Runtime],
) -> None:
    # The account already sits in a room with old messages before Havainto first runs.
    worker = await peer(synapse, bot_account.user_id)
    created = await worker.client.room_create(
        is_direct=True, invite=[bot_account.user_id], preset=nio.RoomPreset.trusted_private_chat
    )
    assert isinstance(created, nio.RoomCreateResponse)
    room = created.room_id
    old_client = nio.AsyncClient(synapse.base_url, bot_account.user_id)
    old_client.access_token = bot_account.token
    try:
        assert isinstance(await old_client.join(room), nio.JoinResponse)
    finally:
        await old_client.close()
    await worker.send(room, "!apua")
    await worker.send(room, "Vanha viesti ennen botin käynnistystä")

    runtime, matrix = await start(
        make_config(matrix=matrix_section(synapse, bot_account)), runtimes
    )
    # start() returns once the first sync was handled: a short look is enough.
    await worker.quiet(room, 0.7)
    assert matrix.events_handled == 0
    await enrol(runtime, worker, room)
    await worker.client.close()


@sqlite_only
async def test_rate_limit_is_honoured_and_nothing_is_dropped(
    synapse: Synapse,
    bot_account: Bot,
    make_config: Callable[..., Config],
    runtimes: list[Runtime],
) -> None:
    runtime, matrix = await start(
        make_config(matrix=matrix_section(synapse, bot_account)), runtimes
    )
    worker = await peer(synapse, bot_account.user_id)
    room = await worker.open_dm()
    await enrol(runtime, worker, room)

    # From now on the homeserver lets the bot send one event a second.
    await synapse.set_user_ratelimit(bot_account.user_id, messages_per_second=2, burst_count=1)
    await worker.send(room, "!kieli")
    await worker.send(room, "!apua")
    ask, help_text = await worker.replies(room, 2)
    assert ask.options() == ["Suomi", "Svenska", "English"]
    assert help_text.body == matrix_commands(t("fi", "svc.help", **commands.shown("fi")))
    await worker.until(lambda: len(worker.bot_reactions[ask.event_id]) == 3)
    assert worker.bot_reactions[ask.event_id] == list(KEYCAPS[:3])
    await worker.react(room, ask.event_id, KEYCAPS[2])
    assert (await worker.reply(room)).body == t("en", "svc.language_set")
    assert matrix.rate_limited > 0, "the homeserver never said M_LIMIT_EXCEEDED"
    await synapse.clear_user_ratelimit(bot_account.user_id)
    await worker.quiet(room, 0.5)
    await worker.client.close()


async def test_one_person_on_telegram_and_matrix(
    synapse: Synapse,
    bot_account: Bot,
    make_config: Callable[..., Config],
    runtimes: list[Runtime],
) -> None:
    async with FakeTelegram() as telegram:
        config = telegram_config(make_config, telegram, matrix=matrix_section(synapse, bot_account))
        runtime, _ = await start(config, runtimes)
        assert {t.name for t in runtime.transports} == {"telegram", "matrix"}
        code = await runtime.service.create_invite(TEAM, "worker", timedelta(days=1))
        telegram.send_text(4242, f"/start {code}")
        assert "Tervetuloa" in (await telegram.wait_reply(4242)).text
        async with runtime.db.transaction() as session:
            person_id = await session.scalar(select(Identity.person_id))

        worker = await peer(synapse, bot_account.user_id)
        room = await worker.open_dm()
        await enrol(runtime, worker, room, person_id=person_id)
        async with runtime.db.transaction() as session:
            identities = (await session.scalars(select(Identity))).all()
        assert await count(runtime.db, Person) == 1
        assert sorted(i.transport for i in identities) == ["matrix", "telegram"]
        assert {i.person_id for i in identities} == {person_id}

        # One person, one draft: begun on Telegram, continued on Matrix.
        telegram.send_text(4242, "Lastensuojelun jonot kasvavat")
        assert (await telegram.wait_reply(4242)).text.startswith(t("fi", "ask.theme"))
        await worker.send(room, "!apua")
        help_text, question = await worker.replies(room, 2)
        assert "!omat" in help_text.body
        assert question.body.startswith(t("fi", "ask.theme"))
        await worker.send(room, "1")
        assert (await worker.reply(room)).body.startswith(t("fi", "ask.group"))
        await worker.client.close()


@sqlite_only
async def test_encrypted_direct_chat(
    synapse: Synapse,
    bot_account: Bot,
    make_config: Callable[..., Config],
    runtimes: list[Runtime],
    tmp_path: Path,
) -> None:
    config = make_config(matrix=matrix_section(synapse, bot_account))
    runtime, matrix = await start(config, runtimes)
    assert matrix.client.olm is not None
    worker = await peer(synapse, bot_account.user_id, store=tmp_path / "worker-store")
    room = await worker.open_dm(encrypted=True)
    await worker.sync()
    assert worker.client.rooms[room].encrypted

    welcome = await enrol(runtime, worker, room)
    assert welcome.decrypted and welcome.source["type"] == "m.room.message"
    await worker.send(room, "Salattu havainto toimeentulotuen jonoista")
    theme = await worker.reply(room)
    assert theme.decrypted and theme.body.startswith(t("fi", "ask.theme"))
    await worker.react(room, theme.event_id, KEYCAPS[1])
    group = await worker.reply(room)
    assert group.decrypted and group.body.startswith(t("fi", "ask.group"))
    async with runtime.db.transaction() as session:
        draft = (await session.scalars(select(Draft))).one()
    assert draft.state["description"] == "Salattu havainto toimeentulotuen jonoista"
    assert draft.state["theme"] == codes(taxonomy.THEME)[1]
    # The keys live in matrix.store_path: after a restart the same device reads on.
    assert any(bot_account.store.iterdir())
    device = matrix.client.device_id
    await stop(runtime, runtimes)
    runtime, matrix = await start(config, runtimes)
    assert matrix.client.device_id == device
    await worker.send(room, "3")
    signal = await worker.reply(room)
    assert signal.decrypted and signal.body.startswith(t("fi", "ask.signal"))
    await worker.client.close()


@sqlite_only
async def test_without_encryption_support_the_bot_says_so(
    synapse: Synapse,
    bot_account: Bot,
    make_config: Callable[..., Config],
    runtimes: list[Runtime],
    tmp_path: Path,
) -> None:
    runtime = await build_runtime(make_config())
    runtimes.append(runtime)
    config = runtime.config.matrix.model_copy(update=matrix_section(synapse, bot_account))
    state = DatabaseState(runtime.db)
    matrix = MatrixTransport(config, runtime.service, runtime.router, state, encryption=False)
    runtime.router.add(matrix)
    runtime.transports.append(matrix)
    await matrix.start()
    worker = await peer(synapse, bot_account.user_id, store=tmp_path / "worker-store")
    room = await worker.open_dm(encrypted=True)
    await worker.sync()
    await worker.send(room, "!start KOODI")
    notice = await worker.reply(room)
    assert notice.body == t("fi", "matrix.encryption_unsupported", domain="matrix")
    assert not notice.decrypted
    await worker.client.close()


# --- rendering (no homeserver needed) ---------------------------------------------------


def test_render_escapes_numbers_and_splits() -> None:
    question = Message(
        "Mitä <script> & muuta?\nToinen rivi",
        ((Choice("A & B", "x:1"), Choice("<i>C</i>", "x:2")),),
    )
    [content] = render_message(question)
    assert content["msgtype"] == "m.notice"
    assert content["body"] == "Mitä <script> & muuta?\nToinen rivi\n\n1. A & B\n2. <i>C</i>"
    assert content["formatted_body"] == (
        "Mitä &lt;script&gt; &amp; muuta?<br>Toinen rivi"
        "<ol><li>A &amp; B</li><li>&lt;i&gt;C&lt;/i&gt;</li></ol>"
    )
    # A message's own HTML is the base when given (its builder escaped the user text).
    [styled] = render_message(Message("Tärkeä", html="<b>Tärkeä</b>"))
    assert styled["formatted_body"] == "<b>Tärkeä</b>" and styled["body"] == "Tärkeä"

    long_text = "\n\n".join(f"Kappale {i}: " + "ä" * 3000 for i in range(12))
    pieces = render_message(Message(long_text, ((Choice("OK", "ok"),),)))
    assert len(pieces) > 1
    assert all(len(p["body"]) <= 16_000 + 10 for p in pieces)
    assert all(len(json.dumps(p, ensure_ascii=False).encode()) <= 60_000 for p in pieces)
    assert pieces[-1]["body"].endswith("1. OK") and "1. OK" not in pieces[0]["body"]
    emoji = render_message(Message("😀" * 15_000))
    assert all(len(json.dumps(p, ensure_ascii=False).encode()) <= 60_000 for p in emoji)
    assert "".join(p["body"] for p in emoji) == "😀" * 15_000


def test_commands_are_written_with_an_exclamation_mark() -> None:
    assert matrix_commands("Lähetä /start KOODI tai /uusi. Ohje: /apua, /omat-lista") == (
        "Lähetä !start KOODI tai !uusi. Ohje: !apua, !omat-lista"
    )
    # Links, paths and unknown words stay as they are.
    unchanged = "https://t.me/uusi ja a/uusi ja /tuntematon ja </b>"
    assert matrix_commands(unchanged) == unchanged


@sqlite_only
async def test_shl48_notice_in_a_matrix_leadership_room(
    synapse: Synapse,
    bot_account: Bot,
    make_config: Callable[..., Config],
    runtimes: list[Runtime],
) -> None:
    leader = await peer(synapse, bot_account.user_id)
    channel = await leader.client.room_create(name="Helsingin johto", invite=[bot_account.user_id])
    assert isinstance(channel, nio.RoomCreateResponse)
    leadership = [
        dict(TEST_LEADERSHIP[0], telegram_chat_id="", matrix_room_id=channel.room_id),
        *TEST_LEADERSHIP[1:],
    ]
    config = make_config(matrix=matrix_section(synapse, bot_account), leadership=leadership)
    runtime, _ = await start(config, runtimes)
    await leader.until(lambda: (channel.room_id, bot_account.user_id, "join") in leader.memberships)
    leader_dm = await leader.open_dm()
    code = await runtime.service.create_invite(TEAM, "leader", timedelta(days=1))
    await leader.send(leader_dm, f"!start {code}")
    await leader.reply(leader_dm)

    worker = await peer(synapse, bot_account.user_id)
    room = await worker.open_dm()
    await enrol(runtime, worker, room)
    await save_by_numbers(worker, room, "Asiakkaan kotihoito laiminlyöty viikon ajan", "3")
    [entry] = await observations(runtime)
    assert entry.escalation == "escalation.shl48"

    # The notice reaches the leaders' room at once; a leader taps 1️⃣ (acknowledge).
    notice = await leader.reply(channel.room_id)
    assert f"#{entry.id}" in notice.body and "kotihoito" in notice.body
    assert len(notice.options()) >= 2
    await leader.until(lambda: len(leader.bot_reactions[notice.event_id]) == len(notice.options()))
    await leader.react(channel.room_id, notice.event_id, KEYCAPS[0])
    # The notice is edited in place (m.replace) and the reporter hears of it.
    edited = await leader.reply(channel.room_id)
    relation = edited.source["content"]["m.relates_to"]
    assert relation == {"rel_type": "m.replace", "event_id": notice.event_id}
    assert "✅" in edited.source["content"]["m.new_content"]["body"]
    told = f"Johto kuittasi ilmoituksesi #{entry.id}"
    await worker.until(lambda: any(n.body.startswith(told) for n in worker.notices[room]))
    for person in (leader, worker):
        await person.client.close()


@sqlite_only
async def test_a_revoked_token_means_a_new_login(
    synapse: Synapse,
    bot_account: Bot,
    make_config: Callable[..., Config],
    runtimes: list[Runtime],
) -> None:
    runtime, matrix = await start(
        make_config(matrix=matrix_section(synapse, bot_account)), runtimes
    )
    worker = await peer(synapse, bot_account.user_id)
    room = await worker.open_dm()
    await enrol(runtime, worker, room)
    first_device = matrix.client.device_id
    async with runtime.db.transaction() as session:
        token = await repo.get_state(session, f"matrix:{bot_account.user_id}:access_token")
    assert token == matrix.client.access_token

    # Someone logs the bot's device out (an admin, "sign out all other sessions").
    url = f"{synapse.base_url}/_matrix/client/v3/logout"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, headers={"Authorization": f"Bearer {token}"}, json={}) as response,
    ):
        assert response.status == 200, await response.text()
    await worker.send(room, "!apua")
    assert (await worker.reply(room)).body == matrix_commands(
        t("fi", "svc.help", **commands.shown("fi"))
    )
    assert matrix.client.device_id != first_device
    async with runtime.db.transaction() as session:
        assert await repo.get_state(session, f"matrix:{bot_account.user_id}:device_id") == (
            matrix.client.device_id
        )
    await worker.client.close()
