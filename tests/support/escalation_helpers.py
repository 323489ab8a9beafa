"""A small driver for the escalation and delivery tests: the real bot on the fake Bot API.

``Bot`` runs ``bot.runtime.build_runtime`` (service, escalation and digest desks, the
real PTB ``Application`` polling ``tests.support.fake_telegram.FakeTelegram`` over HTTP on
127.0.0.1). ``act`` pushes one update and waits until the bot has *finished* it: a
``TypeHandler`` in a group after the bot's own handlers runs when they are done.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from telegram import Update
from telegram.ext import ContextTypes, TypeHandler

from bot.config import Config
from bot.runtime import Runtime, build_runtime
from bot.transports.telegram import TelegramTransport
from tests.support.db import rows as db_rows
from tests.support.fake_telegram import FakeTelegram, SentCall, keyboard

DONE_GROUP = 1_000_000
LEADER_CHAT = -2001  # hki-johto, the leadership channel of hki-etsiva (tests.conftest)
TEAM_CHAT = -1001  # hki-etsiva's team chat


class Bot:
    def __init__(self, fake: FakeTelegram, config: Config, clock: Callable[[], Any]) -> None:
        self.fake = fake
        self.config = config
        self.clock = clock
        self.runtime: Runtime | None = None
        self.processed: Counter[int] = Counter()
        self.pushed_at = 0.0  # time.monotonic() when the last update was pushed
        self._changed = asyncio.Condition()

    async def start(self, poll: bool = True) -> None:
        self.runtime = await build_runtime(self.config, clock=self.clock, terminal=False)
        self.transport.app.add_handler(TypeHandler(Update, self._done), group=DONE_GROUP)
        if poll:
            await self.transport.start()
        else:
            await self.transport.app.initialize()

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
            self.runtime = None

    @property
    def rt(self) -> Runtime:
        assert self.runtime is not None
        return self.runtime

    @property
    def transport(self) -> TelegramTransport:
        transport = self.rt.transports[0]
        assert isinstance(transport, TelegramTransport)
        return transport

    async def _done(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        async with self._changed:
            self.processed[update.update_id] += 1
            self._changed.notify_all()

    async def act(self, push: Callable[[], int]) -> list[SentCall]:
        """Push one update; the Bot API calls the bot made while handling it."""
        mark = self.fake.mark()
        self.pushed_at = time.monotonic()
        update_id = push()
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.processed[update_id] >= 1), 10
                )
            except TimeoutError:
                message = f"update {update_id} not handled\n" + self.fake.describe()
                raise AssertionError(message) from None
        return self.fake.sent[mark:]

    async def enrol(self, user_id: int, role: str = "worker", name: str = "Testi") -> None:
        self.fake.user(user_id, first_name=name, language_code="fi")
        code = await self.rt.service.create_invite("hki-etsiva", role, timedelta(days=1))
        await self.act(lambda: self.fake.send_text(user_id, f"/start {code}"))

    async def say(
        self, user_id: int, text: str, chat_id: int | None = None, **extra: Any
    ) -> list[SentCall]:
        return await self.act(lambda: self.fake.send_text(user_id, text, chat_id=chat_id, **extra))

    async def press(
        self, user_id: int, data: str, chat_id: int | None = None, message_id: int | None = None
    ) -> list[SentCall]:
        return await self.act(
            lambda: self.fake.press(user_id, data, message_id=message_id, chat_id=chat_id)
        )

    async def press_value(self, user_id: int, value: str) -> list[SentCall]:
        """Press the flow button whose payload ends with ``value`` in the user's private chat."""
        for message in reversed(self.fake.bot_messages(user_id)):
            for row in keyboard(message):
                for _, data in row:
                    if data is not None and data.endswith(":" + value):
                        return await self.press(user_id, data, message_id=message["message_id"])
        raise AssertionError(f"no button {value!r}\n" + self.fake.describe())

    async def save_entry(
        self, user_id: int, text: str, escalation: str = "escalation.shl48"
    ) -> list[SentCall]:
        """Quick capture: one text and six taps; returns the calls of the final Save.
        When the text sounds like something the team saw already, "No, a new observation"."""
        await self.say(user_id, text)
        if self.offers_me_too(user_id):
            await self.press_value(user_id, "new")
        for value in (
            "theme.housing",
            "group.youth",
            "signal.queues",
            "frequency.recurring",
            escalation,
        ):
            await self.press_value(user_id, value)
        return await self.press_value(user_id, "save")

    def offers_me_too(self, user_id: int) -> bool:
        """Whether the bot's last message to the user asks "the same thing?" (flows.capture)."""
        messages = self.fake.bot_messages(user_id)
        if not messages:
            return False
        return any(re.search(r"^d:\w+:\d+:[po]\d+$", data or "") for data in buttons(messages[-1]))


async def rows(bot: Bot, model: type[Any], *where: Any) -> list[Any]:
    """The rows of ``model`` in the bot's database (``where``: SQLAlchemy filters)."""
    return await db_rows(bot.rt.db, model, *where)


def texts_to(calls: list[SentCall], chat_id: int) -> list[str]:
    return [c.text or "" for c in calls if str(c.chat_id) == str(chat_id)]


def buttons(call: SentCall | dict[str, Any]) -> list[str]:
    return [data or "" for row in keyboard(call) for _, data in row]
