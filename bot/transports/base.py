"""What every transport is, and the pieces all of them share.

A transport turns one platform's updates into neutral events (``flows.events``),
hands each to ``receive`` (one receive policy for every platform), and renders
neutral replies back. It knows no database: what it must remember across
restarts (a sync token, a device id, the options of open questions) it keeps in
the ``StateStore`` the runtime hands it.

``Transport`` declares every capability; a platform that lacks one says so in
the method (``edit`` raising ``CannotEdit``), so nothing is found by probing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from flows.events import Choice, Incoming, Message, Outbound, match_choice
from flows.text import split_text

if TYPE_CHECKING:
    from aiohttp import web

    from bot.config import Config
    from bot.service import Havainto

log = logging.getLogger("havainto.transport")
WebHandler = Callable[["web.Request"], Awaitable["web.Response"]]

__all__ = [
    "CannotEdit",
    "Health",
    "SendBudget",
    "StateStore",
    "Transport",
    "TransportContext",
    "answer_by_number",
    "receive",
    "split_text",
]


class CannotEdit(Exception):
    """The platform cannot replace an earlier message: the router posts a new one."""


@dataclass(frozen=True)
class Health:
    """What a transport tells ``/healthz``: whether it runs, its last contact, its mode."""

    running: bool | None = None
    last_contact: datetime | None = None
    mode: str | None = None
    #: (listen, port) of a web server of the transport that answers ``/healthz`` too.
    serves_healthz: tuple[str, int] | None = None


class StateStore(Protocol):
    """Small named strings kept across restarts (the runtime keeps them in the database)."""

    async def get(self, key: str) -> str | None: ...

    async def set_many(self, values: dict[str, str]) -> None: ...


class SendBudget(Protocol):
    """A platform's flood limits shared by every instance that sends with one account (one
    bot token): the runtime hands in one kept in the database (``storage.send_budget``).

    ``take`` returns when one more message may be sent without passing a limit, and
    counts it: ``group_chat`` names a group or channel (limited per chat as well), None
    is a private chat (limited only by the account's overall budget). It waits with
    ``asyncio.sleep`` while no slot is free, and returns the seconds it waited. A
    ``bulk`` message (an ``Outbound`` with ``meta["bulk"]``: digests, reports) leaves
    part of the budget to answers to people.
    """

    async def take(self, group_chat: str | None, bulk: bool = False) -> float: ...

    async def pause(self, seconds: float) -> None:
        """The platform refused a message for sending too fast (Telegram's 429 with
        ``retry_after``): no instance sends on the account for ``seconds``."""


class Transport(Protocol):
    """A chat platform. One module per platform under ``bot/transports/``."""

    name: str

    @property
    def text_limit(self) -> int:
        """The longest text one message may carry (a digest is split under it)."""

    @property
    def finished(self) -> asyncio.Event | None:
        """Set when the transport ends by itself (the terminal's input closed): the bot
        ends with it. None for transports that run until stopped."""

    async def start(self) -> None: ...

    async def start_sending(self) -> bool:
        """Start only what sending needs, taking no updates (``havainto digest --send``
        while the running bot keeps receiving); ``stop`` ends it. False when the platform
        cannot send from a second process: its deliveries are left to the running bot."""

    async def stop_receiving(self) -> None:
        """Take no new updates; the ones taken still finish (graceful shutdown)."""

    async def stop(self) -> None: ...

    async def send_tracked(self, outbound: Outbound) -> str | None:
        """Send ``outbound`` (a Message, Image or Document); the platform's id of the (last)
        message posted, or None when the platform does not tell."""

    async def edit(self, chat_id: str, ref: str, message: Message) -> None:
        """Replace an earlier message of the bot; ``CannotEdit`` where impossible."""

    def is_permanent(self, error: BaseException) -> bool:
        """Whether repeating the request at once cannot help (a refusal, not an outage)."""

    def health(self) -> Health: ...


class Router(Protocol):
    """What a transport needs of ``bot.router.Router``: delivering replies (named here,
    not imported: the router knows the transports, so no import circle)."""

    async def deliver(self, outbounds: Iterable[Outbound]) -> None: ...

    async def sent(self, outbound: Outbound, ref: str | None) -> None:
        """Note a reply the transport delivered itself (e.g. as an edit) as sent."""
        ...


@dataclass(frozen=True)
class TransportContext:
    """What the runtime hands a transport's factory."""

    config: Config
    service: Havainto
    router: Router
    state: StateStore
    #: The ``GET /healthz`` handler, for a transport that runs a web server.
    healthz: WebHandler | None = None
    #: Flood limits shared with the other instances (None: each instance limits itself).
    send_budget: SendBudget | None = None


Deliver = Callable[[list[Outbound]], Awaitable[None]]


async def receive(
    service: Havainto, router: Router, incoming: Incoming, deliver: Deliver | None = None
) -> None:
    """Handle one neutral event and deliver its replies: the one receive policy.

    The event counts as in flight until its replies are sent (a graceful shutdown
    waits for it); the replies go out before the sender's next event is taken up,
    so they never overtake each other; a reply that cannot be delivered is logged
    (``Router`` retries it and tells its ``failed_hooks``) and never ends the bot.
    """
    send = deliver or router.deliver
    async with service.inflight.track():
        try:
            await service.handle(incoming, send)
        except Exception as error:
            log.error(
                "delivery_failed transport=%s kind=%s error=%s",
                incoming.transport,
                type(incoming.event).__name__,
                type(error).__name__,
            )


def answer_by_number(choices: list[Choice], typed: str) -> Choice | None:
    """The option a typed answer names on a platform without buttons: its number in the
    list (1-based) or its label, in any case."""
    return match_choice(choices, typed)
