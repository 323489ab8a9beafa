"""One send budget for every instance of a bot: Telegram's flood limits, in the database.

Telegram lets one bot token send about 30 messages a second, and about 20 a minute
to one group chat; past that it answers 429. Each instance's own rate limiter knows
only its own sends, so two instances on one token could send twice that. Here every
instance asks the database before it sends.

The limits are leaky buckets (GCRA, the generic cell rate algorithm): a *scope*
(``"token"`` for the whole token, ``"chat:<id>"`` for one group chat) keeps one number,
its *theoretical arrival time* (``send_budget.tat``, migration 0019): when the bucket
will next be empty. ``Limit(30, 1.0)`` lets a burst of up to 30 go at once and then one
every 1/30 s; ``Limit(20, 60.0)`` 20 at once, then one every 3 s. That is the model of
PTB's own ``AIORateLimiter`` (aiolimiter's leaky bucket) and of the counting fake in the
tests. (Until migration 0019 the budget kept every send time of the last window, a
sliding-window log: stricter than the limit it modelled, and at 20 updates/s two
instances queued behind it for up to a second -- ``bench/RESULTS-earlier.md`` section 8.)

Taking is a reservation, atomic across instances: one short transaction locks the
scopes' rows (PostgreSQL: ``SELECT ... FOR UPDATE`` in scope order, so two takers never
deadlock; SQLite: the write lock every unit of work takes at its start), reads the
database's clock, picks the earliest moment the send fits every scope, moves each
scope's time on by one send, and commits. The taker then sleeps until its moment,
holding no connection and no lock; it does not try again, so a burst of hundreds costs
the database one transaction per send. A group message reserves in the token and in
its group together; when the group's bucket is full it reserves nothing, sleeps until
the group has room and asks again (``reserve``), so a group's minute never holds up
other chats. The clock is
the database's (PostgreSQL's ``clock_timestamp()``), so instances on machines whose
clocks differ still agree.

``margin`` (0.1 s) shortens each burst by that much time: a request reaches Telegram
some milliseconds after its slot, and two requests do not travel equally fast. A send
late by less than ``margin`` can never make a later one early; the figures that chose it
are in ``bench/RESULTS.md`` section 7 (the jitter the arrivals needed: none).

``pause`` holds the token back for every instance after Telegram answered 429 with
``retry_after``.

**Answers before bulk.** A digest, a summary or a report (``bulk``) takes a slot only
while the token's bucket is at most a tenth full (``BULK_SHARE``) and never reserves
ahead; an answer to a person may use the whole burst. So the weekly batch fills what the
answers leave and a worker tapping through an entry does not queue behind 500 digests
(``bench/RESULTS.md``, capture while digests run). Alone, bulk still goes at the full
rate (each send leaves the bucket near empty again); beside answers it gets the token's
spare rate. With half the burst left to bulk the answers had only the other half to
absorb their own bursts in, and at the county peak they waited for it: p99 232 ms while
the weekly batch ran, where a tenth left them nine tenths.

``LocalSendBudget`` is the same buckets kept in this process: the budget of a bot that
runs as one instance (SQLite, the embedded default), and ``DatabaseSendBudget``'s
fallback.

When the database cannot be reached the budget falls back to the same buckets kept in
this process (logged), so a database outage never stops replies; only the sharing is
lost until it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

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
#: How often a database outage is logged while the budget falls back to this process.
OUTAGE_LOG_EVERY_S = 60.0
#: The default ``margin`` (see the module docstring).
MARGIN_S = 0.1
#: The share of the token's burst that bulk sends (digests, reports) may use: the rest is
#: kept for answers to people (``reserve``).
BULK_SHARE = 0.1


@dataclass(frozen=True)
class Limit:
    """``burst`` sends at once, refilled at ``burst`` per ``period`` seconds."""

    burst: int
    period: float

    @property
    def interval(self) -> float:
        return self.period / self.burst


#: Telegram's limits (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this).
TOKEN_LIMIT = Limit(30, 1.0)
GROUP_LIMIT = Limit(20, 60.0)


@dataclass(frozen=True)
class Bucket:
    """A ``Limit`` as GCRA parameters: one send every ``interval`` seconds, and a send may
    come ``tolerance`` seconds before its theoretical arrival time."""

    interval: float
    tolerance: float

    @classmethod
    def of(cls, limit: Limit, margin: float) -> Bucket:
        interval = limit.interval
        return cls(interval, max(0.0, limit.period - interval - margin))

    def earliest(self, tat: float, now: float) -> float:
        """The first moment from ``now`` a send fits a bucket whose time is ``tat``."""
        return max(now, tat - self.tolerance)

    def after(self, tat: float, at: float) -> float:
        """The bucket's time after a send at ``at``."""
        return max(tat, at) + self.interval


@dataclass(frozen=True)
class Reserved:
    """A send reserved ``at`` (``wait`` 0), or none reserved and ``wait`` seconds to wait."""

    at: float
    wait: float = 0.0


