"""Fault tests: SIGKILL with 50 open drafts, PostgreSQL gone mid-flow, duplicate and old updates.

The bot runs for real against the fake Bot API server over HTTP on 127.0.0.1:
in a child process (``havainto run``) where it is killed, in the test's own
event loop where the database connection is cut. PostgreSQL is never stopped
(other tests share the server): a small TCP proxy between the bot and the
server is cut instead -- open connections reset, new ones refused -- and put
back a few seconds later.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from telegram import Update
from telegram.ext import ContextTypes, TypeHandler

from bot.config import Config, load_config
from bot.runtime import Runtime, build_runtime
from bot.service import Havainto
from bot.spool import Spool, is_unavailable, spool_path
from bot.transports.telegram import TelegramTransport
from flows.events import ChoiceIn, CommandIn, Incoming, LocationIn, TextIn
from flows.i18n import t
from storage.db import Database
from storage.models import Draft, Observation, ProcessedEvent
from tests.conftest import TEST_LEADERSHIP, TEST_TEAMS
from tests.support.bot_process import BotProcess, ChatUser
from tests.support.db import count
from tests.support.fake_telegram import FakeTelegram
from tests.support.telegram import telegram_section

# What a worker picks at each coded step, by the prefix of the button's value.
PICKS = {
    "theme.": "theme.housing",
    "group.": "group.youth",
    "signal.": "signal.queues",
    "frequency.": "frequency.growing",
    "escalation.": "escalation.none",
}
STEPS = ("theme.housing", "group.youth", "signal.queues", "frequency.growing", "escalation.none")
SAVED_PREFIX = t("fi", "svc.saved", number=0).split("#")[0]


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


def next_value(user: ChatUser) -> str | None:
    """The button a worker completing the quick path presses next, from what they see."""
    buttons = user.buttons()
    for _, data in buttons:
        if data.endswith(":save"):
            return "save"
    for _, data in buttons:
        value = data.rsplit(":", 1)[-1]
        for prefix, pick in PICKS.items():
            if value.startswith(prefix):
                return pick
    return None


def process_config(fake: FakeTelegram, db_url: str, tmp_path: Path) -> dict[str, Any]:
    """The config of ``havainto run`` in a child process, polling ``fake``."""
    return {
        "database": {"url": db_url, "spool_dir": str(tmp_path / "spool")},
        "telegram": telegram_section(fake),
        "terminal": {"enabled": "no"},
        "teams": TEST_TEAMS,
        "leadership": TEST_LEADERSHIP,
    }


# --- SIGKILL with 50 open drafts ----------------------------------------------------------


@pytest.mark.slow
async def test_sigkill_with_50_open_drafts_loses_and_duplicates_nothing(
    fake: FakeTelegram, db_url: str, tmp_path: Path
) -> None:
    config = process_config(fake, db_url, tmp_path)
    bot = BotProcess(tmp_path, config)
    db = Database(db_url)
    workers = [ChatUser(fake, 7000 + i) for i in range(50)]
    texts = {w.user_id: f"Havainto {w.user_id}: yöpaikat loppuivat kesken" for w in workers}
    try:
        await bot.start()
        service = Havainto(load_config(bot.config_path), db)
        codes = [
            await service.create_invite("hki-etsiva", "worker", timedelta(days=1)) for _ in workers
        ]

        async def enrol_and_advance(index: int, worker: ChatUser) -> None:
            mark, _ = worker.say(f"/start {codes[index]}")
            await worker.wait_message(mark, "Helsingin etsivät", timeout=60)
            mark, _ = worker.say(texts[worker.user_id])
            await worker.wait_message(mark, t("fi", "ask.theme"), timeout=60)
            # Each worker leaves the draft at a different step: 0..5 answers given.
            for value in STEPS[: index % 6]:
                _, update_id = worker.tap_value(value)
                await worker.wait_press_done(update_id, timeout=60)

        clock = asyncio.get_running_loop().time
        began = clock()
        await asyncio.gather(*(enrol_and_advance(i, w) for i, w in enumerate(workers)))
        phases = {"start+enrol+advance": clock() - began}
        async with db.transaction() as session:
            steps = Counter(
                d.state["step"] for d in (await session.execute(select(Draft))).scalars()
            )
        assert sum(steps.values()) == 50 and len(steps) == 6, steps

        # Half of them press their next button; the process is killed while those run.
        in_flight = [w for i, w in enumerate(workers) if i % 2 == 0]
        marks = {w.user_id: w.tap_value(next_value(w) or "")[0] for w in in_flight}
        await asyncio.sleep(0.05)
        await bot.kill()

        def answered() -> int:
            return sum(
                1 for w in in_flight if any(c.index >= marks[w.user_id] for c in w.bot_messages())
            )

        answered_before_kill = answered()
        assert "Havainto 70" not in bot.log  # what workers typed never reaches the log

        restarted = BotProcess(tmp_path, config)
        bot = restarted
        began = clock()
        await bot.start()
        phases["restart"] = clock() - began
        began = clock()
        # Updates the killed process had not confirmed come again to the new one.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while fake.pending_updates and loop.time() < deadline:  # noqa: ASYNC110 - the fake's queue
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        answered_after_restart = answered()

        async def settled(worker: ChatUser, timeout: float = 15.0) -> bool:  # noqa: ASYNC109
            """Wait for a question or the saved message to show up; False if none did."""
            deadline = loop.time() + timeout
            while loop.time() < deadline:
                messages = worker.bot_messages()
                if next_value(worker) is not None or any(
                    SAVED_PREFIX in (c.text or "") for c in messages
                ):
                    return True
                await asyncio.sleep(0.1)
            return False

        async def complete(worker: ChatUser) -> None:
            for _ in range(15):
                if any(SAVED_PREFIX in (c.text or "") for c in worker.bot_messages()):
                    return
                value = next_value(worker)
                if value is None:
                    # No question open: a kept event is still to be replayed, or the Save
                    # was handled and its answer went down with the killed process.
                    if not await settled(worker):
                        break
                    continue
                _, update_id = worker.tap_value(value)
                try:
                    await worker.wait_press_done(update_id, timeout=20)
                except AssertionError:
                    continue  # lost with the killed process: press again, as a person would
            async with db.transaction() as session:
                saved = (
                    await session.execute(
                        select(func.count())
                        .select_from(Observation)
                        .where(Observation.description == texts[worker.user_id])
                    )
                ).scalar_one()
            assert saved == 1, (
                f"worker {worker.user_id} did not complete\n{worker.transcript()}\n"
                + bot.log[-6000:]
            )

        await asyncio.gather(*(complete(w) for w in workers))
        phases["complete"] = clock() - began
        async with db.transaction() as session:
            entries = list((await session.execute(select(Observation))).scalars())
        # Not inside the transaction above: on SQLite every unit of work holds the write
        # lock (BEGIN IMMEDIATE), so a second one in the same task would wait for itself.
        drafts = await count(db, Draft)
        assert len(entries) == 50, len(entries)
        assert sorted(e.description for e in entries) == sorted(texts.values())
        assert len({e.id for e in entries}) == 50 and len({e.person_id for e in entries}) == 50
        assert drafts == 0
        assert await bot.terminate() == 0, bot.log[-3000:]
        print(
            f"SIGKILL: draft steps {dict(steps)}; {len(in_flight)} presses in flight, "
            f"{answered_before_kill} answered before the kill, {answered_after_restart} after "
            f"the restart; the rest pressed again; "
            + ", ".join(f"{k} {v:.1f}s" for k, v in phases.items())
        )
    finally:
        await bot.kill()
        await db.close()


# --- PostgreSQL unreachable for a moment ---------------------------------------------------


class TcpProxy:
    """A TCP proxy on 127.0.0.1 in front of PostgreSQL that the test can cut and restore."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        self._server = None

    async def restore(self) -> None:
        await self.start()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (OSError, RuntimeError):
                pass
            finally:
                sink.transport.abort()
                self._writers.discard(sink)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


class LogRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(
            record.getMessage()
            + (
                "\n" + logging.Formatter().formatException(record.exc_info)
                if record.exc_info
                else ""
            )
            for record in self.records
        )


@pytest.fixture
async def proxied_runtime(
    fake: FakeTelegram, make_config: Callable[..., Config], db_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Callable[[], Any], TcpProxy, Database]]:
    """(start a runtime, the proxy, a direct database handle), PostgreSQL only."""
    if not db_url.startswith("postgresql"):
        pytest.skip("cutting the database connection needs PostgreSQL")
    url = make_url(db_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    config = make_config(
        database={
            "url": url.set(host="127.0.0.1", port=proxy.port).render_as_string(False),
            "spool_dir": str(tmp_path / "spool"),
        },
        telegram=telegram_section(fake),
    )
    direct = Database(db_url)
    started: list[Runtime] = []
    logs = LogRecords()
    logging.getLogger("havainto").addHandler(logs)

    async def start() -> Runtime:
        runtime = await build_runtime(config, terminal=False)
        assert runtime.replayer is not None
        runtime.replayer.max_delay = 1.0  # production backs off to 30 s; keep the test short
        await runtime.start()
        started.append(runtime)
        return runtime

    start.logs = logs  # type: ignore[attr-defined]
    try:
        yield start, proxy, direct
    finally:
        logging.getLogger("havainto").removeHandler(logs)
        for runtime in started:
            await runtime.stop(grace=2)
        if proxy._server is None:
            await proxy.restore()
        await direct.close()


async def drive_to_summary(user: ChatUser, code: str, text: str) -> None:
    mark, _ = user.say(f"/start {code}")
    await user.wait_message(mark, "Helsingin etsivät")
    mark, _ = user.say(text)
    await user.wait_message(mark, t("fi", "ask.theme"))
    for value in STEPS:
        _, update_id = user.tap_value(value)
        await user.wait_press_done(update_id)


async def test_save_while_postgresql_is_unreachable_is_kept_and_saved_when_it_is_back(
    fake: FakeTelegram, proxied_runtime: tuple[Callable[[], Any], TcpProxy, Database]
) -> None:
    start, proxy, direct = proxied_runtime
    runtime: Runtime = await start()
    worker = ChatUser(fake, 8001)
    code = await runtime.service.create_invite("hki-etsiva", "worker", timedelta(days=1))
    await drive_to_summary(worker, code, "Päihdepalveluihin ei pääse ilman lähetettä")

    await proxy.cut()
    mark, save = worker.tap_value("save")
    kept = await worker.wait_message(mark)
    # The answer closes the pressed summary: it is what the edit added below it.
    assert fake.added_text(kept) == t("fi", "svc.offline_save_kept")
    await worker.wait_press_done(save)
    # Delivered again while kept (a platform retrying): no second copy, no second notice.
    again = Incoming("telegram", "8001", "8001", ChoiceIn("d:x:9:save"), event_id=str(save))
    assert await runtime.service.handle(again) == []
    # The worker asks for their entries meanwhile: it queues behind the Save.
    mark2, _ = worker.say("/omat")
    assert (await worker.wait_message(mark2)).text == t("fi", "svc.offline_kept")
    spool_dir = runtime.service.spool.directory
    assert len(list(spool_dir.glob("*.json"))) == 2
    assert await count(direct, Observation) == 0
    await asyncio.sleep(3)  # the database stays away for a while; the bot keeps trying
    assert runtime.transports[0].running  # type: ignore[attr-defined]

    await proxy.restore()
    saved = await worker.wait_message(mark2, "#1", timeout=20)
    assert saved.text == t("fi", "svc.saved", number=1)
    own = await worker.wait_message(saved.index + 1, timeout=10)
    assert "#1" in (own.text or "") and "Päihdepalveluihin" in (own.text or "")
    async with direct.transaction() as session:
        entries = list((await session.execute(select(Observation))).scalars())
    assert [e.description for e in entries] == ["Päihdepalveluihin ei pääse ilman lähetettä"]
    assert entries[0].theme == "theme.housing"
    assert list(spool_dir.glob("*.json")) == []
    assert len(runtime.service.spool) == 0

    # No crash loop: the bot went on serving all along and takes the next entry normally.
    mark, _ = worker.say("Toinen havainto katkon jälkeen")
    asked = (await worker.wait_message(mark)).text or ""
    assert asked.startswith(t("fi", "ask.theme"))  # with "Same as last time" offered below
    assert "Sama kuin viimeksi" in asked
    logs = start.logs.text()  # type: ignore[attr-defined]
    assert "event_spooled" in logs and "event_replayed" in logs
    assert "Päihdepalveluihin" not in logs and "katkon" not in logs
    retries = logs.count("database_unavailable")
    assert 1 <= retries <= 10, retries  # backoff, not a busy loop
    assert not [r for r in start.logs.records if r.levelno >= logging.ERROR], logs  # type: ignore[attr-defined]


async def test_a_restarted_process_replays_what_the_spool_kept(
    fake: FakeTelegram, proxied_runtime: tuple[Callable[[], Any], TcpProxy, Database]
) -> None:
    start, proxy, direct = proxied_runtime
    runtime: Runtime = await start()
    worker = ChatUser(fake, 8002)
    code = await runtime.service.create_invite("hki-etsiva", "worker", timedelta(days=1))
    await drive_to_summary(worker, code, "Nuorisoasema suljettiin kesäksi")
    await proxy.cut()
    mark, save = worker.tap_value("save")
    assert fake.added_text(await worker.wait_message(mark)) == t("fi", "svc.offline_save_kept")
    await worker.wait_press_done(save)
    # SIGTERM while the database is away: the stop is bounded and the kept Save stays on disk.
    loop = asyncio.get_running_loop()
    began = loop.time()
    await runtime.stop(grace=5)
    assert loop.time() - began < 15
    assert len(list(runtime.service.spool.directory.glob("*.json"))) == 1

    await proxy.restore()
    await start()
    saved = await worker.wait_message(mark, "#1", timeout=20)
    assert saved.text == t("fi", "svc.saved", number=1)
    assert await count(direct, Observation) == 1
    assert await count(direct, Draft) == 0


# --- the same update twice, an update from the past -----------------------------------------


class PollingBot:
    """The real runtime in this event loop, polling the fake; counts handled updates."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.runtime: Runtime | None = None
        self.handled: Counter[int] = Counter()
        self._changed = asyncio.Event()

    async def start(self) -> Runtime:
        self.runtime = await build_runtime(self.config, terminal=False)
        transport = self.runtime.transports[0]
        assert isinstance(transport, TelegramTransport)
        transport.app.add_handler(TypeHandler(Update, self._done), group=1_000_000)
        await self.runtime.start()
        return self.runtime

    async def _done(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.handled[update.update_id] += 1
        self._changed.set()

    async def handled_times(self, update_id: int, times: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.handled[update_id] < times:
            self._changed.clear()
            assert loop.time() < deadline, f"update {update_id} handled {self.handled[update_id]}x"
            try:
                await asyncio.wait_for(self._changed.wait(), 0.2)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
            self.runtime = None


async def test_a_duplicate_update_and_an_old_one_after_a_restart_have_one_effect(
    fake: FakeTelegram, make_config: Callable[..., Config], db_url: str, tmp_path: Path
) -> None:
    config = make_config(
        database={"url": db_url, "spool_dir": str(tmp_path / "spool")},
        telegram=telegram_section(fake),
    )
    bot = PollingBot(config)
    runtime = await bot.start()
    try:
        worker = ChatUser(fake, 9001)
        code = await runtime.service.create_invite("hki-etsiva", "worker", timedelta(days=1))
        mark, start_update = worker.say(f"/start {code}")
        await worker.wait_message(mark, "Helsingin etsivät")
        mark, text_update = worker.say("Kaksoistoimitettu havainto")
        await worker.wait_message(mark, t("fi", "ask.theme"))
        _, theme_update = worker.tap_value("theme.income")
        await worker.wait_press_done(theme_update)

        # Telegram delivers the theme press once more (its confirmation got lost).
        mark = fake.mark()
        fake.redeliver(theme_update)
        await bot.handled_times(theme_update, 2)
        assert worker.bot_messages()[-1].index < mark  # no second answer

        # A restart, then updates from before it come again.
        await bot.stop()
        runtime = await bot.start()
        mark = fake.mark()
        for old in (start_update, text_update, theme_update):
            fake.redeliver(old)
        for old in (start_update, text_update, theme_update):
            await bot.handled_times(old, 1)
        assert [c for c in worker.bot_messages() if c.index >= mark] == []

        async with runtime.db.transaction() as session:
            draft = (await session.execute(select(Draft))).scalar_one()
            seen = Counter(
                e.event_id for e in (await session.execute(select(ProcessedEvent))).scalars()
            )
        assert draft.state["description"] == "Kaksoistoimitettu havainto"
        assert (draft.state["step"], draft.state["theme"]) == ("group", "theme.income")
        assert seen[str(text_update)] == 1 and seen[str(theme_update)] == 1
        # The flow goes on from where it was.
        _, group_update = worker.tap_value("group.youth")
        await worker.wait_press_done(group_update)
        assert worker.bot_messages()[-1].text == t("fi", "ask.signal")
    finally:
        await bot.stop()


# --- the spool itself -----------------------------------------------------------------------


async def test_spool_keeps_events_in_order_across_processes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    now = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    events = [
        Incoming("telegram", "1", "1", TextIn("Ensimmäinen ääkkösin"), event_id="u1"),
        Incoming("matrix", "@a:x", "!r:x", ChoiceIn("d:abc:3:save"), is_private=True),
        Incoming("telegram", "1", "1", CommandIn("omat", "x"), event_id="u2", language_hint="sv"),
        Incoming("telegram", "2", "-100", LocationIn(60.1, 24.9), is_private=False),
    ]
    for index, incoming in enumerate(events):
        await spool.add(incoming, now + timedelta(seconds=index))
    files = sorted(p.name for p in (tmp_path / "spool").iterdir())
    assert len(files) == 4 and all(name.endswith(".json") for name in files)
    assert oct((tmp_path / "spool").stat().st_mode & 0o777) == "0o700"
    assert all(oct((tmp_path / "spool" / n).stat().st_mode & 0o777) == "0o600" for n in files)

    again = Spool(tmp_path / "spool")  # a new process
    assert len(again) == 4
    assert again.holds(events[0]) and not again.holds(events[1])  # the second has no id
    assert again.keys() == [("telegram", "1"), ("matrix", "@a:x"), ("telegram", "2")]
    first = again.first(("telegram", "1"))
    assert first is not None and first.incoming == events[0] and first.received_at == now
    await again.remove(first)
    assert not again.holds(events[0])
    second = again.first(("telegram", "1"))
    assert second is not None and second.incoming == events[2]
    assert again.first(("telegram", "2")).incoming == events[3]  # type: ignore[union-attr]
    assert len(list((tmp_path / "spool").glob("*.json"))) == 3

    # A damaged file is set aside, not replayed and not fatal.
    (tmp_path / "spool" / "00000000000000000000-1-000000.json").write_text("{not json")
    third = Spool(tmp_path / "spool")
    assert len(third) == 3
    assert len(list((tmp_path / "spool").glob("*.unreadable"))) == 1


def test_spool_directories_are_per_database(tmp_path: Path) -> None:
    a = spool_path(tmp_path, f"sqlite:///{tmp_path}/a.db")
    b = spool_path(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/a.db")
    c = spool_path(tmp_path, "postgresql://u:secret@db:5432/havainto")
    d = spool_path(tmp_path, "postgresql+asyncpg://u:other@db2:5433/havainto_test")
    assert a == b and len({a, c, d}) == 3
    assert "secret" not in str(c) and c.name.startswith("postgresql-havainto-")


async def test_only_connection_level_errors_count_as_unavailable(tmp_path: Path) -> None:
    import sqlite3

    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    assert is_unavailable(ConnectionRefusedError(111, "refused"))
    assert is_unavailable(OperationalError("x", {}, sqlite3.OperationalError("database is locked")))
    assert not is_unavailable(
        OperationalError("x", {}, sqlite3.OperationalError("no such table: people"))
    )
    assert not is_unavailable(IntegrityError("x", {}, Exception("duplicate key")))
    assert not is_unavailable(ProgrammingError("x", {}, Exception("syntax error")))
    assert not is_unavailable(ValueError("a bug"))
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = OSError("network unreachable")
    assert is_unavailable(wrapped)
    db = Database("postgresql://postgres@127.0.0.1:1/none")
    try:
        with pytest.raises(Exception) as caught:
            async with db.transaction() as session:
                await session.execute(select(1))
        assert is_unavailable(caught.value)
    finally:
        await db.close()
