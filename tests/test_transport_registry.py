"""A new platform is one module and one registry line.

``EchoTransport`` below is a whole transport defined only in this test and
registered from here: the runtime builds it, a worker logs an entry through it,
the weekly digest reaches the team's ``echo`` chat and ``/healthz`` reports it, and
nothing in ``flows/``, ``storage/``, ``digests/`` or the runtime knows its name.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from bot import transports
from bot.config import Config
from bot.runtime import build_runtime
from bot.runtime.health import health
from bot.transports.base import CannotEdit, Health, TransportContext, receive
from flows.events import ChoiceIn, Incoming, Message, Outbound, TextIn
from tests.conftest import TEST_LEADERSHIP, TEST_TEAMS, FakeClock
from tests.support.bot_process import toml_text


class EchoSettings(BaseModel):
    """The transport's own table in the config file: ``[transports.echo]``."""

    text_limit: int = 500


class EchoTransport:
    """An in-memory platform: what it "sends" is kept in ``outbox``."""

    name = "echo"
    finished: asyncio.Event | None = None

    def __init__(self, ctx: TransportContext) -> None:
        self.ctx = ctx
        self.settings = EchoSettings(**ctx.config.transports.get("echo", {}))
        self.text_limit = self.settings.text_limit
        self.outbox: list[Outbound] = []
        self.started = False
        self.sending = False

    async def start(self) -> None:
        self.started = True

    async def start_sending(self) -> bool:
        self.sending = True  # send only (havainto digest --send): nothing is received
        return True

    async def stop_receiving(self) -> None:
        self.started = False

    async def stop(self) -> None:
        self.started = False

    async def send_tracked(self, outbound: Outbound) -> str | None:
        self.outbox.append(outbound)
        return str(len(self.outbox))

    async def edit(self, chat_id: str, ref: str, message: Message) -> None:
        raise CannotEdit("echo prints anew")

    def is_permanent(self, error: BaseException) -> bool:
        return False

    def health(self) -> Health:
        return Health(running=self.started)

    async def user_says(self, user: str, event: object) -> None:
        incoming = Incoming(self.name, user, f"dm-{user}", event)  # type: ignore[arg-type]
        await receive(self.ctx.service, self.ctx.router, incoming)

    def texts_to(self, chat: str) -> list[str]:
        return [o.reply.text for o in self.outbox if o.chat_id == chat and hasattr(o.reply, "text")]


@pytest.fixture
def echo_registered() -> Iterator[None]:
    transports.register(
        transports.Registration("echo", lambda config: "echo" in config.transports, EchoTransport)
    )
    try:
        yield
    finally:
        transports.unregister("echo")


async def test_a_transport_defined_in_a_test_runs_everything(
    echo_registered: None, make_config: Callable[..., Config], clock: FakeClock
) -> None:
    teams = [dict(TEST_TEAMS[0], chats={"echo": "team-room"}), *TEST_TEAMS[1:]]
    leadership = [dict(TEST_LEADERSHIP[0], chats={"echo": "leaders-room"}), *TEST_LEADERSHIP[1:]]
    config = make_config(
        teams=teams, leadership=leadership, transports={"echo": {"text_limit": 300}}
    )
    runtime = await build_runtime(config, clock=clock, terminal=False)
    try:
        [echo] = [t for t in runtime.transports if t.name == "echo"]
        assert isinstance(echo, EchoTransport)
        await runtime.start()
        await runtime.service.enrol_directly("echo", "u1", "dm-u1", "hki-etsiva")

        # A worker's entry, answered by number as on a platform without buttons.
        await echo.user_says("u1", TextIn("Ensisuojassa ei ollut tilaa"))
        for value in (
            "theme.housing",
            "group.youth",
            "signal.queues",
            "frequency.new",
            "escalation.shl48",
        ):
            question = echo.outbox[-1].reply
            assert isinstance(question, Message)
            [choice] = [c for c in question.flat_choices() if c.data.endswith(value)]
            await echo.user_says("u1", ChoiceIn(choice.data))
        summary = echo.outbox[-1].reply
        assert isinstance(summary, Message)
        [save] = [c for c in summary.flat_choices() if c.data.endswith(":save")]
        await echo.user_says("u1", ChoiceIn(save.data))
        assert any("#1" in t for t in echo.texts_to("dm-u1"))
        # The notice reached the leaders' echo chat at once.
        assert any("#1" in t for t in echo.texts_to("leaders-room"))

        # The weekly digest reaches the team's echo chat, split under echo's limit.
        assert runtime.digests is not None
        clock.advance(days=7)
        outcomes = await runtime.digests.send_weekly(team_ids=["hki-etsiva"])
        assert [o.result for o in outcomes] == ["sent"], outcomes
        digest = echo.texts_to("team-room")
        assert digest and all(len(piece) <= 300 for piece in digest)

        report = await health(runtime)
        assert report["transports"]["echo"]["running"] is True
    finally:
        await runtime.stop()


