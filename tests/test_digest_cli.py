"""``havainto digest weekly|monthly``: print, write the chart, and ``--send`` exactly once.

The command runs in a worker thread (it has its own event loop, as from a shell)
while the fake Telegram Bot API answers on this test's loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.conftest import FakeClock
from tests.support.escalation_helpers import TEAM_CHAT, Bot
from tests.support.fake_telegram import FakeTelegram
from tests.support.telegram import telegram_section
from tests.test_scheduler import digest_calls, seed_week_47

LEADERS = -2001
# Printing and argument checks do not depend on the database: SQLite only.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _toml_value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # strings, numbers, booleans: valid TOML


def write_config(path: Path, db_url: str, fake: FakeTelegram) -> Path:
    lines = [
        "[database]",
        f"url = {_toml_value(db_url)}",
        "[terminal]",
        'enabled = "no"',
        "[telegram]",
        *(f"{key} = {_toml_value(value)}" for key, value in telegram_section(fake).items()),
        "[[teams]]",
        'id = "hki-etsiva"',
        'name = "Helsingin etsivät"',
        'region = "helsinki"',
        f'telegram_chat_id = "{TEAM_CHAT}"',
        'leadership = "hki-johto"',
        "[[leadership]]",
        'id = "hki-johto"',
        'name = "Helsingin johto"',
        'region = "helsinki"',
        f'telegram_chat_id = "{LEADERS}"',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
async def setup(
    db_url: str, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[tuple[FakeTelegram, Path]]:
    async with FakeTelegram() as fake:
        config_file = write_config(tmp_path / "havainto.toml", db_url, fake)
        from bot.config import load_config

        driver = Bot(fake, load_config(config_file), clock)
        await driver.start(poll=False)
        await seed_week_47(driver)
        await driver.stop()
        yield fake, config_file


async def havainto(*args: str) -> Any:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), catch_exceptions=False)


@sqlite_only
async def test_weekly_prints_and_writes_the_chart(
    setup: tuple[FakeTelegram, Path], tmp_path: Path
) -> None:
    fake, config = setup
    out = tmp_path / "charts"
    args = ["-c", str(config), "--out", str(out)]
    result = await havainto("digest", "weekly", "--team", "hki-etsiva", "--week", "2026-W47", *args)
    assert result.exit_code == 0, result.output
    assert "Helsingin etsivät" in result.output and "47" in result.output
    [chart] = list(out.glob("*.png"))
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert f"[chart] {chart}" in result.output
    assert digest_calls(fake, TEAM_CHAT) == []  # printing sends nothing


async def test_weekly_send_delivers_once(setup: tuple[FakeTelegram, Path], tmp_path: Path) -> None:
    fake, config = setup
    args = ["digest", "weekly", "--team", "hki-etsiva", "--week", "2026-W47", "--send"]
    args += ["-c", str(config), "--out", str(tmp_path)]
    first = await havainto(*args)
    assert first.exit_code == 0, first.output
    assert "weekly:hki-etsiva:2026-W47:telegram:-1001: sent" in first.output
    second = await havainto(*args)
    assert second.exit_code == 0, second.output
    assert "already delivered" in second.output
    assert [c.method for c in digest_calls(fake, TEAM_CHAT)] == ["sendMessage", "sendPhoto"]


@sqlite_only
async def test_monthly_prints_and_sends_to_the_region_channel(
    setup: tuple[FakeTelegram, Path], tmp_path: Path
) -> None:
    fake, config = setup
    args = ["digest", "monthly", "--region", "helsinki", "--month", "2026-11", "--send"]
    result = await havainto(*args, "-c", str(config), "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "monthly:helsinki:2026-11:telegram:-2001: sent" in result.output
    assert digest_calls(fake, LEADERS)


@sqlite_only
async def test_bad_arguments_are_refused(setup: tuple[FakeTelegram, Path]) -> None:
    _, config = setup
    for args in (
        ["digest", "weekly", "--team", "nobody"],
        ["digest", "weekly", "--team", "hki-etsiva", "--week", "2026-47"],
        ["digest", "monthly", "--month", "11/2026"],
    ):
        result = await havainto(*args, "-c", str(config))
        assert result.exit_code == 2, result.output


@sqlite_only
async def test_send_goes_through_every_transport_that_can_send_alone(
    setup: tuple[FakeTelegram, Path], tmp_path: Path
) -> None:
    """``--send`` asks each transport for a send-only start (``start_sending``), naming no
    platform: one defined in a test sends; one that declines is left to the running bot."""
    from bot import transports
    from tests.test_transport_registry import EchoTransport

    class MuteTransport(EchoTransport):
        name = "mute"

        async def start_sending(self) -> bool:
            return False

    built: list[EchoTransport] = []

    def build(kind: type[EchoTransport]) -> Any:
        def make(ctx: Any) -> EchoTransport:
            built.append(kind(ctx))
            return built[-1]

        return make

    fake, config = setup
    text = config.read_text(encoding="utf-8").replace(
        f'telegram_chat_id = "{TEAM_CHAT}"',
        f'telegram_chat_id = "{TEAM_CHAT}"\nchats = {{ echo = "team-room", mute = "mute-room" }}',
    )
    config.write_text(text + "[transports.echo]\n[transports.mute]\n", encoding="utf-8")
    for name, kind in (("echo", EchoTransport), ("mute", MuteTransport)):
        transports.register(
            transports.Registration(name, lambda cfg, n=name: n in cfg.transports, build(kind))
        )
    try:
        args = ["digest", "weekly", "--team", "hki-etsiva", "--week", "2026-W47", "--send"]
        result = await havainto(*args, "-c", str(config), "--out", str(tmp_path))
    finally:
        transports.unregister("echo")
        transports.unregister("mute")
    assert result.exit_code == 0, result.output
    key = "weekly:hki-etsiva:2026-W47"
    assert f"{key}:telegram:{TEAM_CHAT}: sent" in result.output
    assert f"{key}:echo:team-room: sent" in result.output
    assert "mute: cannot send from the command line" in result.output
    assert f"{key}:mute:mute-room: left to the running bot" in result.output
    echo, mute = built
    assert echo.sending and not echo.started  # send only: nothing received
    assert any("Helsingin etsivät" in t for t in echo.texts_to("team-room"))
    assert mute.outbox == []
    assert [c.method for c in digest_calls(fake, TEAM_CHAT)] == ["sendMessage", "sendPhoto"]
