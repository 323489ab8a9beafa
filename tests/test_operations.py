"""Operations: Telegram webhook mode with two instances, /healthz, ``havainto health``, SIGTERM.

Everything runs over real HTTP on 127.0.0.1: the fake Bot API server
(``tests.support.fake_telegram``), the bots' own webhook and health servers, and for
the shutdown test the real ``havainto run`` in a child process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.config import Config, load_config
from bot.runtime import Runtime, build_runtime
from bot.runtime.jobs import build_scheduler
from bot.service import Havainto
from bot.transports.telegram import SECRET_HEADER, TelegramTransport
from flows.i18n import t
from storage.db import Database
from storage.models import Draft, Identity, Observation, ProcessedEvent
from tests.conftest import TEST_LEADERSHIP, TEST_TEAMS
from tests.support.bot_process import REPO, BotProcess, ChatUser, toml_text
from tests.support.db import count
from tests.support.fake_telegram import FakeTelegram
from tests.support.telegram import telegram_section

SECRET = "test-secret_0123456789abcdef"
WEBHOOK_URL = "https://havainto.example.org/telegram/webhook"
WEBHOOK_PATH = "/telegram/webhook"
QUICK_PATH = ("theme.housing", "group.youth", "signal.queues", "frequency.growing")


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


# --- webhook mode: two instances behind a "load balancer" ------------------------------------


class Balancer:
    """Round-robin over the instances' webhook ports, like a load balancer would."""

    def __init__(self, http: aiohttp.ClientSession, ports: list[int]) -> None:
        self.http = http
        self.ports = ports
        self.turn = 0
        self.served: Counter[int] = Counter()

    async def post(self, update: dict[str, Any], secret: str | None = SECRET) -> int:
        port = self.ports[self.turn % len(self.ports)]
        self.turn += 1
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        async with self.http.post(
            f"http://127.0.0.1:{port}{WEBHOOK_PATH}", json=update, headers=headers
        ) as response:
            await response.read()
            if response.status == 200:
                self.served[port] += 1
            return response.status


def pushed(fake: FakeTelegram, update_id: int) -> dict[str, Any]:
    """The update as Telegram would POST it (the fake queued it for getUpdates, unused here)."""
    return next(u for u in fake.pending_updates if u["update_id"] == update_id)


@pytest.fixture
async def two_instances(
    fake: FakeTelegram, make_config: Callable[..., Config], db_url: str, tmp_path: Path
) -> AsyncIterator[list[Runtime]]:
    runtimes: list[Runtime] = []
    for name in ("a", "b"):
        config = make_config(
            database={"url": db_url, "spool_dir": str(tmp_path / f"spool-{name}")},
            telegram=telegram_section(
                fake, webhook_url=WEBHOOK_URL, webhook_secret=SECRET, webhook_port=0
            ),
        )
        runtime = await build_runtime(config, terminal=False)
        runtime.scheduler = build_scheduler(runtime)
        await runtime.start()
        runtimes.append(runtime)
    try:
        yield runtimes
    finally:
        for runtime in runtimes:
            await runtime.stop()


def webhook_port(runtime: Runtime) -> int:
    transport = runtime.transports[0]
    assert isinstance(transport, TelegramTransport)
    return transport.webhook_port


async def test_two_webhook_instances_on_one_database_serve_one_worker(
    fake: FakeTelegram, two_instances: list[Runtime]
) -> None:
    first, second = two_instances
    ports = [webhook_port(first), webhook_port(second)]
    assert ports[0] != ports[1]
    # Both registered the webhook with the secret, for every update type; neither polls.
    assert [c.method for c in fake.sent].count("setWebhook") == 2
    assert fake.webhook_url == WEBHOOK_URL
    assert fake.webhook_params["secret_token"] == SECRET
    assert "callback_query" in fake.webhook_params["allowed_updates"]
    assert fake.counts["getUpdates"] == 0

    worker = ChatUser(fake, 5001)
    code = await first.service.create_invite("hki-etsiva", "worker", timedelta(days=1))
    async with aiohttp.ClientSession() as http:
        balancer = Balancer(http, ports)

        async def act(update_id: int, mark: int) -> str:
            assert await balancer.post(pushed(fake, update_id)) == 200
            # 200 is answered only after the update was handled and its replies sent.
            replies = [
                c for c in fake.sent[mark:] if c.method in ("sendMessage", "editMessageText")
            ]
            assert replies, fake.describe()
            return fake.added_text(replies[-1])

        mark, update_id = worker.say(f"/start {code}")
        assert "Helsingin etsivät" in await act(update_id, mark)
        mark, update_id = worker.say("Nuoret nukkuvat rappukäytävissä, asuntojono on pitkä")
        assert await act(update_id, mark) == t("fi", "ask.theme")
        for value in (*QUICK_PATH, "escalation.none"):
            mark, update_id = worker.tap_value(value)
            await act(update_id, mark)
        save_mark, save_update = worker.tap_value("save")
        assert await act(save_update, save_mark) == t("fi", "svc.saved", number=1)

        # Telegram sends the Save again (its answer got lost) -- to the other instance.
        mark = fake.mark()
        assert await balancer.post(pushed(fake, save_update)) == 200
        assert [c for c in fake.sent[mark:] if c.method in ("sendMessage", "editMessageText")] == []

    assert balancer.served[ports[0]] >= 4 and balancer.served[ports[1]] >= 4
    async with first.db.transaction() as session:
        entries = list((await session.execute(select(Observation))).scalars())
    assert len(entries) == 1
    entry = entries[0]
    assert entry.description == "Nuoret nukkuvat rappukäytävissä, asuntojono on pitkä"
    assert (entry.theme, entry.population_group, entry.signal, entry.escalation) == (
        "theme.housing",
        "group.youth",
        "signal.queues",
        "escalation.none",
    )
    assert entry.transport == "telegram"
    assert await count(first.db, Draft) == 0

    # Stopping an instance leaves the webhook for the others: no deleteWebhook.
    await first.stop()
    assert fake.counts["deleteWebhook"] == 0
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http:
            await http.post(f"http://127.0.0.1:{ports[0]}{WEBHOOK_PATH}", json={})