async def test_a_config_of_only_a_registered_transport_runs_no_terminal(
    echo_registered: None, make_config: Callable[..., Config], clock: FakeClock
) -> None:
    """In "auto" mode any other registered transport turns the local chat off: a bot of
    one platform alone (Signal, say) under systemd, whose stdin is empty, must not end."""
    auto = {"enabled": "auto"}
    only_echo = make_config(terminal=auto, transports={"echo": {}})
    assert not only_echo.telegram.enabled and not only_echo.matrix.enabled
    assert not transports.terminal_enabled(only_echo)
    assert [r.name for r in transports.enabled(only_echo)] == ["echo"]
    runtime = await build_runtime(only_echo, clock=clock)  # terminal left to the config
    try:
        assert [t.name for t in runtime.transports] == ["echo"]
        assert all(t.finished is None for t in runtime.transports)  # nothing ends the bot
    finally:
        await runtime.stop()

    # Nothing else configured: the embedded default, the terminal chat.
    assert transports.terminal_enabled(make_config(terminal=auto))
    # Written out, the setting wins either way.
    assert transports.terminal_enabled(
        make_config(terminal={"enabled": "yes"}, transports={"echo": {}})
    )
    assert not transports.terminal_enabled(make_config(terminal={"enabled": "no"}))


@pytest.fixture
def echo_with_facts() -> Iterator[None]:
    """Echo with what ``havainto health`` and ``havainto invite`` say of it."""
    transports.register(
        transports.Registration(
            "echo",
            lambda config: "echo" in config.transports,
            EchoTransport,
            offline_facts=lambda config: {"mode": "loopback"},
            invite_hint=lambda config, code: f"Echo: echo://start/{code}",
        )
    )
    try:
        yield
    finally:
        transports.unregister("echo")


def test_health_and_invite_say_what_the_registration_says(
    echo_with_facts: None, tmp_path: Path
) -> None:
    from bot.cli import app

    config = tmp_path / "havainto.toml"
    values = {
        "database": {"url": f"sqlite:///{tmp_path / 'h.db'}"},
        "terminal": {"enabled": "auto"},
        "transports": {"echo": {"text_limit": 300}},
        "teams": TEST_TEAMS,
        "leadership": TEST_LEADERSHIP,
    }
    config.write_text(toml_text(values), encoding="utf-8")

    def havainto(*args: str) -> str:
        result = CliRunner().invoke(app, [*args, "-c", str(config)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    havainto("db", "upgrade")
    report = json.loads(havainto("health"))
    assert report["status"] == "ok"
    assert report["transports"] == {"echo": {"configured": True}}  # and no terminal
    assert report["echo_mode"] == "loopback"
    assert "telegram" not in json.dumps(report)

    out = havainto("invite", "--team", "hki-etsiva")
    code = out.strip().splitlines()[-1]
    assert f"Echo: echo://start/{code}\n" in out
    assert "t.me" not in out  # no bot_username: Telegram has nothing to add