def reserve(
    tats: dict[str, float], buckets: dict[str, Bucket], now: float, bulk: bool = False
) -> Reserved:
    """Reserve the next send in every scope of ``buckets`` (``tats`` moved on for it).

    Only the token's bucket is reserved ahead (the senders queue for it, each sleeping to
    its moment). A group whose bucket is full is not: reserving the token for a moment
    seconds away would hold every private chat's send until then, so the send reserves
    nothing and waits for the group, then asks again.

    A ``bulk`` send (a digest, a report: ``BULK_SHARE``) is never reserved ahead either,
    and goes only while the token's bucket is at most ``BULK_SHARE`` full: the rest of
    the burst stays free for people waiting for an answer."""
    for scope, bucket in buckets.items():
        if scope != TOKEN_SCOPE:
            ready = bucket.earliest(tats.get(scope, 0.0), now)
            if ready > now:
                return Reserved(now, ready - now)
    if bulk and TOKEN_SCOPE in buckets:
        token = buckets[TOKEN_SCOPE]
        ready = max(now, tats.get(TOKEN_SCOPE, 0.0) - token.tolerance * BULK_SHARE)
        if ready > now:
            return Reserved(now, ready - now)
    at = max(bucket.earliest(tats.get(scope, 0.0), now) for scope, bucket in buckets.items())
    for scope, bucket in buckets.items():
        tats[scope] = bucket.after(tats.get(scope, 0.0), at)
    return Reserved(at)


def held_until(tat: float, bucket: Bucket, until: float) -> float:
    """A bucket's time that lets no send go before ``until``."""
    return max(tat, until + bucket.tolerance)


class _Missing(Exception):
    def __init__(self, scopes: list[str]) -> None:
        super().__init__(scopes)
        self.scopes = scopes


class _Budget:
    """Taking slots from buckets: what the budget in this process and the one in the
    database share. Subclasses reserve (``_reserve``) and hold back (``pause``)."""

    def __init__(self, token: Limit, group: Limit, margin: float) -> None:
        self.token = Bucket.of(token, margin)
        self.group = Bucket.of(group, margin)
        # Within this instance reservations are made in turn: a burst queues here for
        # a millisecond each instead of holding a pooled connection each at the lock.
        self._gate = asyncio.Lock()
        # Bulk sends go one after another: one of them asks the budget at a time, so a
        # batch waiting for room does not wake as a herd and queue answers at the gate.
        self._bulk_turn = asyncio.Lock()

    def buckets(self, group_chat: str | None) -> dict[str, Bucket]:
        """The scopes one send reserves in, in lock order (sorted by name)."""
        scopes = {TOKEN_SCOPE: self.token}
        if group_chat is not None:
            scopes[f"chat:{group_chat}"] = self.group
        return dict(sorted(scopes.items()))

    async def take(self, group_chat: str | None, bulk: bool = False) -> float:
        """Wait until a message may be sent (to ``group_chat``, a group or channel, or to a
        private chat when None) without passing a limit, and count it; the seconds waited.
        ``bulk``: a digest or report, which leaves most of the token's burst to answers."""
        return (await self.take_slot(group_chat, bulk))[1]

    async def take_slot(self, group_chat: str | None, bulk: bool = False) -> tuple[float, float]:
        """``take``, and the moment reserved (seconds since the epoch on the budget's
        clock): (slot time, seconds waited)."""
        started = asyncio.get_running_loop().time()
        if not bulk:
            return await self._take_slot(group_chat, bulk, started)
        async with self._bulk_turn:
            return await self._take_slot(group_chat, bulk, started)

    async def _take_slot(
        self, group_chat: str | None, bulk: bool, started: float
    ) -> tuple[float, float]:
        buckets = self.buckets(group_chat)
        loop = asyncio.get_running_loop()
        while True:
            async with self._gate:
                reserved, now = await self._reserve(buckets, bulk)
            if not reserved.wait:
                break
            await asyncio.sleep(reserved.wait)  # the group's bucket is full, or bulk waits
        if reserved.at > now:
            await asyncio.sleep(reserved.at - now)
        waited = loop.time() - started
        if waited >= SLOW_WAIT_S:
            log.info(
                "send_budget_waited seconds=%.1f scope=%s bulk=%s",
                waited,
                "group" if group_chat is not None else "token",
                "yes" if bulk else "no",
            )
        return reserved.at, waited

    async def _reserve(self, buckets: dict[str, Bucket], bulk: bool) -> tuple[Reserved, float]:
        """(what was reserved, the budget clock's now)."""
        raise NotImplementedError