async def test_webhook_refuses_a_wrong_or_missing_secret_and_stores_nothing(
    fake: FakeTelegram, two_instances: list[Runtime]
) -> None:
    runtime = two_instances[0]
    worker = ChatUser(fake, 5002)
    code = await runtime.service.create_invite("hki-etsiva", "worker", timedelta(days=1))
    events_before = await count(runtime.db, ProcessedEvent)
    mark, update_id = worker.say(f"/start {code}")
    async with aiohttp.ClientSession() as http:
        balancer = Balancer(http, [webhook_port(runtime)])
        assert await balancer.post(pushed(fake, update_id), secret="wrong-secret_0123456789") == 403
        assert await balancer.post(pushed(fake, update_id), secret=None) == 403
        assert await balancer.post(pushed(fake, update_id), secret=SECRET[:-1]) == 403
        # Not an update at all: refused before anything is handled.
        assert await balancer.post({"hello": "world"}) == 400
    assert [c for c in fake.sent[mark:] if c.method == "sendMessage"] == []
    assert await count(runtime.db, ProcessedEvent) == events_before
    assert await count(runtime.db, Identity) == 0


# --- health --------------------------------------------------------------------------------


async def test_healthz_on_the_webhook_port_reports_database_transport_and_scheduler(
    fake: FakeTelegram, two_instances: list[Runtime]
) -> None:
    runtime = two_instances[1]
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{webhook_port(runtime)}/healthz") as response,
    ):
        report = await response.json()
        assert response.status == 200, report
    assert report["status"] == "ok"
    assert report["database"]["ok"] is True and report["database"]["latency_ms"] >= 0
    telegram = report["transports"]["telegram"]
    assert telegram["running"] is True and telegram["mode"] == "webhook"
    assert telegram["last_contact"] is not None  # setWebhook was answered
    assert report["scheduler"]["running"] is True and report["scheduler"]["jobs"] >= 1
    assert all(when for when in report["scheduler"]["next_runs"].values())
    assert report["spool"]["pending"] == 0 and report["spool"]["replayer_running"] is True


async def test_health_server_in_polling_mode_turns_503_when_telegram_stops(
    fake: FakeTelegram, make_config: Callable[..., Config], db_url: str, tmp_path: Path
) -> None:
    config = make_config(
        database={"url": db_url, "spool_dir": str(tmp_path / "spool")},
        telegram=telegram_section(fake),
        health={"enabled": True, "port": 0},
    )
    runtime = await build_runtime(config, terminal=False)
    runtime.scheduler = build_scheduler(runtime)
    await runtime.start()
    try:
        assert runtime.health_server is not None
        url = f"http://127.0.0.1:{runtime.health_server.port}/healthz"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                report = await response.json()
                assert response.status == 200, report
            assert report["transports"]["telegram"]["mode"] == "polling"
            assert report["transports"]["telegram"]["running"] is True
            transport = runtime.transports[0]
            assert isinstance(transport, TelegramTransport)
            await transport.stop_receiving()
            async with http.get(url) as response:
                report = await response.json()
                assert response.status == 503
            assert report["status"] == "unhealthy"
            assert report["transports"]["telegram"]["running"] is False
            assert report["database"]["ok"] is True
    finally:
        await runtime.stop()


def havainto_cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAVAINTO_")}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "PYTHONPATH": str(REPO)},
    )
    return result.returncode, result.stdout, result.stderr


def write_config(path: Path, database_url: str, **sections: dict[str, Any]) -> Path:
    values: dict[str, Any] = {
        "database": {"url": database_url, "spool_dir": str(path.parent / "spool")},
        "terminal": {"enabled": "no"},
        "teams": TEST_TEAMS,
        "leadership": TEST_LEADERSHIP,
        **sections,
    }
    path.write_text(toml_text(values), encoding="utf-8")
    return path


