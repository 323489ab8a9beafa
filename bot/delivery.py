"""Digest delivery: weekly team digests and monthly leadership summaries, each posted once.

``DigestDesk`` builds a digest with ``storage.digest_queries`` (the figures,
with the rules of ``digests.rules`` applied) and ``digests.render``, cuts it
into parts (text pieces under the transport's limit, then the chart photos,
then the CSV of a monthly summary) and posts them under the delivery ledger
(``storage.ledger``): one claim per (kind, scope, period, transport, chat),
progress recorded after every part.

Failures: a part that fails is retried a few times at once with a growing
pause (``schedule.send_retries``, ``send_retry_seconds``: Telegram's 429 is
already waited out by PTB's rate limiter, this covers 5xx and network errors,
and Matrix rate limits raised by its transport); after that the delivery is
marked ``failed`` with a ``next_attempt_at`` (``retry_backoff_minutes``,
doubling up to ``retry_backoff_max_minutes``) and ``retry_due`` (a scheduled
job) continues it from the first part not yet accepted. Nothing is dropped:
a failed delivery stays in the ledger, is retried and logged every time.

Rendering (text, HTML, the charts drawn by matplotlib, the CSV file: 20 ms to
1 s for a digest) runs in a worker process of its own (``render_off_loop``),
never in the bot's process: workers' replies go on while 500 digests are being
built. A worker *thread* was not enough: matplotlib lays text out in Python,
holding the interpreter lock, and the event loop then waited for it at every
system call; the capture benchmark measured 150-900 ms stalls of the loop while
the weekly digests were rendered in a thread (``bench/RESULTS-earlier.md``). The
figures go to the process and the rendering comes back pickled (a few kB and
the chart PNGs).

``/viikko`` (team leads, admins) and ``/kuukausi`` (leaders, admins) preview
the current week or month in a private chat; each preview is on the audit trail
(``digest.weekly`` / ``digest.monthly``, actor ``person:ID``), written in the
transaction of the command, so it is there before the digest leaves.

The digest modules are imported where they are used: they are optional at import
time of the bot (a runtime without digests still starts).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import html
import logging
import multiprocessing
import os
import re
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Config, TeamConfig
from bot.router import Router
from bot.service import Clock, Havainto
from bot.transports.base import split_text
from flows import commands
from flows.events import CommandIn, Document, Image, Incoming, Message, Outbound, Reply
from flows.i18n import t
from storage import audit, ledger, repo
from storage.db import Database

if TYPE_CHECKING:
    from digests.render import Rendered

log = logging.getLogger("havainto.delivery")

DOMAIN = "escalation"
WEEK_COMMANDS = commands.words("week")
MONTH_COMMANDS = commands.words("month")
WEEK_ROLES = frozenset({"lead", "admin"})
MONTH_ROLES = frozenset({"leader", "admin"})
WHOLE_ORGANISATION = "all"
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Outcome:
    """What happened to one delivery: ``sent``, ``skipped`` (sent or claimed elsewhere),
    ``failed`` (will be retried), ``lost`` (another process took the claim over) or
    ``handed_over`` (to an instance that runs its transport)."""

    key: str
    result: str
    parts: int = 0


T = TypeVar("T")
_renderer: ProcessPoolExecutor | None = None
_renderer_lock = threading.Lock()


def _end_with_parent() -> None:
    """In the rendering process: exit when the bot's process is gone, however it ended.
    A pool worker blocks reading its task queue, whose writing end it holds itself, so
    it would outlive a bot killed with SIGKILL (and keep its log pipe open) without this."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()  # returns when the parent's sentinel pipe closes
        os._exit(0)


def _warm_renderer() -> None:
    """Load the drawing libraries once, when the rendering process starts."""
    threading.Thread(target=_end_with_parent, name="end-with-parent", daemon=True).start()
    import digests.charts
    import digests.render  # noqa: F401


def _render_pool() -> ProcessPoolExecutor:
    global _renderer
    with _renderer_lock:
        if _renderer is None:
            # One process: renderings queue there, and the bot keeps the other core.
            # "spawn": a fresh interpreter, not a fork of this one and its threads.
            _renderer = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_warm_renderer,
            )
        return _renderer


