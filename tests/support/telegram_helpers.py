"""A small driver for end-to-end tests of the Telegram transport.

``TelegramBot`` runs the real bot (``bot.runtime.build_runtime``: service, router,
PTB ``Application`` with its updater) against ``tests.support.fake_telegram.FakeTelegram``
over real HTTP on 127.0.0.1. ``Worker`` plays one Telegram user in their private
chat::

    bot = TelegramBot(fake, config, clock)
    await bot.start()
    anna = await bot.enrol(1001)              # invite + "/start CODE"
    await anna.say("Yöpaikkaa ei löytynyt")   # quick capture
    await anna.tap("Asuminen ja asunnottomuus")
    anna.expect("Mitä väestöryhmää")

Every action waits until the bot has *finished* the update it caused, not just
until a first reply arrived: the harness registers a ``TypeHandler`` in a group
after the bot's own handlers, and PTB runs groups in order, so that handler
runs when the bot's handler for the same update is done (replies sent,
keyboard removed). A redelivered update is simply processed twice by PTB, so
``wait_processed`` counts deliveries per ``update_id``.

The driver measures, for every action, the time from pushing the update to the
first message the fake recorded for that chat (``latencies``).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from telegram import Update
from telegram.ext import ContextTypes, TypeHandler

from bot.config import Config
from bot.runtime import Runtime, build_runtime
from bot.transports.telegram import TelegramTransport
from flows.i18n import t
from storage.models import Base
from tests.support.fake_telegram import FakeTelegram, SentCall, keyboard

DONE_GROUP = 1_000_000
T = TypeVar("T")


class ErrorLog(logging.Handler):
    """Collects ERROR records of Havainto's own loggers: a swallowed crash fails the test."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class TelegramBot:
    """The real bot on a fake Bot API server; restartable on the same database."""

    def __init__(self, fake: FakeTelegram, config: Config, clock: Callable[[], Any]) -> None:
        self.fake = fake
        self.config = config
        self.clock = clock
        self.runtime: Runtime | None = None
        self.processed: Counter[int] = Counter()
        self.latencies: list[float] = []
        self.errors = ErrorLog()
        self._changed: asyncio.Condition | None = None

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._changed = asyncio.Condition()
        self.runtime = await build_runtime(self.config, clock=self.clock, terminal=False)
        self.transport.app.add_handler(TypeHandler(Update, self._done), group=DONE_GROUP)
        logging.getLogger("havainto").addHandler(self.errors)
        await self.transport.start()

    async def stop(self) -> None:
        logging.getLogger("havainto").removeHandler(self.errors)
        if self.runtime is not None:
            await self.runtime.stop()
            self.runtime = None

    async def restart(self) -> None:
        """Stop the whole bot (PTB application and database engine) and start a new one."""
        await self.stop()
        await self.start()

    @property
    def transport(self) -> TelegramTransport:
        assert self.runtime is not None
        transport = self.runtime.transports[0]
        assert isinstance(transport, TelegramTransport)
        return transport

    @property
    def rt(self) -> Runtime:
        assert self.runtime is not None
        return self.runtime

    async def _done(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert self._changed is not None
        async with self._changed:
            self.processed[update.update_id] += 1
            self._changed.notify_all()

    async def wait_processed(
        self,
        update_id: int,
        times: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109 - like FakeTelegram.wait_for
    ) -> None:
        """Wait until the bot has handled ``update_id`` (``times`` deliveries of it)."""
        assert self._changed is not None
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.processed[update_id] >= times), timeout
                )
            except TimeoutError:
                raise AssertionError(
                    f"update {update_id} not processed {times}x within {timeout}s\n"
                    + self.fake.describe()
                ) from None

    # --- people ----------------------------------------------------------------------

    async def invite(self, team: str = "hki-etsiva", role: str = "worker") -> str:
        return await self.rt.service.create_invite(team, role, timedelta(days=7))

    def worker(
        self, user_id: int, language_code: str | None = "fi", first_name: str = "Testi"
    ) -> Worker:
        self.fake.user(user_id, first_name=first_name, language_code=language_code)
        return Worker(self, user_id)

    async def enrol(
        self,
        user_id: int,
        team: str = "hki-etsiva",
        role: str = "worker",
        language_code: str | None = "fi",
    ) -> Worker:
        """A Telegram user enrolled with a fresh invite code, greeting checked."""
        worker = self.worker(user_id, language_code)
        code = await self.invite(team, role)
        await worker.say(f"/start {code}")
        team_config = self.config.team(team)
        assert team_config is not None
        worker.expect(team_config.name)
        worker.actions = 0
        return worker

    # --- the database ----------------------------------------------------------------

    async def rows(self, model: type[T], *where: Any) -> list[T]:
        async with self.rt.db.transaction() as session:
            result = await session.execute(select(model).where(*where))
            return list(result.scalars().all())

    async def dump_database(self) -> str:
        """Every row of every table as text: for "this never reached storage" checks."""
        lines: list[str] = []
        async with self.rt.db.transaction() as session:
            for table in Base.metadata.sorted_tables:
                for row in (await session.execute(select(table))).all():
                    lines.append(f"{table.name}: {tuple(row)!r}")
                    lines.append(f"{table.name}: {tuple(str(v) for v in row)}")
        return "\n".join(lines)

    # --- measurements ----------------------------------------------------------------

    def latency_report(self) -> str:
        if not self.latencies:
            return "no replies measured"
        ordered = sorted(self.latencies)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        return (
            f"bot reply time over {len(ordered)} updates: "
            f"median {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms"
        )


