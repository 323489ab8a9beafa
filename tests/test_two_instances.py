"""Two bot processes on one PostgreSQL database: every digest and § 48 notice is posted once.

Instance A serves Telegram (the fake Bot API in this test process), instance B
serves Matrix (the session's Synapse); both run the scheduler on the shared stored
runs, as two instances of a production deployment would. Every team and
leadership channel is on both platforms.

* The weekly and monthly jobs are due when both start (their stored run time is in
  the past, within the misfire grace, and both clocks say it is 09:00 on Tuesday
  1 December 2026, the first working day of the month): each team chat and each
  leadership channel, on each platform, gets its digest exactly once.
* A worker saves a § 48 entry through instance A (Telegram). The leadership
  channel gets exactly one notice on each platform: Telegram from A at once,
  Matrix from B (A has no Matrix). Reminders every few seconds (a short
  ``escalation.reminder_hours``) are posted once per period on each platform, not
  once per instance.

The instances run ``tests/instance_process.py``: ``havainto run`` with a shifted
clock and an escalation check every second. PostgreSQL only: it is the database
several instances share.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nio
import pytest
from sqlalchemy import select

from bot.config import load_config
from bot.runtime import build_runtime
from flows.i18n import t
from storage import repo
from storage.db import Database
from storage.models import Delivery, Notification, Observation
from tests.support.bot_process import ChatUser
from tests.support.datacare_helpers import observation
from tests.support.fake_telegram import FakeTelegram, SentCall
from tests.support.scheduling import went_down
from tests.support.synapse_harness import Synapse
from tests.support.telegram import telegram_section
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
# 09:00 in Helsinki on Tuesday 1 December 2026: the previous ISO week is 2026-W48 and
# the monthly summary of November is due.
THEIR_NOW = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
REMINDER_SECONDS = 4.0
CHECK_SECONDS = 1.0
WORKER = 1101
TEAMS = {
    # id: (name, region, language, Telegram chat, weekly title word)
    "hki-etsiva": ("Helsingin etsivät", "helsinki", "fi", -1001, "Viikkokooste"),
    "vaasa-uppsok": ("Vasa uppsökande", "pohjanmaa", "sv", -1002, "Veckosammandrag"),
}
CHANNELS = {
    # id: (region, language, Telegram chat, monthly title word)
    "hki-johto": ("helsinki", "fi", -2001, "Kuukausikooste"),
    "pohjanmaa-ledning": ("pohjanmaa", "sv", -2002, "Månadssammandrag"),
    "koko-johto": ("", "fi", -2000, "Kuukausikooste"),
}
SEEDED = {"hki-etsiva": (24, 25, 26), "vaasa-uppsok": (25, 27)}  # days of week 48


def unique(prefix: str) -> str:
    return f"{prefix}-u{uuid.uuid4().hex[:8]}"


# --- the two processes -----------------------------------------------------------------


class Instance:
    """``tests/instance_process.py`` in a child process; its log is read from stderr."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.process: asyncio.subprocess.Process | None = None
        self.log = ""
        self._reader: asyncio.Task[None] | None = None

    async def start(self, config: dict[str, Any], offset: float) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.instance_process",
            json.dumps(config),
            str(offset),
            str(CHECK_SECONDS),
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.log += line.decode("utf-8", "replace")

    async def wait_log(self, text: str, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while text not in self.log:
            assert self.process is not None
            if self.process.returncode is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {text!r} not logged:\n{self.log[-3000:]}")
            await asyncio.sleep(0.1)

    async def stop(self) -> int:
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else 0
        self.process.terminate()
        code = await asyncio.wait_for(self.process.wait(), 60)
        if self._reader is not None:
            await self._reader
        return code

    def errors(self) -> list[str]:
        return [line for line in self.log.splitlines() if " ERROR " in line or "Traceback" in line]


# --- the Matrix side ---------------------------------------------------------------------


@dataclass
class MatrixSide:
    owner: nio.AsyncClient
    bot_id: str
    bot_password: str
    rooms: dict[str, str]  # team or channel id -> room id

    async def events(self, room_id: str) -> list[dict[str, Any]]:
        """The bot's events in the room, oldest first."""
        found: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(10):
            page = await self.owner.room_messages(room_id, start=token, limit=100)
            assert isinstance(page, nio.RoomMessagesResponse), page
            found += [e.source for e in page.chunk if e.source.get("sender") == self.bot_id]
            if not page.chunk or page.end is None or page.end == token:
                break
            token = page.end
        return sorted(found, key=lambda e: e.get("origin_server_ts", 0))

    async def messages(self, room_id: str, msgtype: str) -> list[dict[str, Any]]:
        return [
            e
            for e in await self.events(room_id)
            if e.get("type") == "m.room.message" and e["content"].get("msgtype") == msgtype
        ]


@pytest.fixture
def postgresql_url(db_url: str) -> str:
    if not db_url.startswith("postgresql"):
        pytest.skip("several instances share a PostgreSQL database (HAVAINTO_TEST_DATABASE_URL)")
    return db_url


@pytest.fixture
async def matrix(postgresql_url: str, request: pytest.FixtureRequest) -> AsyncIterator[MatrixSide]:
    # Asked for here, after the backend check: no Synapse is started for a skipped test.
    synapse: Synapse = request.getfixturevalue("synapse")
    password = "bot-secret"
    bot_id, _, _ = await synapse.register(unique("havainto"), password)
    owner = await synapse.nio_client(unique("owner"))
    rooms: dict[str, str] = {}
    for key in (*TEAMS, *CHANNELS):
        created = await owner.room_create(name=key, invite=[bot_id])
        assert isinstance(created, nio.RoomCreateResponse), created
        rooms[key] = created.room_id
    try:
        yield MatrixSide(owner, bot_id, password, rooms)
    finally:
        await owner.close()


# --- configuration and data ------------------------------------------------------------


def base_config(db_url: str, matrix: MatrixSide) -> dict[str, Any]:
    return {
        "database": {"url": db_url},
        "terminal": {"enabled": "no"},
        "teams": [
            {
                "id": team,
                "name": name,
                "region": region,
                "language": lang,
                "telegram_chat_id": str(chat),
                "matrix_room_id": matrix.rooms[team],
                "leadership": "hki-johto" if team == "hki-etsiva" else "pohjanmaa-ledning",
            }
            for team, (name, region, lang, chat, _) in TEAMS.items()
        ],
        "leadership": [
            {
                "id": channel,
                "name": channel,
                "region": region,
                "language": lang,
                "telegram_chat_id": str(chat),
                "matrix_room_id": matrix.rooms[channel],
            }
            for channel, (region, lang, chat, _) in CHANNELS.items()
        ],
        "schedule": {"send_retries": 2, "send_retry_seconds": 0.1},
        # The first reminder after reminder_hours, not after a working day.
        "escalation": {"reminder_hours": REMINDER_SECONDS / 3600, "acknowledge_days": 0},
    }


async def prepare_database(config: dict[str, Any]) -> str:
    """Migrate, seed week 48, make the weekly and monthly runs due; returns an invite code."""
    cfg = load_config(None, **config)
    cfg.schedule.escalation_check_minutes = CHECK_SECONDS / 60  # type: ignore[assignment]
    runtime = await build_runtime(cfg, terminal=False)
    try:
        async with runtime.db.transaction() as session:
            for index, (team, days) in enumerate(SEEDED.items()):
                invite = await repo.create_invite(
                    session, team, "worker", THEIR_NOW - timedelta(days=30), timedelta(days=9)
                )
                member = await repo.redeem_invite(
                    session,
                    invite.code,
                    "telegram",
                    str(9000 + index),
                    str(9000 + index),
                    "fi",
                    THEIR_NOW - timedelta(days=29),
                )
                for day in days:
                    when = datetime(2026, 11, day, 10, 0, tzinfo=UTC)
                    await repo.add_observation(
                        session,
                        **observation(
                            member,
                            when,
                            TEAMS[team][1],
                            team_id=team,
                            description=f"Havainto {team}",
                            escalation="escalation.leadership",
                            language="fi",
                        ),
                    )
            invite = await repo.create_invite(
                session, "hki-etsiva", "worker", datetime.now(UTC), timedelta(days=30)
            )
            code = invite.code
        # Both instances find the two runs due (missed a minute ago, well within the grace).
        due = datetime.now(UTC) - timedelta(minutes=1)
        await went_down(runtime, {"weekly_digests": due, "monthly_summaries": due})
    finally:
        await runtime.stop()
    return code


def telegram_posts(fake: FakeTelegram, chat: int, method: str = "sendMessage") -> list[SentCall]:
    return [c for c in fake.sent if c.method == method and str(c.chat_id) == str(chat)]


# --- the test ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_two_instances_post_every_digest_and_notice_once(
    postgresql_url: str, matrix: MatrixSide, tmp_path: Path
) -> None:
    db_url = postgresql_url
    async with FakeTelegram() as fake:
        config = base_config(db_url, matrix)
        code = await prepare_database(config)
        telegram_instance = {
            **config,
            "database": {"url": db_url, "spool_dir": str(tmp_path / "spool-a")},
            "telegram": telegram_section(fake),
        }
        matrix_instance = {
            **config,
            "database": {"url": db_url, "spool_dir": str(tmp_path / "spool-b")},
            "matrix": {
                "homeserver": matrix.owner.homeserver,
                "user_id": matrix.bot_id,
                "password": matrix.bot_password,
                "store_path": str(tmp_path / "matrix-store"),
            },
        }
        offset = (THEIR_NOW - datetime.now(UTC)).total_seconds()
        a, b = Instance("telegram instance"), Instance("matrix instance")
        db = Database(db_url)
        try:
            await asyncio.gather(
                a.start(telegram_instance, offset), b.start(matrix_instance, offset)
            )
            await asyncio.gather(
                a.wait_log("running transports=telegram"), b.wait_log("running transports=matrix")
            )
            try:
                await digests_posted_once(fake, matrix, db)
                await shl48_posted_once_and_reminded_once_per_period(fake, matrix, db, code)
            except AssertionError as error:
                async with db.transaction() as session:
                    rows = (await session.execute(select(Delivery))).scalars().all()
                ledger = "\n".join(f"{r.key} {r.status} {r.last_error}" for r in rows)
                raise AssertionError(
                    f"{error}\n--- ledger:\n{ledger}\n--- {a.name}:\n{a.log[-4000:]}"
                    f"\n--- {b.name}:\n{b.log[-4000:]}"
                ) from None
        finally:
            codes = await asyncio.gather(a.stop(), b.stop())
            async with db.transaction() as session:
                final = {
                    r.key: (r.status, r.last_error)
                    for r in (await session.execute(select(Delivery))).scalars().all()
                }
            await db.close()
        assert codes == [0, 0], (a.log[-2000:], b.log[-2000:])
        assert a.errors() == [] and b.errors() == [], a.errors() + b.errors()
        # Each instance posted only on its own platform: the one that ran a digest job
        # handed the other platform's deliveries over (a failed attempt due at once), and
        # the instance running that platform took each of them -- with its own digest job
        # or its retry job, whichever came first (both run at the same minute, so which
        # one is a race; CI once saw the digest job win every time).
        assert "no_transport" not in a.log + b.log
        handed = re.findall(r"digest_handed_over key=(\S+)", a.log + b.log)
        assert handed
        for key in handed:
            assert final[key][0] == "sent", (key, final[key])