def prepare_rendering() -> None:
    """Load the digest modules and start the rendering process now, not at the first
    digest (both take a few hundred ms of this thread). Call from a worker thread."""
    import digests.render  # noqa: F401

    _render_pool().submit(int)  # the process starts; nothing waits for it here


async def render_off_loop(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in the rendering process (started on first use, shared by the
    process's digest desks, ended at exit). A rendering process that died is replaced
    for the next call; this call fails (the delivery is retried, see above)."""
    global _renderer
    pool = _render_pool()
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, function, *args)
    except BrokenProcessPool:
        with _renderer_lock:
            if _renderer is pool:
                _renderer = None
        pool.shutdown(wait=False, cancel_futures=True)
        raise


def plain_of(markup: str) -> str:
    """The plain text of a piece of the digest's HTML subset."""
    return html.unescape(_TAG.sub("", markup))


def digest_parts(rendered: Rendered, limit: int, caption: str | None = None) -> list[Reply]:
    """The messages of a digest on a transport whose messages carry at most ``limit``
    characters: text pieces, chart photos, the CSV."""
    parts: list[Reply] = []
    if rendered.html:
        for piece in split_text(rendered.html, limit):
            parts.append(Message(plain_of(piece), html=piece))
    else:
        parts.extend(Message(piece) for piece in split_text(rendered.text, limit))
    if rendered.buttons and parts:
        last = parts[-1]
        assert isinstance(last, Message)
        parts[-1] = replace(last, choices=rendered.buttons)
    title = caption if caption is not None else rendered.text.split("\n", 1)[0]
    for filename, png in rendered.charts:
        parts.append(Image(png, caption=title, filename=filename))
    parts.extend(attachments(rendered, title))
    return parts


def attachments(rendered: Rendered, caption: str) -> list[Reply]:
    """The files of a digest: the CSV of the escalations, the PDF of the whole summary."""
    files: list[Reply] = []
    if rendered.csv is not None:
        filename = rendered.csv_filename or "escalations.csv"
        files.append(Document(rendered.csv, filename, caption=caption, mime_type="text/csv"))
    if rendered.pdf is not None:
        filename = rendered.pdf_filename or "summary.pdf"
        files.append(Document(rendered.pdf, filename, caption=caption, mime_type="application/pdf"))
    return files


class DigestDesk:
    """Builds digests and delivers them exactly once; previews them on request."""

    def __init__(
        self,
        config: Config,
        db: Database,
        router: Router,
        clock: Clock,
    ) -> None:
        self.config = config
        self.db = db
        self.router = router
        self.clock = clock
        self.zone = ZoneInfo(config.timezone)
        # Builders of other kinds of delivery (the scheduled social report, bot.reports):
        # kind -> (scope, period, transport, chat) -> build, for ``retry_due``.
        self.rebuilders: dict[
            str, Callable[[str, str, str, str], Callable[[], Awaitable[list[Reply]]] | None]
        ] = {}
        # What goes with each part of such a delivery: kind -> (scope, period) -> meta.
        self.retry_meta: dict[str, Callable[[str, str], dict[str, str]]] = {}

    def install(self, service: Havainto) -> None:
        service.private_handlers.append(self.on_private_event)

    async def prepare(self) -> None:
        """Before the bot takes updates: what the first digest would otherwise do on the
        event loop (imports, starting the rendering process)."""
        await asyncio.to_thread(prepare_rendering)

    # --- building ------------------------------------------------------------------------

    async def weekly(
        self,
        team_id: str,
        week: str,
        lang: str | None = None,
        session: AsyncSession | None = None,
        leadership: bool = False,
    ) -> Rendered:
        """The rendered digest; inside ``session`` when the caller already has one open (a
        second transaction next to an open write transaction would wait for it on SQLite).

        For the team's chat it shows the team its own counts (never how many workers
        wrote when fewer than three did); with ``leadership`` (an administrator's preview)
        small counts show as "< 5" (``digests.numbers``)."""
        from digests.numbers import Privacy
        from digests.render import render_weekly
        from storage.digest_queries import weekly_digest_data

        audience = Privacy(min_cell=self.config.privacy.min_cell, suppress=leadership)
        now = self.clock()

        team = self.config.team(team_id)
        if team is None:
            raise ValueError(f"unknown team {team_id!r}")
        if session is not None:
            data = await weekly_digest_data(session, team_id, week, self.zone, now=now)
        else:
            async with self.db.snapshot() as own:  # reads only: no write lock held
                data = await weekly_digest_data(own, team_id, week, self.zone, now=now)
        # Out of this process: drawing the chart takes longer than a reply may wait.
        return await render_off_loop(
            render_weekly, data, lang or team.language, self.zone, audience
        )

    async def monthly(
        self,
        region: str | None,
        month: str,
        lang: str,
        session: AsyncSession | None = None,
    ) -> Rendered:
        from digests.numbers import Privacy
        from digests.render import render_monthly
        from storage.digest_queries import monthly_summary_data

        scope = region or None
        name = self.config.region_label(scope) if scope else None
        audience = Privacy(min_cell=self.config.privacy.min_cell)
        now = self.clock()

        async def figures(session: AsyncSession) -> Any:
            return await monthly_summary_data(
                session,
                scope,
                month,
                self.zone,
                scope_name=name,
                now=now,
                audience=audience,
                # Side by side, each region with its official code: "Helsinki (90)".
                region_names={r: self.config.region_label(r) for r in self.config.regions},
            )

        if session is not None:
            data = await figures(session)
        else:
            async with self.db.snapshot() as own:
                data = await figures(own)
        data = dataclasses.replace(data, codes=self.config.official_codes())
        # The chat text (at most two messages), the CSV and the PDF of the whole summary,
        # out of this process (a partial of a module-level function pickles).
        render = functools.partial(render_monthly, pdf=True, csv_dialect=self.config.csv.dialect)
        return await render_off_loop(render, data, lang, self.zone)

    # --- delivering ----------------------------------------------------------------------

    @property
    def _lease(self) -> timedelta:
        return timedelta(minutes=self.config.schedule.lease_minutes)

    def _backoff(self, attempts: int) -> timedelta:
        schedule = self.config.schedule
        minutes = schedule.retry_backoff_minutes * 2 ** max(0, attempts - 1)
        return timedelta(minutes=min(minutes, schedule.retry_backoff_max_minutes))

    async def deliver(
        self,
        kind: str,
        scope: str,
        period: str,
        transport: str,
        chat_id: str,
        build: Callable[[], Awaitable[list[Reply]]],
        meta: dict[str, str] | None = None,
    ) -> Outcome:
        """Post one digest under the ledger: at most once, continuing an earlier attempt.
        ``meta`` goes with every part (``Router.sent_hooks`` see a ``track``)."""
        key = ledger.delivery_key(kind, scope, period, transport, chat_id)
        async with self.db.transaction() as session:
            held = await ledger.claim(
                session,
                kind=kind,
                scope=scope,
                period=period,
                transport=transport,
                chat_id=chat_id,
                now=self.clock(),
                lease=self._lease,
            )
        if held is None:
            log.info("digest_skipped key=%s", key)
            return Outcome(key, "skipped")
        try:
            parts = await build()
        except Exception as error:
            log.exception("digest_build_failed key=%s", key)
            return await self._failed(held, f"build:{type(error).__name__}")
        done = held.parts_sent
        for part in parts[held.parts_sent :]:
            # Bulk: the platform's send budget serves answers to people first.
            outbound = Outbound(transport, chat_id, part, {**(meta or {}), "bulk": "yes"})
            error_kind = await self._send_part(outbound, key)
            if error_kind is not None:
                return await self._failed(held, error_kind, done)
            done += 1
            async with self.db.transaction() as session:
                if not await ledger.record_parts(session, held, done):
                    log.warning("digest_claim_lost key=%s", key)
                    return Outcome(key, "lost", done)
        async with self.db.transaction() as session:
            await ledger.mark_sent(session, held, self.clock())
        log.info("digest_sent key=%s parts=%s attempt=%s", key, done, held.attempts)
        return Outcome(key, "sent", done)

    async def _send_part(self, outbound: Outbound, key: str) -> str | None:
        """Send one part, retrying transient errors at once (``Router.send_retrying``, with
        the schedule's pauses); the error kind when it fails."""
        schedule = self.config.schedule
        pauses = tuple(schedule.send_retry_seconds * 2**i for i in range(schedule.send_retries))
        try:
            await self.router.send_retrying(outbound, pauses)
        except Exception as error:
            kind = type(error).__name__
            log.warning("digest_send_error key=%s error=%s", key, kind)
            return kind
        return None

    async def _failed(self, held: ledger.Claim, error_kind: str, done: int = 0) -> Outcome:
        retry_at = self.clock() + self._backoff(held.attempts)
        async with self.db.transaction() as session:
            await ledger.mark_failed(session, held, error_kind, retry_at)
        log.error(
            "digest_failed key=%s error=%s attempt=%s retry_at=%s",
            held.key,
            error_kind,
            held.attempts,
            retry_at.isoformat(),
        )
        return Outcome(held.key, "failed", done)

    # --- what the jobs call --------------------------------------------------------------

    def _weekly_build(
        self, team: TeamConfig, week: str, transport: str
    ) -> Callable[[], Awaitable[list[Reply]]]:
        async def build() -> list[Reply]:
            return digest_parts(await self.weekly(team.id, week), self.router.text_limit(transport))

        return build

    def _monthly_build(
        self, region: str | None, month: str, lang: str, transport: str
    ) -> Callable[[], Awaitable[list[Reply]]]:
        async def build() -> list[Reply]:
            return digest_parts(
                await self.monthly(region, month, lang), self.router.text_limit(transport)
            )

        return build

    async def _served(
        self,
        kind: str,
        scope: str,
        period: str,
        targets: list[tuple[str, str]],
        outcomes: list[Outcome],
    ) -> list[tuple[str, str]]:
        """The targets on transports this process runs; the others are handed over (an
        ``Outcome`` ``handed_over`` each, appended to ``outcomes``).

        With several instances (say one for Telegram, one for Matrix) each posts only
        what it can. A delivery on another transport is recorded as a failed attempt due
        at once: the instance that runs the transport takes it with its own job or with
        ``retry_due``, even when it was down while the job ran. (Claiming it and failing
        to send, as before, held it back until a retry that could land on the wrong
        instance again; found by the two-instance test.)"""
        served: list[tuple[str, str]] = []
        for transport, chat_id in targets:
            if transport in self.router.transports:
                served.append((transport, chat_id))
                continue
            now = self.clock()
            async with self.db.transaction() as session:
                held = await ledger.claim(
                    session,
                    kind=kind,
                    scope=scope,
                    period=period,
                    transport=transport,
                    chat_id=chat_id,
                    now=now,
                    lease=self._lease,
                )
                if held is not None:
                    await ledger.mark_failed(session, held, "handed_over", now)
            key = ledger.delivery_key(kind, scope, period, transport, chat_id)
            log.info("digest_handed_over key=%s", key)
            outcomes.append(Outcome(key, "handed_over"))
        return served

    async def send_weekly(
        self, week: str | None = None, team_ids: Sequence[str] | None = None
    ) -> list[Outcome]:
        """Each team's digest of ``week`` (default: the previous ISO week) to its chats."""
        from digests.periods import previous_iso_week

        week = week or previous_iso_week(self.clock(), self.zone)
        outcomes: list[Outcome] = []
        for team in self.config.teams:
            if team_ids is not None and team.id not in team_ids:
                continue
            targets = team.chat_targets()
            if not targets:
                log.info("digest_no_chat team=%s", team.id)
            for transport, chat_id in await self._served(
                "weekly", team.id, week, targets, outcomes
            ):
                build = self._weekly_build(team, week, transport)
                outcomes.append(
                    await self.deliver("weekly", team.id, week, transport, chat_id, build)
                )
        return outcomes

    def monthly_due_today(self) -> bool:
        from digests.periods import first_working_day

        today = self.clock().astimezone(self.zone).date()
        return today == first_working_day(today.year, today.month)

    async def send_monthly(
        self, month: str | None = None, regions: Sequence[str | None] | None = None
    ) -> list[Outcome]:
        """The summary of ``month`` (default: the previous month) to each leadership channel:
        per region to the channels with that region, for the whole organisation to those
        with an empty region."""
        from digests.periods import previous_month

        month = month or previous_month(self.clock(), self.zone)
        outcomes: list[Outcome] = []
        for channel in self.config.leadership:
            region = channel.region or None
            if regions is not None and region not in regions:
                continue
            scope = region or WHOLE_ORGANISATION
            targets = channel.chat_targets()
            for transport, chat_id in await self._served(
                "monthly", scope, month, targets, outcomes
            ):
                build = self._monthly_build(region, month, channel.language, transport)
                outcomes.append(
                    await self.deliver("monthly", scope, month, transport, chat_id, build)
                )
        return outcomes

    async def retry_due(self) -> list[Outcome]:
        """Continue failed deliveries that are due, and claims whose process died."""
        async with self.db.transaction() as session:
            due = [
                (row.kind, row.scope, row.period, row.transport, row.chat_id)
                for row in await ledger.due_retries(session, self.clock(), self._lease)
                if row.transport in self.router.transports
            ]
        outcomes: list[Outcome] = []
        for kind, scope, period, transport, chat_id in due:
            build = self._rebuild(kind, scope, period, transport, chat_id)
            if build is None:
                log.error("digest_retry_impossible kind=%s scope=%s", kind, scope)
                continue
            meta = self.retry_meta[kind](scope, period) if kind in self.retry_meta else None
            outcomes.append(
                await self.deliver(kind, scope, period, transport, chat_id, build, meta)
            )
        return outcomes

    def _rebuild(
        self, kind: str, scope: str, period: str, transport: str, chat_id: str
    ) -> Callable[[], Awaitable[list[Reply]]] | None:
        if kind == "weekly":
            team = self.config.team(scope)
            return self._weekly_build(team, period, transport) if team else None
        if kind == "monthly":
            region = None if scope == WHOLE_ORGANISATION else scope
            channel = self.config.leadership_at(transport, chat_id)
            lang = channel.language if channel else "fi"
            return self._monthly_build(region, period, lang, transport)
        rebuild = self.rebuilders.get(kind)
        if rebuild is not None:
            return rebuild(scope, period, transport, chat_id)
        return None

    # --- previews in a private chat ------------------------------------------------------

    async def on_private_event(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member | None,
        now: datetime,
    ) -> list[Outbound] | None:
        event = incoming.event
        if member is None or not isinstance(event, CommandIn):
            return None
        if event.name not in WEEK_COMMANDS | MONTH_COMMANDS:
            return None
        from digests.periods import month_label, week_of

        lang = member.language
        today = self.clock().astimezone(self.zone).date()
        if event.name in WEEK_COMMANDS:
            if member.role not in WEEK_ROLES:
                log.info("preview_refused person=%s kind=weekly", member.person_id)
                return self._say(incoming, t(lang, "preview.weekly_refused", domain=DOMAIN))
            week = week_of(today)
            # An administrator reads any team's week as leadership does.
            rendered = await self.weekly(
                member.team_id, week, lang, session, leadership=member.role == "admin"
            )
            action, what = audit.DIGEST_WEEKLY, f"team={member.team_id} week={week} preview=chat"
        else:
            if member.role not in MONTH_ROLES:
                log.info("preview_refused person=%s kind=monthly", member.person_id)
                return self._say(incoming, t(lang, "preview.monthly_refused", domain=DOMAIN))
            team = self.config.team(member.team_id)
            region = None if member.role == "admin" or team is None else team.region
            month = month_label(today.year, today.month)
            rendered = await self.monthly(region, month, lang, session)
            action = audit.DIGEST_MONTHLY
            what = f"region={region or '*'} month={month} preview=chat"
        await audit.record(
            session, audit.person_actor(member.person_id), action, what, rendered.observations, now
        )
        log.info("preview_sent person=%s kind=%s", member.person_id, event.name)
        title = rendered.text.split("\n", 1)[0]
        parts: list[Reply] = [
            Message(t(lang, "preview.note", domain=DOMAIN)),
            Message(rendered.text, html=rendered.html),
        ]
        parts += [Image(png, caption=title, filename=name) for name, png in rendered.charts]
        parts += attachments(rendered, title)
        return [Outbound(incoming.transport, incoming.chat_id, part) for part in parts]

    @staticmethod
    def _say(incoming: Incoming, text: str) -> list[Outbound]:
        return [Outbound(incoming.transport, incoming.chat_id, Message(text))]
