"""The router: hands each reply to the transport it names, retrying what may pass.

The router lets anything (the service, the scheduler, the desks) address a chat
on any transport by name: a § 48 notice raised on Telegram can go to a Matrix
room. Transports themselves are in ``bot/transports/``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace

from bot.transports.base import CannotEdit, Transport
from flows.events import Alert, Message, Outbound, Reprompt

log = logging.getLogger("havainto.transport")


# Called after a reply was accepted by its platform, with the platform's id of the
# (last) message posted, or None when the transport cannot tell.
SentHook = Callable[[Outbound, str | None], Awaitable[None]]
# Called when a reply could not be delivered, after the retries, with the last error.
FailedHook = Callable[[Outbound, BaseException], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]

# Pauses before the retries of a reply (a platform's 5xx or a network error): about
# four seconds in all, so a worker in the street is answered or knows within seconds.
RETRY_PAUSES = (0.5, 1.0, 2.0)


class Router:
    """Delivers outbound replies through the transport they name.

    An ``Outbound`` with ``meta["edit"] = ref`` asks for the earlier message ``ref``
    to be replaced (``Transport.edit``); where that is not possible it is sent as a
    new message. ``sent_hooks`` see every outbound
    carrying ``meta["track"]`` once it is accepted, e.g. to remember the id of
    a § 48 notice for later editing.
    """

    def __init__(
        self, pauses: tuple[float, ...] = RETRY_PAUSES, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.transports: dict[str, Transport] = {}
        self.sent_hooks: list[SentHook] = []
        self.failed_hooks: list[FailedHook] = []
        self.pauses = pauses
        self.sleep = sleep

    def add(self, transport: Transport) -> None:
        self.transports[transport.name] = transport

    async def deliver(self, outbounds: Iterable[Outbound]) -> None:
        """Send each reply, retrying transient failures; one that fails does not stop the
        others (the first error is raised again once all were tried)."""
        first_error: Exception | None = None
        for outbound in outbounds:
            if outbound.transport not in self.transports:
                log.warning("no_transport name=%s", outbound.transport)
                continue
            try:
                await self.send_retrying(outbound)
            except Exception as error:
                log.warning(
                    "send_failed transport=%s error=%s", outbound.transport, type(error).__name__
                )
                first_error = first_error or error
        if first_error is not None:
            raise first_error

    def is_permanent(self, transport_name: str, error: BaseException) -> bool:
        """Whether repeating the request at once cannot help (no such transport: true)."""
        transport = self.transports.get(transport_name)
        return transport is None or transport.is_permanent(error)

    def text_limit(self, transport_name: str, default: int = 4096) -> int:
        """The longest text one message may carry on the transport."""
        transport = self.transports.get(transport_name)
        return transport.text_limit if transport is not None else default

    async def send_retrying(
        self, outbound: Outbound, pauses: tuple[float, ...] | None = None
    ) -> str | None:
        """``send``, repeated after a short pause while the failure is transient (a 5xx,
        a network error; Telegram's 429 is waited out by PTB's rate limiter already).
        ``pauses`` (default: the router's) are the waits before each retry. When it
        still fails, ``failed_hooks`` hear of it and the error is raised."""
        pauses = self.pauses if pauses is None else pauses
        attempt = 0
        while True:
            try:
                return await self.send(outbound)
            except Exception as error:
                if attempt >= len(pauses) or self.is_permanent(outbound.transport, error):
                    for hook in self.failed_hooks:
                        try:
                            await hook(outbound, error)
                        except Exception:
                            log.exception("failed_hook_failed transport=%s", outbound.transport)
                    raise
                log.info(
                    "send_retry transport=%s error=%s try=%d",
                    outbound.transport,
                    type(error).__name__,
                    attempt + 1,
                )
                await self.sleep(pauses[attempt])
                attempt += 1

    async def send(self, outbound: Outbound) -> str | None:
        """Send one reply (raising what the transport raises); returns its message id."""
        transport = self.transports.get(outbound.transport)
        if transport is None:
            log.warning("no_transport name=%s", outbound.transport)
            raise LookupError(f"no transport {outbound.transport!r}")
        if isinstance(outbound.reply, Alert):
            # Not answered as a pop-up by the transport (Telegram does that for presses):
            # a message in the presser's private chat, or nothing when it is not known.
            if not outbound.chat_id:
                log.info("alert_dropped transport=%s reason=no_private_chat", transport.name)
                return None
            outbound = replace(outbound, reply=Message(outbound.reply.text))
        elif isinstance(outbound.reply, Reprompt):
            outbound = replace(outbound, reply=outbound.reply.message)
        ref: str | None = None
        edit_ref = outbound.meta.get("edit")
        if edit_ref and isinstance(outbound.reply, Message):
            try:
                await transport.edit(outbound.chat_id, edit_ref, outbound.reply)
                ref = edit_ref
            except CannotEdit:
                edit_ref = None
            except Exception as error:
                # The original may be gone or too old to edit: post the new state instead.
                log.info("edit_failed transport=%s error=%s", transport.name, type(error).__name__)
                edit_ref = None
        if not edit_ref or not isinstance(outbound.reply, Message):
            ref = await transport.send_tracked(outbound)
        await self.sent(outbound, ref)
        return ref

    async def sent(self, outbound: Outbound, ref: str | None) -> None:
        """Tell ``sent_hooks`` that ``outbound`` was accepted as message ``ref``: for a
        transport that delivered it itself (e.g. as an edit of the pressed message)."""
        if "track" not in outbound.meta:
            return
        for hook in self.sent_hooks:
            try:
                await hook(outbound, ref)
            except Exception:
                log.exception("sent_hook_failed transport=%s", outbound.transport)