async def digests_posted_once(fake: FakeTelegram, matrix: MatrixSide, db: Database) -> None:
    expected = 2 * (len(TEAMS) + len(CHANNELS))  # every channel, on both platforms

    async def all_sent() -> bool:
        async with db.transaction() as session:
            rows = (await session.execute(select(Delivery))).scalars().all()
        return len(rows) == expected and all(r.status == "sent" for r in rows)

    await wait_until(all_sent, 90, "every digest delivered")
    await asyncio.sleep(2 * CHECK_SECONDS)  # a late second post would show up by now
    async with db.transaction() as session:
        rows = list((await session.execute(select(Delivery))).scalars().all())
    keys = sorted(r.key for r in rows)
    assert keys == sorted(
        [f"weekly:{team}:2026-W48:{where}" for team in TEAMS for where in _where(team, matrix)]
        + [
            f"monthly:{region or 'all'}:2026-11:{where}"
            for channel, (region, *_) in CHANNELS.items()
            for where in _where(channel, matrix)
        ]
    )
    for team, (name, _, _, chat, title) in TEAMS.items():
        texts = [c for c in telegram_posts(fake, chat) if title in (c.text or "")]
        assert len(texts) == 1 and name in (texts[0].text or ""), [c.text for c in texts]
        assert len(telegram_posts(fake, chat, "sendPhoto")) == 1
        room = matrix.rooms[team]
        notices = [
            e
            for e in await matrix.messages(room, "m.notice")
            if e["content"]["body"].startswith(title) and "\n" in e["content"]["body"]
        ]
        assert len(notices) == 1 and name in notices[0]["content"]["body"]
        assert len(await matrix.messages(room, "m.image")) == 1
    for channel, (_, _, chat, title) in CHANNELS.items():
        texts = [c for c in telegram_posts(fake, chat) if title in (c.text or "")]
        assert len(texts) == 1, [c.text for c in texts]
        assert len(telegram_posts(fake, chat, "sendDocument")) == 2  # the CSV and the PDF
        room = matrix.rooms[channel]
        notices = [
            e
            for e in await matrix.messages(room, "m.notice")
            if e["content"]["body"].startswith(title) and "\n" in e["content"]["body"]
        ]
        assert len(notices) == 1
        assert len(await matrix.messages(room, "m.file")) == 2  # the CSV and the PDF


