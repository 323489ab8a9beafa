"""The Telegram config section that points the bot at a ``FakeTelegram`` server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.config import Config
from tests.support.fake_telegram import FakeTelegram


def telegram_section(
    fake: FakeTelegram, *, username: bool = False, **fields: Any
) -> dict[str, Any]:
    """``[telegram]`` for the fake Bot API: its token and URLs, a 1 s long poll.

    ``username=True`` adds the fake bot's username (for t.me links); ``fields``
    add or override other keys of the section."""
    section: dict[str, Any] = {
        "token": fake.token,
        "base_url": fake.base_url,
        "base_file_url": fake.base_file_url,
        "poll_timeout": 1,
    }
    if username:
        section["bot_username"] = fake.bot_username
    section.update(fields)
    return section


def telegram_config(
    make_config: Callable[..., Config],
    fake: FakeTelegram,
    *,
    username: bool = False,
    telegram: dict[str, Any] | None = None,
    **extra: Any,
) -> Config:
    """A config on the test database (conftest's ``make_config``) with Telegram on ``fake``.

    ``telegram`` adds keys to the Telegram section; ``extra`` overrides other sections."""
    return make_config(
        telegram=telegram_section(fake, username=username, **(telegram or {})), **extra
    )
