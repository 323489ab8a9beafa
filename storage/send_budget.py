"""One send budget for every instance of a bot: Telegram's flood limits, in the database.

Telegram lets one bot token send about 30 messages a second, and about 20 a minute
to one group chat; past that it answers 429. Each instance's own rate limiter knows
only its own sends, so two instances on one token could send twice that. Here every
instance asks the database before it sends: a *scope* (``"token"`` for the whole
token, ``"chat:<id>"`` for one group chat) keeps the times of its recent sends
(``send_budget``, migration 0016), and a send is allowed when fewer than ``limit``
of them fall in the last ``period`` seconds (a sliding-window log). So in any window
of ``period`` seconds at most ``limit`` sends are taken, whichever instance took them.

Taking is atomic across instances: one short transaction locks the scopes' rows
(PostgreSQL: ``SELECT ... FOR UPDATE`` in scope order, so two takers never deadlock;
SQLite: the write lock every unit of work takes at its start), looks at the times,
and appends now to each scope or to none. A group message takes a token slot and a
group slot together, so a slot is never held while waiting for the other. The time is
the database's clock (PostgreSQL's ``clock_timestamp()``), so instances on machines
whose clocks differ still agree. A taker that finds no slot free sleeps until the
oldest send leaves the window, holding no connection meanwhile, and tries again.

``margin`` (0.1 s) lengthens each window a little: a request reaches Telegram some
milliseconds after its slot was taken, and two requests do not travel equally fast
(on a busy machine the difference passed 50 ms in tests). So the token's budget is 30
sends per 1.1 s, about 27 a second.

``pause`` holds the token back for every instance after Telegram answered 429 with
``retry_after`` (it fills the token's window up to then).

When the database cannot be reached the budget falls back to the same windows kept in
this process (logged), so a database outage never stops replies; only the sharing
is lost until it is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.models import SendBudget

log = logging.getLogger("havainto.send_budget")

TOKEN_SCOPE = "token"
#: Waits longer than this are logged (one line, after the wait, without the chat).
SLOW_WAIT_S = 2.0
#: The shortest sleep between two tries (a slot that is free "now" but was taken by
#: another instance between our look and our try).
MIN_SLEEP_S = 0.005
#: How often a database outage is logged while the budget falls back to this process.
OUTAGE_LOG_EVERY_S = 60.0


@dataclass(frozen=True)
class Window:
    """At most ``limit`` sends in any ``period`` seconds."""

    limit: int
    period: float


#: Telegram's limits (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this).
TOKEN_WINDOW = Window(30, 1.0)
GROUP_WINDOW = Window(20, 60.0)


def group_scope(chat_id: str) -> str:
    return f"chat:{chat_id}"


def wait_for_slot(times: Sequence[float], now: float, window: Window) -> float:
    """Seconds until a send fits ``window`` after the sends at ``times`` (oldest
    first); 0 when one fits now."""
    recent = sorted(t for t in times if t > now - window.period)
    if len(recent) < window.limit:
        return 0.0
    # The send that must leave the window for one more to fit.
    return recent[len(recent) - window.limit] + window.period - now


def _recent(times: Sequence[float], now: float, window: Window) -> list[float]:
    return [t for t in times if t > now - window.period]


@dataclass
class _LocalWindows:
    """The same windows in this process only: the fallback while the database is away."""

    times: dict[str, list[float]] = field(default_factory=dict)

    def try_take(self, scopes: dict[str, Window]) -> tuple[float, float]:
        now = time.time()
        wait = max(wait_for_slot(self.times.get(s, []), now, w) for s, w in scopes.items())
        if wait > 0:
            return wait, now
        for scope, window in scopes.items():
            self.times[scope] = [*_recent(self.times.get(scope, []), now, window), now]
        return 0.0, now

    def pause(self, scopes: dict[str, Window], seconds: float) -> None:
        until = time.time() + seconds
        for scope, window in scopes.items():
            self.times[scope] = [until - window.period] * window.limit


class _Missing(Exception):
    def __init__(self, scopes: list[str]) -> None:
        super().__init__(scopes)
        self.scopes = scopes


class DatabaseSendBudget:
    """The ``SendBudget`` of ``bot.transports.base``, kept in the database (see the module
    docstring). ``take`` returns when a send may go, and the seconds it waited."""

    def __init__(
        self,
        db: Database,
        token: Window = TOKEN_WINDOW,
        group: Window = GROUP_WINDOW,
        margin: float = 0.1,
    ) -> None:
        self.db = db
        self.token = Window(token.limit, token.period + margin)
        self.group = Window(group.limit, group.period + margin)
        self._local = _LocalWindows()
        self._outage_logged_at: float | None = None
        self._gates: dict[str | None, asyncio.Lock] = {}

    def _gate(self, group_chat: str | None) -> asyncio.Lock:
        gate = self._gates.get(group_chat)
        if gate is None:
            gate = self._gates[group_chat] = asyncio.Lock()
        return gate

    def scopes(self, group_chat: str | None) -> dict[str, Window]:
        """The scopes one send takes a slot in, in lock order (sorted by name)."""
        scopes = {TOKEN_SCOPE: self.token}
        if group_chat is not None:
            scopes[group_scope(group_chat)] = self.group
        return dict(sorted(scopes.items()))

    async def take(self, group_chat: str | None) -> float:
        """Wait until a message may be sent (to ``group_chat``, a group or channel, or to a
        private chat when None) without passing a limit, and count it; the seconds waited."""
        return (await self.take_slot(group_chat))[1]

    async def take_slot(self, group_chat: str | None) -> tuple[float, float]:
        """``take``, and the time the slot was counted at (seconds since the epoch on the
        budget's clock, the database's): (slot time, seconds waited)."""
        scopes = self.scopes(group_chat)
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Within this instance the takers of one kind (private chats; one group) queue in
        # turn, so a burst of hundreds costs the database one try at a time, not hundreds
        # each time a slot frees. A group waiting for its minute does not hold up others.
        async with self._gate(group_chat):
            while True:
                wait, at = await self._try(scopes)
                if wait <= 0:
                    break
                await asyncio.sleep(max(wait, MIN_SLEEP_S))
        waited = loop.time() - started
        if waited >= SLOW_WAIT_S:
            log.info(
                "send_budget_waited seconds=%.1f scope=%s",
                waited,
                "group" if group_chat is not None else "token",
            )
        return at, waited

    async def _try(self, scopes: dict[str, Window]) -> tuple[float, float]:
        """(0, the slot's time) when taken, else (seconds to wait, the time looked at)."""
        try:
            try:
                async with self.db.transaction() as session:
                    taken = await self._try_in(session, scopes)
            except _Missing as missing:
                await self._create(missing.scopes)
                async with self.db.transaction() as session:
                    taken = await self._try_in(session, scopes)
        except Exception as error:
            self._note_outage(error)
            return self._local.try_take(scopes)
        if self._outage_logged_at is not None:
            log.info("send_budget_shared_again")
            self._outage_logged_at = None
        return taken

    async def _create(self, scopes: list[str]) -> None:
        """Make new scopes' rows in a transaction of their own, before any lock is held:
        inserting one while holding the token's row could deadlock with a taker that
        holds the token's row and waits for the same insert."""
        insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        rows = [{"scope": scope, "times": "[]"} for scope in scopes]
        async with self.db.transaction() as session:
            await session.execute(insert(SendBudget).values(rows).on_conflict_do_nothing())

    async def _try_in(
        self, session: AsyncSession, scopes: dict[str, Window]
    ) -> tuple[float, float]:
        names = list(scopes)
        locked = (
            select(SendBudget.scope, SendBudget.times)
            .where(SendBudget.scope.in_(names))
            .order_by(SendBudget.scope)
            .with_for_update()
        )
        rows = {scope: times for scope, times in (await session.execute(locked)).all()}
        if len(rows) < len(names):
            raise _Missing([s for s in names if s not in rows])
        now = await self._now(session)
        times = {scope: json.loads(rows[scope]) for scope in names}
        wait = max(wait_for_slot(times[s], now, w) for s, w in scopes.items())
        if wait > 0:
            return wait, now
        for scope, window in scopes.items():
            kept = [*_recent(times[scope], now, window), now]
            await session.execute(
                update(SendBudget).where(SendBudget.scope == scope).values(times=json.dumps(kept))
            )
        return 0.0, now

    async def _now(self, session: AsyncSession) -> float:
        if self.db.dialect == "postgresql":
            # The server's clock: every instance reads the same one. Read after the locks,
            # so a scope's times grow in the order its takers committed.
            result = await session.execute(text("SELECT extract(epoch FROM clock_timestamp())"))
            return float(result.scalar_one())
        return time.time()  # SQLite: one machine, and the write lock is held

    async def pause(self, seconds: float) -> None:
        """Telegram answered 429 ``retry_after`` ``seconds``: no instance takes a slot of the
        token for that long (the token's window is filled up to then)."""
        scopes = {TOKEN_SCOPE: self.token}
        try:
            async with self.db.transaction() as session:
                try:
                    await self._pause_in(session, seconds)
                except _Missing:
                    pass  # nobody has sent yet: nothing to hold back
        except Exception as error:
            self._note_outage(error)
            self._local.pause(scopes, seconds)

    async def _pause_in(self, session: AsyncSession, seconds: float) -> None:
        window = self.token
        locked = select(SendBudget.times).where(SendBudget.scope == TOKEN_SCOPE).with_for_update()
        stored = (await session.execute(locked)).scalar_one_or_none()
        if stored is None:
            raise _Missing([TOKEN_SCOPE])
        now = await self._now(session)
        until = now + seconds
        held = sorted(
            [*_recent(json.loads(stored), now, window)] + [until - window.period] * window.limit
        )
        await session.execute(
            update(SendBudget)
            .where(SendBudget.scope == TOKEN_SCOPE)
            .values(times=json.dumps(held[-window.limit :]))
        )

    def _note_outage(self, error: Exception) -> None:
        now = time.monotonic()
        if self._outage_logged_at is None or now - self._outage_logged_at >= OUTAGE_LOG_EVERY_S:
            log.warning(
                "send_budget_unavailable error=%s fallback=this_instance", type(error).__name__
            )
            self._outage_logged_at = now