class LocalSendBudget(_Budget):
    """The ``SendBudget`` of ``bot.transports.base`` kept in this process: for a bot that
    runs as one instance (SQLite), and the database budget's fallback."""

    def __init__(
        self, token: Limit = TOKEN_LIMIT, group: Limit = GROUP_LIMIT, margin: float = MARGIN_S
    ) -> None:
        super().__init__(token, group, margin)
        self.tats: dict[str, float] = {}

    async def _reserve(self, buckets: dict[str, Bucket], bulk: bool) -> tuple[Reserved, float]:
        return self.reserve_now(buckets, bulk)

    def reserve_now(self, buckets: dict[str, Bucket], bulk: bool) -> tuple[Reserved, float]:
        now = time.time()
        return reserve(self.tats, buckets, now, bulk), now

    async def pause(self, seconds: float) -> None:
        """Telegram answered 429 ``retry_after`` ``seconds``: no slot for that long."""
        self.hold(seconds)

    def hold(self, seconds: float) -> None:
        tat = self.tats.get(TOKEN_SCOPE, 0.0)
        self.tats[TOKEN_SCOPE] = held_until(tat, self.token, time.time() + seconds)


class DatabaseSendBudget(_Budget):
    """The ``SendBudget`` of ``bot.transports.base``, kept in the database (see the module
    docstring). ``take`` returns when a send may go, and the seconds it waited."""

    def __init__(
        self,
        db: Database,
        token: Limit = TOKEN_LIMIT,
        group: Limit = GROUP_LIMIT,
        margin: float = MARGIN_S,
    ) -> None:
        super().__init__(token, group, margin)
        self.db = db
        self._local = LocalSendBudget(token, group, margin)  # the fallback, this process only
        self._outage_logged_at: float | None = None

    async def _reserve(self, buckets: dict[str, Bucket], bulk: bool) -> tuple[Reserved, float]:
        try:
            try:
                async with self.db.transaction() as session:
                    reserved = await self._reserve_in(session, buckets, bulk)
            except _Missing as missing:
                await self._create(missing.scopes)
                async with self.db.transaction() as session:
                    reserved = await self._reserve_in(session, buckets, bulk)
        except Exception as error:
            self._note_outage(error)
            return self._local.reserve_now(buckets, bulk)
        if self._outage_logged_at is not None:
            log.info("send_budget_shared_again")
            self._outage_logged_at = None
        return reserved

    async def _create(self, scopes: list[str]) -> None:
        """Make new scopes' rows in a transaction of their own, before any lock is held:
        inserting one while holding the token's row could deadlock with a taker that
        holds the token's row and waits for the same insert."""
        insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        rows = [{"scope": scope, "tat": 0.0} for scope in scopes]
        async with self.db.transaction() as session:
            await session.execute(insert(SendBudget).values(rows).on_conflict_do_nothing())

    async def _locked(self, session: AsyncSession, names: list[str]) -> dict[str, float]:
        locked = (
            select(SendBudget.scope, SendBudget.tat)
            .where(SendBudget.scope.in_(names))
            .order_by(SendBudget.scope)
            .with_for_update()
        )
        tats = {scope: tat for scope, tat in (await session.execute(locked)).all()}
        if len(tats) < len(names):
            raise _Missing([s for s in names if s not in tats])
        return tats

    async def _reserve_in(
        self, session: AsyncSession, buckets: dict[str, Bucket], bulk: bool
    ) -> tuple[Reserved, float]:
        tats = await self._locked(session, list(buckets))
        now = await self._now(session)
        reserved = reserve(tats, buckets, now, bulk)
        if reserved.wait:
            return reserved, now
        for scope in buckets:
            await session.execute(
                update(SendBudget).where(SendBudget.scope == scope).values(tat=tats[scope])
            )
        return reserved, now

    async def _now(self, session: AsyncSession) -> float:
        if self.db.dialect == "postgresql":
            # The server's clock: every instance reads the same one. Read after the locks,
            # so a scope's time moves on in the order its takers committed.
            result = await session.execute(text("SELECT extract(epoch FROM clock_timestamp())"))
            return float(result.scalar_one())
        return time.time()  # SQLite: one machine, and the write lock is held

    async def pause(self, seconds: float) -> None:
        """Telegram answered 429 ``retry_after`` ``seconds``: no instance takes a slot of the
        token for that long."""
        try:
            async with self.db.transaction() as session:
                try:
                    tats = await self._locked(session, [TOKEN_SCOPE])
                except _Missing:
                    return  # nobody has sent yet: nothing to hold back
                now = await self._now(session)
                await session.execute(
                    update(SendBudget)
                    .where(SendBudget.scope == TOKEN_SCOPE)
                    .values(tat=held_until(tats[TOKEN_SCOPE], self.token, now + seconds))
                )
        except Exception as error:
            self._note_outage(error)
            self._local.hold(seconds)

    def _note_outage(self, error: Exception) -> None:
        now = time.monotonic()
        if self._outage_logged_at is None or now - self._outage_logged_at >= OUTAGE_LOG_EVERY_S:
            log.warning(
                "send_budget_unavailable error=%s fallback=this_instance", type(error).__name__
            )
            self._outage_logged_at = now
