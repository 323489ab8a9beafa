"""Chat platforms, one module each, found through this registry.

A ``Registration`` names a transport, says when the config turns it on and how
to build it from a ``TransportContext``, and what ``havainto health`` (without a
running bot) and ``havainto invite`` say of it. The runtime, ``/healthz``, delivery
and the command line loop over the registry; nothing else names a platform. Adding one (Signal,
Microsoft Teams, a web chat) is a new module here and one ``register(...)``
line below (its settings go under ``[transports.<name>]`` in the config file);
``flows/``, ``storage/``, ``digests/`` and the runtime stay as they are.

Factories import their module when called, so a platform's library is loaded
only where that platform runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.transports.base import TransportContext

if TYPE_CHECKING:
    from bot.config import Config
    from bot.transports.base import Transport


def no_facts(config: Config) -> dict[str, str]:
    return {}


def no_invite_hint(config: Config, code: str) -> str | None:
    return None


@dataclass(frozen=True)
class Registration:
    name: str
    enabled: Callable[[Config], bool]
    build: Callable[[TransportContext], Transport]
    #: What ``havainto health`` says of the transport when no bot runs, from the config
    #: alone (asked only when it is turned on); each fact is shown as ``<name>_<fact>``.
    offline_facts: Callable[[Config], dict[str, str]] = no_facts
    #: A line ``havainto invite`` prints for a new code (Telegram's t.me link), or None.
    invite_hint: Callable[[Config, str], str | None] = no_invite_hint


REGISTRY: dict[str, Registration] = {}
TERMINAL = "terminal"  # the local chat: tests and tools may run without it


def register(registration: Registration) -> None:
    """Make a transport known (a later registration of the same name replaces it)."""
    REGISTRY[registration.name] = registration


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


def enabled(config: Config) -> list[Registration]:
    """The registered transports the config turns on, in registration order."""
    return [r for r in REGISTRY.values() if r.enabled(config)]


def terminal_enabled(config: Config) -> bool:
    """Whether the local chat runs: ``[terminal] enabled`` "yes" or "no" as written;
    "auto" (the default) only when no other registered transport is turned on (a bot
    of one platform alone, under systemd with an empty stdin, must not end at once)."""
    if config.terminal.enabled == "auto":
        return not any(r.enabled(config) for r in REGISTRY.values() if r.name != TERMINAL)
    return config.terminal.enabled == "yes"


def _telegram(ctx: TransportContext) -> Transport:
    from bot.transports.telegram import TelegramTransport

    transport = TelegramTransport(
        ctx.config.telegram, ctx.service, ctx.router, send_budget=ctx.send_budget
    )
    if ctx.healthz is not None:
        transport.web_routes.append(("GET", "/healthz", ctx.healthz))
    return transport


def _telegram_facts(config: Config) -> dict[str, str]:
    return {"mode": "webhook" if config.telegram.webhook else "polling"}


def _telegram_invite(config: Config, code: str) -> str | None:
    username = config.telegram.bot_username
    return f"Telegram: https://t.me/{username}?start={code}" if username else None


def _matrix(ctx: TransportContext) -> Transport:
    from bot.transports.matrix import MatrixTransport

    return MatrixTransport(ctx.config.matrix, ctx.service, ctx.router, ctx.state)


def _terminal(ctx: TransportContext) -> Transport:
    from bot.transports.terminal import TerminalTransport

    return TerminalTransport(ctx.service, ctx.router)


register(
    Registration(
        "telegram",
        lambda config: config.telegram.enabled,
        _telegram,
        offline_facts=_telegram_facts,
        invite_hint=_telegram_invite,
    )
)
register(Registration("matrix", lambda config: config.matrix.enabled, _matrix))
register(Registration(TERMINAL, terminal_enabled, _terminal))