class Worker:
    """One Telegram user talking to the bot in their private chat."""

    def __init__(self, bot: TelegramBot, user_id: int, chat_id: int | None = None) -> None:
        self.bot = bot
        self.fake = bot.fake
        self.user_id = user_id
        self.chat_id = user_id if chat_id is None else chat_id
        self.replies: list[SentCall] = []  # messages the bot sent to the chat for the last action
        self.calls: list[SentCall] = []  # every Bot API call made during the last action
        self.actions = 0  # updates this worker caused (texts, taps, ...)
        self.last_update_id = 0
        self.lang = "fi"  # the language the test expects the bot to answer in

    async def _act(self, push: Callable[[], int], times: int = 1) -> list[SentCall]:
        mark = self.fake.mark()
        pushed = time.monotonic()
        update_id = push()
        self.actions += 1
        self.last_update_id = update_id
        await self.bot.wait_processed(update_id, times)
        self.calls = self.fake.sent[mark:]
        # What the worker sees arrive: new messages, and the question that replaced the
        # pressed one (bot.transports.telegram edits the next question into the pressed message).
        self.replies = [
            c
            for c in self.calls
            if self.fake.is_message_to(c, self.chat_id) and c.result is not None
        ]
        if self.replies:
            self.bot.latencies.append(self.replies[0].time - pushed)
        return self.replies

    # --- what the worker does --------------------------------------------------------

    async def say(self, text: str) -> list[SentCall]:
        return await self._act(
            lambda: self.fake.send_text(self.user_id, text, chat_id=self.chat_id)
        )

    async def tap(self, which: str | int) -> list[SentCall]:
        """Press the button with this label (exact, else a unique substring) or flat index on
        the newest bot message in the chat that still has a keyboard."""
        message_id, buttons = self.current_keyboard()
        if isinstance(which, int):
            data = buttons[which][1]
        else:
            exact = [d for label, d in buttons if label == which]
            loose = [d for label, d in buttons if which.casefold() in label.casefold()]
            found = exact or loose
            if len(found) != 1:
                raise AssertionError(f"no single button {which!r} in {buttons}")
            data = found[0]
        assert data is not None
        return await self.press(data, message_id=message_id)

    async def press(
        self, data: str, message_id: int | None = None, strict: bool = True
    ) -> list[SentCall]:
        """Press a button by its callback data (``strict=False``: data not on the keyboard,
        i.e. a forged or replayed press)."""
        if message_id is None and not strict:
            message_id = self.any_bot_message_id()
        return await self._act(
            lambda: self.fake.press(
                self.user_id, data, message_id=message_id, chat_id=self.chat_id, strict=strict
            )
        )

    async def send_location(self, lat: float, lon: float, **extra: Any) -> list[SentCall]:
        return await self._act(
            lambda: self.fake.send_location(self.user_id, lat, lon, chat_id=self.chat_id, **extra)
        )

    async def send_media(self, kind: Any, **extra: Any) -> list[SentCall]:
        return await self._act(
            lambda: self.fake.send_media(self.user_id, kind, chat_id=self.chat_id, **extra)
        )

    async def edit(self, message_id: int, new_text: str) -> list[SentCall]:
        return await self._act(
            lambda: self.fake.edit_text(self.user_id, message_id, new_text, chat_id=self.chat_id)
        )

    async def push(self, update: dict[str, Any]) -> list[SentCall]:
        return await self._act(lambda: self.fake.push_update(update))

    async def redeliver(self, update_id: int) -> list[SentCall]:
        """Telegram delivers ``update_id`` once more; waits until the bot handled it again."""
        times = self.bot.processed[update_id] + 1

        def push() -> int:
            self.fake.redeliver(update_id)
            return update_id

        return await self._act(push, times=times)

    # --- what the worker sees ----------------------------------------------------------

    @property
    def texts(self) -> list[str]:
        return [c.text or "" for c in self.replies]

    @property
    def answers(self) -> list[str]:
        """Like ``texts``, but where an answer closed the pressed question (its text kept
        above, its buttons gone: one edit), only the answer added below it."""
        return [self.fake.added_text(c) for c in self.replies]

    @property
    def alerts(self) -> list[str]:
        """What the last action's button presses were answered with, to the presser alone."""
        return [
            str(c.params.get("text"))
            for c in self.calls
            if c.method == "answerCallbackQuery" and c.params.get("text")
        ]

    @property
    def last_text(self) -> str:
        assert self.replies, "the bot sent nothing\n" + self.fake.describe()
        return self.replies[-1].text or ""

    def expect(self, *substrings: str) -> SentCall:
        """The reply to the last action that contains every substring."""
        for call in self.replies:
            if all(s in (call.text or "") for s in substrings):
                return call
        raise AssertionError(f"no reply containing {substrings!r}; got {self.texts!r}")

    def current_keyboard(self) -> tuple[int, list[tuple[str, str | None]]]:
        """(message_id, [(label, data), ...]) of the newest bot message with a keyboard."""
        for message in reversed(self.fake.bot_messages(self.chat_id)):
            rows = keyboard(message)
            if rows:
                return message["message_id"], [b for row in rows for b in row]
        raise AssertionError("no bot message with a keyboard\n" + self.fake.describe())

    def labels(self) -> list[str]:
        return [label for label, _ in self.current_keyboard()[1]]

    async def new_if_asked(self) -> None:
        """When the bot asks whether the text is the same as something the team saw
        ("me too" at capture time), answer "No, a new observation"."""
        new = t(self.lang, "knowledge.suggest.new", domain="knowledge")
        messages = self.fake.bot_messages(self.chat_id)
        if messages and any(label == new for row in keyboard(messages[-1]) for label, _ in row):
            await self.tap(new)

    def data_for(self, label: str) -> str:
        for text, data in self.current_keyboard()[1]:
            if text == label or label.casefold() in text.casefold():
                assert data is not None
                return data
        raise AssertionError(f"no button {label!r} in {self.labels()}")

    def any_bot_message_id(self) -> int:
        messages = self.fake.bot_messages(self.chat_id)
        assert messages, "the bot has not written to this chat yet"
        return int(messages[-1]["message_id"])

    def last_user_message_id(self) -> int:
        """The id of the worker's own newest message in the chat."""
        for (chat_id, message_id), message in sorted(
            self.fake._messages.items(), key=lambda item: item[0][1], reverse=True
        ):
            if chat_id == self.chat_id and message.get("from", {}).get("id") == self.user_id:
                return message_id
        raise AssertionError("the worker has sent nothing")