@pytest.mark.unmigrated
async def test_health_command_checks_database_and_schema_without_a_running_bot(
    tmp_path: Path, db_url: str
) -> None:
    config = write_config(tmp_path / "config.toml", db_url)
    code, out, err = await asyncio.to_thread(
        havainto_cli, "health", "-c", str(config), cwd=tmp_path
    )
    if db_url.startswith("sqlite"):
        # No database file yet: said, and none is made (only `run` and `db upgrade` do).
        assert code == 2 and "no database at" in err and "havainto db upgrade" in err
        assert not (tmp_path / "havainto.db").exists()
        (tmp_path / "havainto.db").touch()  # an empty SQLite database: no schema
        code, out, err = await asyncio.to_thread(
            havainto_cli, "health", "-c", str(config), cwd=tmp_path
        )
    report = json.loads(out)
    assert code == 1  # the schema was never migrated
    assert report["database"]["ok"] is True and report["database"]["schema"]["ok"] is False
    code, _, err = await asyncio.to_thread(
        havainto_cli, "db", "upgrade", "-c", str(config), cwd=tmp_path
    )
    assert code == 0, err
    code, out, _ = await asyncio.to_thread(havainto_cli, "health", "-c", str(config), cwd=tmp_path)
    report = json.loads(out)
    assert code == 0, report
    assert report["status"] == "ok" and report["running_bot"] is False

    unreachable = write_config(
        tmp_path / "down.toml", "postgresql://postgres@127.0.0.1:1/nothing_here"
    )
    code, out, _ = await asyncio.to_thread(
        havainto_cli, "health", "-c", str(unreachable), cwd=tmp_path
    )
    report = json.loads(out)
    assert code == 1
    assert report["database"]["ok"] is False
    assert report["database"]["error"] in ("ConnectionRefusedError", "OSError")


async def test_health_command_queries_a_running_bot(
    fake: FakeTelegram, make_config: Callable[..., Config], db_url: str, tmp_path: Path
) -> None:
    config = make_config(
        database={"url": db_url, "spool_dir": str(tmp_path / "spool")},
        telegram=telegram_section(fake),
        health={"enabled": True, "port": 0},
    )
    runtime = await build_runtime(config, terminal=False)
    await runtime.start()
    try:
        assert runtime.health_server is not None
        url = f"http://127.0.0.1:{runtime.health_server.port}/healthz"
        code, out, err = await asyncio.to_thread(havainto_cli, "health", "--url", url, cwd=tmp_path)
        assert code == 0, err
        assert json.loads(out)["transports"]["telegram"]["running"] is True
    finally:
        await runtime.stop()
    code, out, _ = await asyncio.to_thread(havainto_cli, "health", "--url", url, cwd=tmp_path)
    assert code == 1
    assert json.loads(out)["status"] == "unreachable"


# --- graceful shutdown --------------------------------------------------------------------


async def test_sigterm_lets_the_update_in_flight_finish_and_exits_zero(
    fake: FakeTelegram, db_url: str, tmp_path: Path
) -> None:
    bot = BotProcess(
        tmp_path,
        {
            "database": {"url": db_url, "spool_dir": str(tmp_path / "spool")},
            "telegram": telegram_section(fake),
            "terminal": {"enabled": "no"},
            "teams": TEST_TEAMS,
            "leadership": TEST_LEADERSHIP,
        },
    )
    db = Database(db_url)
    try:
        await bot.start()
        service = Havainto(load_config(bot.config_path), db)
        code = await service.create_invite("hki-etsiva", "worker", timedelta(days=1))
        worker = ChatUser(fake, 6001)
        mark, _ = worker.say(f"/start {code}")
        await worker.wait_message(mark, "Helsingin etsivät")

        # The bot's answer to the next text is held up at the Bot API for 1.5 seconds...
        fake.delay("sendMessage", 1.5)
        arrived = fake.counts["sendMessage"]
        mark, _ = worker.say("Kesken jäävä havainto")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while fake.counts["sendMessage"] == arrived:
            assert loop.time() < deadline, bot.log
            await asyncio.sleep(0.02)
        # ...and SIGTERM comes while the handler waits for it.
        bot.signal(signal.SIGTERM)
        reply = await worker.wait_message(mark, timeout=10)
        assert reply.text == t("fi", "ask.theme")
        assert await bot.wait() == 0, bot.log
        fake.delay("sendMessage", 0)
        assert "stopping in_flight=" in bot.log and "stopped" in bot.log
        assert "shutdown_grace_exceeded" not in bot.log
        assert "Kesken jäävä" not in bot.log
        async with db.transaction() as session:
            draft = (await session.execute(select(Draft))).scalar_one()
        assert draft.state["description"] == "Kesken jäävä havainto"
    finally:
        await bot.kill()
        await db.close()