def _where(key: str, matrix: MatrixSide) -> list[str]:
    chat = TEAMS[key][3] if key in TEAMS else CHANNELS[key][2]
    return [f"telegram:{chat}", f"matrix:{matrix.rooms[key]}"]


async def shl48_posted_once_and_reminded_once_per_period(
    fake: FakeTelegram, matrix: MatrixSide, db: Database, code: str
) -> None:
    worker = ChatUser(fake, WORKER)
    mark, _ = worker.say(f"/start {code}")
    await worker.wait_message(mark, "Helsingin etsivät")
    mark, _ = worker.say("Asumispalvelussa nuori jäi ilman lääkitystä")
    await worker.wait_message(mark)
    for value in (
        "theme.housing",
        "group.youth",
        "signal.queues",
        "frequency.recurring",
        "escalation.shl48",
    ):
        mark, _ = worker.tap_value(value)
        await worker.wait_message(mark)
    mark, _ = worker.tap_value("save")
    await worker.wait_message(mark, "#")
    async with db.transaction() as session:
        entry = (
            (
                await session.execute(
                    select(Observation)
                    .where(Observation.transport == "telegram")
                    .order_by(Observation.id.desc())
                )
            )
            .scalars()
            .first()
        )
    assert entry is not None and entry.escalation == "escalation.shl48"
    number = entry.id
    leaders_chat, leaders_room = CHANNELS["hki-johto"][2], matrix.rooms["hki-johto"]

    def on_telegram() -> list[SentCall]:
        return [c for c in telegram_posts(fake, leaders_chat) if f"#{number}" in (c.text or "")]

    async def on_matrix() -> list[dict[str, Any]]:
        return [
            e
            for e in await matrix.messages(leaders_room, "m.notice")
            if f"#{number}" in e["content"]["body"]
        ]

    async def both_posted() -> bool:
        return bool(on_telegram()) and bool(await on_matrix())

    await wait_until(both_posted, 30, "the § 48 notice on both platforms")
    window_start = time.monotonic()
    # Several reminder periods pass with both instances checking every second.
    await asyncio.sleep(3.6 * REMINDER_SECONDS)
    async with db.transaction() as session:
        rows = {
            r.transport: r
            for r in (
                await session.execute(
                    select(Notification).where(Notification.observation_id == number)
                )
            ).scalars()
        }
    window = time.monotonic() - window_start + REMINDER_SECONDS
    most = int(window // REMINDER_SECONDS) + 1
    telegram_notices = on_telegram()
    matrix_notices = await on_matrix()
    hours = f"{REMINDER_SECONDS / 3600:g}"
    reminder = t("fi", "esc.reminder", domain="escalation", number=number, hours=hours)
    for transport, posts, times in (
        ("telegram", telegram_notices, [c.time for c in telegram_notices]),
        (
            "matrix",
            matrix_notices,
            [e["origin_server_ts"] / 1000 for e in matrix_notices],
        ),
    ):
        row = rows[transport]
        # One notice, then one reminder per period: as many as the row counts, no more.
        assert len(posts) == 1 + row.reminders, (transport, len(posts), row.reminders)
        assert 2 <= row.reminders <= most, (transport, row.reminders, most)
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert all(gap >= REMINDER_SECONDS - 1.0 for gap in gaps), (transport, gaps)
    assert reminder in html.unescape(telegram_notices[-1].text or "")
    assert reminder in matrix_notices[-1]["content"]["body"]
