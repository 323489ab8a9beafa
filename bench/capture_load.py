"""Capture under an open-loop load, as people meet the bot: Poisson arrivals, 2 s to think.

    python -m bench.capture_load --rates 20 --rate-limit on
    python -m bench.capture_load --rates 60 100 150 200 --rate-limit off
    python -m bench.capture_load --rates 20 --rate-limit on --digests

**The load.** New entries arrive as a Poisson process at ``rate / 7`` a second, so
that the bot gets ``rate`` updates a second in the steady state (the process is
conditioned on its count in each 10 s block, so every point offers the rate it
names; Havainto gets a few more: the "me too" question, when it is shown, is one
update more than the seven the floor gets): each entry is
one simulated worker walking the real quick capture -- a text, then six taps
(theme, group, signal, how common, escalation "none", Save) -- and waiting an
exponentially distributed think time (mean ``--think``, 2 s) after each reply
before the next step. Arrivals do not wait for the bot (open loop): when the bot
falls behind, updates queue and latency grows, as it would for real people. A
worker is taken from a pool of enrolled people for each entry and returned when
the entry is saved.

**A point** is one rate for ``--warmup`` seconds (not measured: the entries in
progress build up), then ``--duration`` seconds measured (default 60 s, enough
for a stable p99; use 10-20 s while developing), then arrivals stop and the
entries in progress finish (every entry must be saved and every step
answered). Latency is from pushing an update into the fake Bot API to the bot's
reply arriving there (``sendMessage``, or ``editMessageText`` when the next
question replaces the pressed one), for every update pushed inside the
measured window: p50/p95/p99/max. The achieved rate is the replies arriving in
the window per second. Bot CPU is the bot process's user+system time in the
window per update answered in it; "fake CPU" is the driver process's (the fake
server and the simulated workers). Event-loop lag is how late a 20 ms
``asyncio.sleep`` in the bot process wakes up (p99 and max in the window): the
time any callback held the loop.

**Variants**, measured one after the other at each point (the bot runs in a
process of its own, the fake and the workers in this one):

* ``havainto``: the real runtime, ``bot.runtime.build_runtime`` with the
  Telegram transport (long polling), the service and the database, as
  ``havainto run`` configures it;
* ``floor``: **the fair floor**, a bare PTB bot that makes the same Bot API calls
  per update as Havainto on the same HTTP layer and rate limiter (our
  ``build_application``): on a text ``sendMessage`` with Havainto's first
  question and its keyboard; on a press ``answerCallbackQuery`` and
  ``editMessageText`` with the next question and its keyboard (on Save the
  pressed summary with the confirmation below it). The texts and keyboards are
  Havainto's own, recorded from one walk through ``Havainto.handle``. It stores
  nothing. Ratios are taken against it;
* ``bare``: the same handler on PTB as it ships (``ApplicationBuilder``
  defaults: its httpx request; PTB's ``AIORateLimiter()`` when the limiter is
  on; concurrent updates on), printed as a second reference.

``--rate-limit on`` (production, the default) keeps the send budget ``havainto run``
gives one instance (``storage.send_budget.LocalSendBudget``: Telegram's 30 messages/s
and 20/min per group, answers to people before digests; the floor gets the same one
through ``build_application``; on PostgreSQL the real bot uses the shared budget in
the database), and the fake answers 429 with ``retry_after`` past those limits like
Telegram (``tests.support.fake_telegram``, flood limit); rejections are counted.
``--rate-limit off`` lifts both (and turns the shared budget off), to measure the
code's headroom.

**Capture while digests run** (``--digests``): the bot's database is a copy of a
generated national data set (``bench.generate``: 500 teams, 22 regions;
``--digest-rows``, default 1,000,000), each team has a Telegram group chat and
the whole organisation a leadership channel; the measured window starts when
the bot begins the weekly digests of all 500 teams (week 2026-W47) and the
whole organisation's monthly summary (2026-10), built and sent in the bot
process beside the capture load, and lasts until both are sent (at least
``--duration``). The table adds the digests' wall time and how long rendering
took. Only ``havainto`` variants run in this mode; their floor is the floor
measured at the same rate without digests in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    DEFAULT_PG_URL,
    Table,
    fresh_database,
    git_commit,
    load_average,
    ms,
    percentile,
    print_header,
    ratio,
    remove_sqlite,
    verdict,
)
from flows.knowledge import NEW_VALUE
from tests.support.fake_telegram import MESSAGE_METHODS, FakeTelegram, SentCall

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:BENCH"
FIRST_USER = 10_000_001
WORKERS_PER_TEAM = 20
STEPS = 7  # a text and six taps
REPLY_TIMEOUT = 60.0
LAG_TICK = 0.020
LEADERSHIP_CHAT = -1_009_000_000_000
TEXTS = (
    "Nuori aikuinen yöpyi rappukäytävässä, hätämajoitusta ei löytynyt.",
    "Perhe odottaa toimeentulotukipäätöstä jo viidettä viikkoa.",
    "Päihdehoitoon on kuuden viikon jono, asiakas ei jaksa odottaa.",
    "Iäkäs mies ei saa aikaa sosiaalityöntekijälle, puhelinpalvelu ei vastaa.",
    "Nuori keskeytti opinnot eikä kukaan ottanut yhteyttä.",
)
THEME_WEIGHTS = {"theme.housing": 5.0, "theme.substance_mental": 3.0, "theme.income": 2.0}


@dataclass(frozen=True)
class Variant:
    """One bot to measure: what it is, and the paths it takes."""

    name: str
    kind: str  # "havainto", "floor" (same calls, same HTTP layer and limiter) or "bare"
    floor: str = "floor"  # the variant its ratios are taken against (same HTTP layer)
    db: str = "inline"  # SQLite units of work: "inline" (storage.sqlite_inline) or "aiosqlite"
    http: str = "aiohttp"  # Bot API requests: "aiohttp" (telegram_http) or "httpx" (PTB's)
    charts: str = "blit"  # the weekly chart: "blit" (digests.charts) or "plain"


VARIANTS = {
    v.name: v
    for v in (
        Variant("floor", "floor", floor=""),
        Variant("floor-httpx", "floor", floor="", http="httpx"),
        Variant("bare", "bare"),
        Variant("havainto", "havainto"),
        # The stock paths of bench.stock_paths, all three or one at a time.
        Variant("stock", "havainto", "floor-httpx", "aiosqlite", "httpx", "plain"),
        Variant("stock-db", "havainto", db="aiosqlite"),
        Variant("stock-http", "havainto", "floor-httpx", http="httpx"),
        Variant("stock-charts", "havainto", charts="plain"),
    )
}
DEFAULT_VARIANTS = ("floor", "bare", "havainto")

# Targets of the performance issue (open loop, one process, SQLite).
TARGET_P50 = 0.010  # at 20/s, limiter on (also while digests run)
TARGET_P99 = 0.050
TARGET_HEADROOM_P99 = 0.100  # at 60/s, limiter off
HEADROOM_RATE = 60.0
#: Arrivals are drawn block by block (``Load.moments``).
BLOCK_S = 10.0
KNEE_P99 = 0.250  # the knee: the first rate whose p99 exceeds this ...
KNEE_MIN_RATE = 100.0  # ... must be at least 5x the county peak
COUNTY_PEAK = 20.0
CPU_RATIO = 3.0  # bot CPU per update against the fair floor


# --- the bot process ---------------------------------------------------------------------


def _bot_config(settings: dict[str, Any]) -> Any:
    from bot.config import load_config

    return load_config(None, **settings)


def _lift_rate_limit() -> None:
    """Let the bot send as fast as the fake answers (Telegram's flood limit lifted): the
    send budget the runtime hands the transport in this process lets everything go."""
    import bot.runtime.run
    from storage.send_budget import Limit, LocalSendBudget

    def unlimited() -> LocalSendBudget:
        return LocalSendBudget(token=Limit(10**9, 1.0), group=Limit(10**9, 1.0))

    setattr(bot.runtime.run, "LocalSendBudget", unlimited)  # noqa: B010


def _budget(rate_limit: str) -> Any:
    """The send budget of the floor: the one ``havainto run`` gives a single instance."""
    import bot.runtime.run

    return bot.runtime.run.LocalSendBudget()  # lifted by _lift_rate_limit when off


class LagMonitor:
    """How late a short ``asyncio.sleep`` wakes up: what held the event loop."""

    def __init__(self, stalls: StallWatch | None = None) -> None:
        self.lags: list[float] = []
        self.stalls = stalls
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(LAG_TICK)
            self.lags.append(loop.time() - started - LAG_TICK)
            if self.stalls is not None:
                self.stalls.tick = time.monotonic()

    def take(self) -> dict[str, float]:
        lags, self.lags = self.lags, []
        return {
            "p50": percentile(lags, 50),
            "p99": percentile(lags, 99),
            "max": max(lags, default=math.nan),
        }


class StallWatch:
    """Logs where the event loop's thread is when it has not ticked for ``threshold`` s.

    A watchdog thread looks at the time of the loop's last tick (``LagMonitor``'s
    sleeps) and, past the threshold, logs the loop thread's stack once per stall:
    which call held the loop. Cheap enough to leave on (``HAVAINTO_BENCH_STALLS``).
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.tick = time.monotonic()
        self._thread_id = threading.get_ident()

    def start(self) -> None:
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        import traceback

        log = logging.getLogger("bench.stall")
        reported = 0.0
        while True:
            time.sleep(self.threshold / 4)
            since = time.monotonic() - self.tick
            if since > self.threshold and self.tick != reported:
                reported = self.tick
                frame = sys._current_frames().get(self._thread_id)
                stack = "".join(traceback.format_stack(frame)[-12:]) if frame else "?"
                log.warning("loop_stalled for>%.0fms at:\n%s", since * 1000, stack)


class RenderClock:
    """How long each digest rendering took, queueing in the rendering process included
    (``bot.delivery.render_off_loop``)."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {"weekly": [], "monthly": []}

    def install(self) -> None:
        import bot.delivery as delivery

        off_loop = delivery.render_off_loop

        async def timed(function: Callable[..., Any], *args: Any) -> Any:
            started = time.perf_counter()
            try:
                return await off_loop(function, *args)
            finally:
                # The monthly summary is rendered through a functools.partial (its options).
                target = getattr(function, "func", function)
                kind = "weekly" if target.__name__.endswith("weekly") else "monthly"
                self.times[kind].append(time.perf_counter() - started)

        delivery.render_off_loop = timed  # type: ignore[assignment]


def _floor_handler(replies: list[dict[str, Any]]) -> Callable[..., Awaitable[None]]:
    """The fair floor: Havainto's calls for each update, with its recorded texts and keys."""
    from html import escape

    from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
    from telegram import Message as TelegramMessage
    from telegram.constants import ParseMode
    from telegram.ext import ContextTypes

    def markup(reply: dict[str, Any]) -> InlineKeyboardMarkup | None:
        rows = reply["choices"]
        if not rows:
            return None
        return InlineKeyboardMarkup(
            [[InlineKeyboardButton(label, callback_data=data) for label, data in r] for r in rows]
        )

    prepared = [
        (r["html"] or r["text"], ParseMode.HTML if r["html"] else None, markup(r)) for r in replies
    ]

    async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        bot = context.bot
        query = update.callback_query
        if query is None:
            chat = update.effective_chat
            if chat is not None:
                text, mode, keys = prepared[0]
                await bot.send_message(chat.id, text, parse_mode=mode, reply_markup=keys)
            return
        await query.answer()
        step = int((query.data or "d:x:1:x").split(":")[2])
        text, mode, keys = prepared[min(step, len(prepared) - 1)]
        message = query.message
        assert message is not None
        if keys is not None:
            await bot.edit_message_text(
                text,
                chat_id=message.chat.id,
                message_id=message.message_id,
                parse_mode=mode,
                reply_markup=keys,
            )
            return
        # The answer closes the pressed message (its text kept above, no buttons): one edit.
        shown = message.text_html if isinstance(message, TelegramMessage) else ""
        closing = text if mode is not None else escape(text)
        await bot.edit_message_text(
            f"{shown}\n\n{closing}",
            chat_id=message.chat.id,
            message_id=message.message_id,
            parse_mode=ParseMode.HTML,
        )

    return answer


async def _serve(variant: Variant, settings: dict[str, Any], rate_limit: str) -> None:
    """Run one bot; print ``ready`` once it polls, then answer the driver's commands."""
    if rate_limit == "off":
        _lift_rate_limit()
    from bench import stock_paths

    stock_paths.install(variant.db, variant.http, variant.charts)
    floor_replies = settings.pop("floor_replies", None)
    config = _bot_config(settings)
    stalls_ms = os.environ.get("HAVAINTO_BENCH_STALLS")
    stalls = StallWatch(float(stalls_ms) / 1000) if stalls_ms else None
    monitor = LagMonitor(stalls)
    renders = RenderClock()
    stop: Callable[[], Awaitable[None]]
    runtime: Any = None
    if variant.kind in ("floor", "bare"):
        from telegram import Update
        from telegram.ext import AIORateLimiter, ApplicationBuilder, TypeHandler

        from bot.transports.telegram import build_application

        if variant.kind == "bare":
            builder = (
                ApplicationBuilder()
                .token(config.telegram.token)
                .base_url(config.telegram.base_url)
                .base_file_url(config.telegram.base_file_url)
                .concurrent_updates(True)
            )
            if rate_limit == "on":
                builder = builder.rate_limiter(AIORateLimiter())
            app = builder.build()
        else:
            app = build_application(config.telegram, send_budget=_budget(rate_limit))
        app.add_handler(TypeHandler(Update, _floor_handler(floor_replies or [])))
        await app.initialize()
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=config.telegram.poll_timeout)

        async def stop_app() -> None:
            assert app.updater is not None
            await app.updater.stop()
            await app.stop()
            await app.shutdown()

        stop = stop_app
    else:
        from bot.runtime import build_runtime

        renders.install()
        runtime = await build_runtime(config, terminal=False)
        await runtime.start()  # as `havainto run`, without the scheduler (digests on command)
        stop = runtime.stop
    monitor.start()
    if stalls is not None:
        stalls.start()
    print("ready", flush=True)
    # The driver's commands, read on the loop (a pipe, not a thread: a worker thread
    # blocked in read() is sampled by py-spy as if busy, and this is not the bot's work).
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    digests: asyncio.Task[None] | None = None
    while True:
        line = (await commands.readline()).decode()
        if not line:  # the driver closed stdin: stop
            break
        command, *args = line.split()
        if command == "lag":
            _say("lag", monitor.take())
        elif command == "digests" and runtime is not None:
            digests = asyncio.create_task(_digests(runtime, renders, *args))
    if digests is not None and not digests.done():
        digests.cancel()
    await stop()


async def _digests(runtime: Any, renders: RenderClock, week: str, month: str, teams: str) -> None:
    """The weekly digests of ``teams`` teams (0: all) and the whole organisation's monthly
    summary, built and sent at once beside the capture load, as the scheduler runs them."""
    started = time.perf_counter()
    limit = int(teams)
    team_ids = [t.id for t in runtime.config.teams][:limit] if limit else None
    done: dict[str, float] = {}

    async def timed(kind: str, job: Awaitable[list[Any]]) -> list[Any]:
        outcomes = await job
        done[kind] = time.perf_counter() - started
        return outcomes

    weekly, monthly = await asyncio.gather(
        timed("weekly", runtime.digests.send_weekly(week, team_ids)),
        timed("monthly", runtime.digests.send_monthly(month, regions=[None])),
    )
    results = Counter(o.result for o in [*weekly, *monthly])
    _say(
        "digests",
        {
            "weekly_s": done["weekly"],
            "monthly_s": done["monthly"],
            "results": dict(results),
            "render_weekly": renders.times["weekly"],
            "render_monthly": renders.times["monthly"],
        },
    )


def _say(what: str, payload: dict[str, Any]) -> None:
    print(f"{what} {json.dumps(payload)}", flush=True)


def serve_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.capture_load serve")
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--settings", required=True, help="config overrides as JSON")
    parser.add_argument("--rate-limit", choices=("on", "off"), default="on")
    parser.add_argument("--log", required=True)
    args = parser.parse_args(argv)
    # As `havainto run` logs (INFO, libraries at WARNING), into a file.
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        filename=args.log,
    )
    for noisy in ("httpx", "httpcore", "apscheduler", "telegram", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    asyncio.run(_serve(VARIANTS[args.variant], json.loads(args.settings), args.rate_limit))


# --- the fake, the workers and the measurement -------------------------------------------


class LoadFake(FakeTelegram):
    """The fake Bot API server, telling each waiting worker about its chat's next message."""

    def __init__(self, flood_limit: bool) -> None:
        super().__init__(token=TOKEN, flood_limit=flood_limit)
        self._waiters: dict[int, tuple[asyncio.Future[SentCall], Callable[[SentCall], bool]]] = {}
        self._seen = 0
        self.polled = asyncio.Event()  # the bot has asked for updates at least once

    async def _get_updates(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> list[dict[str, Any]]:
        self.polled.set()
        return await super()._get_updates(params, files, names)

    def expect(self, chat_id: int, accept: Callable[[SentCall], bool]) -> asyncio.Future[SentCall]:
        future: asyncio.Future[SentCall] = asyncio.get_running_loop().create_future()
        self._waiters[chat_id] = (future, accept)
        return future

    def _notify_sent(self) -> None:
        super()._notify_sent()
        for call in self.sent[self._seen :]:
            if call.method not in MESSAGE_METHODS or call.result is None:
                continue
            chat = int(call.chat_id or 0)
            waiting = self._waiters.get(chat)
            if waiting is not None and not waiting[0].done() and waiting[1](call):
                del self._waiters[chat]
                waiting[0].set_result(call)
        self._seen = len(self.sent)


@dataclass
class Run:
    """What one variant measured at one point."""

    label: str
    rate: float
    limiter: str
    digests: bool = False
    floor: str = ""  # the label of the run its ratios are taken against
    latencies: list[float] = field(default_factory=list)  # updates pushed in the window
    replies_in_window: int = 0
    window: float = 0.0
    failures: Counter[str] = field(default_factory=Counter)
    bot_cpu: float = 0.0
    fake_cpu: float = 0.0
    api_calls: int = 0
    updates_all: int = 0  # every update answered, warm-up and drain included
    entries: int = 0  # entries completed
    saved: int | None = None  # new observations in the database (havainto)
    lag: dict[str, float] = field(default_factory=dict)
    flood_rejections: int = 0
    digest: dict[str, Any] = field(default_factory=dict)
    load: str = ""

    @property
    def updates(self) -> int:
        return len(self.latencies)

    @property
    def achieved(self) -> float:
        return self.replies_in_window / self.window if self.window > 0 else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)

    @property
    def cpu_per_update(self) -> float:
        return self.bot_cpu / self.replies_in_window if self.replies_in_window else math.nan

    @property
    def fake_cpu_per_update(self) -> float:
        return self.fake_cpu / self.replies_in_window if self.replies_in_window else math.nan


def _buttons(call: SentCall) -> list[str]:
    markup = call.reply_markup or {}
    return [b.get("callback_data", "") for row in markup.get("inline_keyboard", []) for b in row]


def _value(data: str) -> str:
    return data.split(":", 3)[-1]


def choose(options: list[str], rng: random.Random) -> str:
    """The button a worker presses: Save, no escalation, else a weighted code."""
    values = {_value(d): d for d in options}
    if NEW_VALUE in values:  # "is this the same as #N?": no, a new observation
        return values[NEW_VALUE]
    if "save" in values:
        return values["save"]
    if "escalation.none" in values:
        return values["escalation.none"]
    codes = [d for v, d in values.items() if "." in v] or options
    weights = [THEME_WEIGHTS.get(_value(d), 1.0) for d in codes]
    return rng.choices(codes, weights)[0]


class Load:
    """Open-loop arrivals of entries; each entry is one worker walking the capture flow."""

    def __init__(self, fake: LoadFake, run: Run, users: list[int], think: float, seed: int):
        self.fake = fake
        self.run = run
        self.free: deque[int] = deque(users)
        self.think = think
        self.rng = random.Random(seed)
        self.window: tuple[float, float] = (math.inf, math.inf)
        self.tasks: set[asyncio.Task[None]] = set()
        self.replies: list[float] = []
        self.pushed: list[float] = []  # when each update of run.latencies was pushed

    def in_window(self, moment: float) -> bool:
        return self.window[0] <= moment < self.window[1]

    def moments(self) -> Iterator[float]:
        """Seconds from the start at which entries begin: ``rate / STEPS`` a second.

        A Poisson process conditioned on its count in each ``BLOCK_S`` block: the block's
        ``rate / STEPS * BLOCK_S`` arrivals (the fraction drawn) placed uniformly at
        random in it, which is what a Poisson process with that many arrivals in the
        block is. Bursts within a block are Poisson's; the rate over a block is the one
        asked for, not a seed's luck (seed 7's unconditioned draw offered 17 % more
        entries in the measured minute than the rate named)."""
        per_block = self.run.rate / STEPS * BLOCK_S
        start = 0.0
        while True:
            count = int(per_block) + (self.rng.random() < per_block - int(per_block))
            yield from sorted(start + self.rng.uniform(0.0, BLOCK_S) for _ in range(count))
            start += BLOCK_S

    async def arrivals(self, until: Callable[[], bool]) -> None:
        """Start entries at ``moments()`` until ``until()``."""
        began = time.monotonic()
        for moment in self.moments():
            if until():
                break
            delay = began + moment - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if until():
                break
            if not self.free:
                self.run.failures["no_free_worker"] += 1
                continue
            user = self.free.popleft()
            task = asyncio.create_task(self.entry(user, random.Random(self.rng.random())))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def entry(self, user: int, rng: random.Random) -> None:
        has_buttons: Callable[[SentCall], bool] = lambda c: bool(_buttons(c))  # noqa: E731
        anything: Callable[[SentCall], bool] = lambda c: True  # noqa: E731
        reply: SentCall | None = None
        try:
            # A text and six taps; one tap more when the bot asks whether the text is the
            # same as a recent entry ("me too"), which a worker logging a new one declines.
            for step in range(STEPS + 1):
                if step:
                    await asyncio.sleep(rng.expovariate(1 / self.think))
                pressed = None if reply is None else _buttons(reply)
                if pressed is not None and not pressed:
                    self.run.failures["no_buttons"] += 1
                    return
                data = None if pressed is None else choose(pressed, rng)
                last = data is not None and _value(data) == "save"
                future = self.fake.expect(user, anything if last else has_buttons)
                pushed = time.monotonic()
                if data is None:
                    self.fake.send_text(user, rng.choice(TEXTS))
                else:
                    assert reply is not None
                    self.fake.press(user, data, message_id=reply.message_id)
                try:
                    reply = await asyncio.wait_for(future, REPLY_TIMEOUT)
                except TimeoutError:
                    self.run.failures["timeout"] += 1
                    return
                self.run.updates_all += 1
                if self.in_window(pushed):
                    self.run.latencies.append(reply.time - pushed)
                    self.pushed.append(pushed)
                self.replies.append(reply.time)
                if last:
                    if self.run.saved is not None and "#" not in (reply.text or ""):
                        self.run.failures["not_saved"] += 1
                    else:
                        self.run.entries += 1
                    return
            self.run.failures["not_saved"] += 1  # no Save offered within the steps
        finally:
            self.free.append(user)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _teams(workers: int) -> list[dict[str, Any]]:
    count = max(1, (workers + WORKERS_PER_TEAM - 1) // WORKERS_PER_TEAM)
    return [
        {"id": f"team-{k:03d}", "name": f"Etsivät {k}", "region": f"region-{k % 22:02d}"}
        for k in range(count)
    ]


def _national_teams(seed: int) -> list[dict[str, Any]]:
    """The generated country's 500 teams, each with a Telegram group chat."""
    from bench.generate import country

    land = country(seed)
    return [
        {
            "id": team,
            "name": land.team_names[i],
            "region": land.team_regions[i],
            "language": land.team_languages[i],
            "chats": {"telegram": str(-1_001_000_000_000 - i)},
        }
        for i, team in enumerate(land.team_ids)
    ]


async def _enrol(settings: dict[str, Any], users: list[int]) -> None:
    from bot.service import Havainto
    from storage.db import Database

    config = _bot_config(settings)
    db = Database(config.database.url)
    service = Havainto(config, db)
    try:
        await service.prepare()
        teams = [t.id for t in config.teams]
        for i, user in enumerate(users):
            uid = str(user)
            await service.enrol_directly("telegram", uid, uid, teams[i % len(teams)])
    finally:
        await db.close()


async def record_walk(workdir: Path) -> list[dict[str, Any]]:
    """Havainto's reply to each step of one entry (text and keyboard), for the fair floor."""
    from bot.service import Havainto
    from flows.events import ChoiceIn, Incoming, Message, TextIn
    from storage.db import Database

    path = workdir / "walk.db"
    url = f"sqlite+aiosqlite:///{path}"
    settings: dict[str, Any] = {
        "database": {"url": url},
        "teams": _teams(1),
        "terminal": {"enabled": "no"},
    }
    await _enrol(settings, [FIRST_USER])
    db = Database(url)
    service = Havainto(_bot_config(settings), db)
    replies: list[dict[str, Any]] = []
    rng = random.Random(1)
    try:
        event: TextIn | ChoiceIn = TextIn(TEXTS[0])
        for step in range(STEPS):
            uid = str(FIRST_USER)
            out = await service.handle(Incoming("telegram", uid, uid, event, event_id=str(step)))
            messages = [o.reply for o in out if isinstance(o.reply, Message)]
            if len(messages) != 1:
                raise RuntimeError(f"step {step}: {len(messages)} replies; the floor expects one")
            message = messages[0]
            replies.append(
                {
                    "text": message.text,
                    "html": message.html,
                    "choices": [[(c.label, c.data) for c in row] for row in message.choices],
                }
            )
            if step < STEPS - 1:
                event = ChoiceIn(choose([c.data for c in message.flat_choices()], rng))
    finally:
        await service.close_outbox()  # its batch of sent answers, before the file goes
        await db.close()
        remove_sqlite(path)
    return replies


async def _count_saved(db_url: str) -> int:
    from sqlalchemy import func, select

    from storage.db import Database
    from storage.models import Observation

    db = Database(db_url)
    try:
        async with db.snapshot() as session:
            return int((await session.execute(select(func.count(Observation.id)))).scalar_one())
    finally:
        await db.close()


@dataclass
class Point:
    """How one variant is run at one rate."""

    rate: float
    limiter: str  # "on" or "off"
    duration: float
    warmup: float
    think: float
    seed: int = 7
    digests: dict[str, Any] | None = None  # week, month, teams, seed (digests mode)


class BotProcess:
    """The bot in a process of its own, driven through its stdin and stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path
        self.messages: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 180)
        if line.strip() != b"ready":
            raise RuntimeError(f"the bot did not start; see {self.log_path}")
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            what, _, payload = line.decode().partition(" ")
            if payload.strip():
                await self.messages.put((what, json.loads(payload)))

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")

    async def expect(self, what: str, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        kind, payload = await asyncio.wait_for(self.messages.get(), timeout)
        if kind != what:
            raise RuntimeError(f"expected {what!r} from the bot, got {kind!r}")
        return payload

    async def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 60)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()


async def run_variant(
    variant: Variant,
    point: Point,
    workdir: Path,
    db_url: str | None,
    walk: list[dict[str, Any]],
) -> Run:
    """Measure ``variant`` at ``point``; ``db_url`` is Havainto's (empty or a data set)."""
    label = variant.name + (" + digests" if point.digests else "")
    run = Run(label, point.rate, point.limiter, point.digests is not None, variant.floor)
    havainto = variant.kind == "havainto"
    if havainto:
        run.saved = 0
    fake = LoadFake(flood_limit=point.limiter == "on")
    await fake.start()
    # Enough people that arrivals never wait for one: entries last ~6 think times.
    pool = int(point.rate / STEPS * (STEPS * point.think + 10) * 2) + 20
    users = [FIRST_USER + i for i in range(pool)]
    saved_before = 0
    try:
        settings: dict[str, Any] = {
            "telegram": {
                "token": fake.token,
                "base_url": fake.base_url,
                "base_file_url": fake.base_file_url,
                "bot_username": fake.bot_username,
                "poll_timeout": 5,
            },
            "teams": _teams(pool),
            "terminal": {"enabled": "no"},
        }
        if point.limiter == "off":
            # The lifted budget in this process (_lift_rate_limit), not the shared one.
            settings["telegram"]["shared_budget"] = False
        if point.digests is not None:
            settings["teams"] = _national_teams(point.digests["seed"])
            settings["leadership"] = [
                {
                    "id": "johto",
                    "name": "Johtoryhmä",
                    "region": "",
                    "chats": {"telegram": str(LEADERSHIP_CHAT)},
                }
            ]
        if havainto:
            assert db_url is not None
            settings["database"] = {"url": db_url}
            await _enrol(settings, users)
            saved_before = await _count_saved(db_url)
        else:
            settings["floor_replies"] = walk
        for user in users:
            fake.user(user, first_name="Työntekijä", language_code="fi")
        log_path = workdir / f"bot-{variant.name}-{point.rate:g}-{point.limiter}.log"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.capture_load",
            "serve",
            variant.name,
            "--settings",
            json.dumps(settings),
            "--rate-limit",
            point.limiter,
            "--log",
            str(log_path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        bot = BotProcess(proc, log_path)
        try:
            await bot.wait_ready()
            await asyncio.wait_for(fake.polled.wait(), 60)
            await _measure(bot, fake, run, point, users)
        finally:
            await bot.close()
    finally:
        await fake.stop()
    run.failures.update(f"api_{c.status}" for c in fake.failed if c.status != 429)
    run.flood_rejections = sum(fake.flood_rejections.values())
    errors = [line for line in log_path.read_text().splitlines() if " ERROR " in line]
    if errors:
        run.failures["bot_errors_logged"] += len(errors)
    if havainto:
        assert db_url is not None
        run.saved = await _count_saved(db_url) - saved_before
        if run.saved != run.entries:
            run.failures["saved_mismatch"] += 1
    return run


async def _start_profiler(
    bot: BotProcess, run: Run, point: Point
) -> asyncio.subprocess.Process | None:
    """``HAVAINTO_BENCH_PROFILE=<dir>``: py-spy samples the bot through the measured window
    (collapsed stacks, ``<dir>/<bot>-<rate>-<limiter>.txt``; ``bench/profile_summary.py``
    says where the time per update goes). Needs ``py-spy`` and ptrace rights."""
    folder = os.environ.get("HAVAINTO_BENCH_PROFILE")
    if not folder:
        return None
    await asyncio.to_thread(Path(folder).mkdir, parents=True, exist_ok=True)
    label = run.label.replace(" + ", "+")
    name = f"{label}-{point.rate:g}-{point.limiter}.txt"
    profiler = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("py-spy")),
        "record",
        "--pid",
        str(bot.proc.pid),
        "--rate",
        "250",
        "--format",
        "raw",
        "--output",
        str(Path(folder) / name),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(1.0)  # attached before the window opens
    return profiler


async def _measure(bot: BotProcess, fake: LoadFake, run: Run, point: Point, users: list[int]):
    load = Load(fake, run, users, point.think, point.seed)
    stopped = False
    arrivals = asyncio.create_task(load.arrivals(lambda: stopped))
    await asyncio.sleep(point.warmup)
    bot.send("lag")
    await bot.expect("lag", 30)  # reset
    calls_before = len(fake.sent)
    profiler = await _start_profiler(bot, run, point)
    cpu_before = _cpu_seconds(bot.proc.pid)
    fake_before = time.process_time()
    run.load = load_average()
    start = time.monotonic()
    load.window = (start, math.inf)
    digest: dict[str, Any] | None = None
    if point.digests is not None:
        d = point.digests
        bot.send(f"digests {d['week']} {d['month']} {d['teams']}")
        digest = await bot.expect("digests", 3600)
        end = max(time.monotonic(), start + point.duration)
        await asyncio.sleep(end - time.monotonic())
    else:
        await asyncio.sleep(point.duration)
        end = time.monotonic()
    load.window = (start, end)
    run.window = end - start
    run.bot_cpu = _cpu_seconds(bot.proc.pid) - cpu_before
    run.fake_cpu = time.process_time() - fake_before
    run.api_calls = len(fake.sent) - calls_before
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)  # py-spy writes what it sampled and ends
        await profiler.wait()
    bot.send("lag")
    run.lag = await bot.expect("lag", 30)
    stopped = True
    await arrivals
    # Every entry in progress finishes (each step answered, each entry saved).
    while load.tasks:
        await asyncio.gather(*list(load.tasks))
    await asyncio.sleep(0.3)  # the last keyboard edits land
    run.replies_in_window = sum(1 for moment in load.replies if start <= moment < end)
    if digest is not None:
        run.digest = digest


# --- the report --------------------------------------------------------------------------


def _ms_or_dash(value: float | None) -> str:
    return "-" if value is None else ms(value)


def report(runs: list[Run], commit: str) -> None:
    table = Table(
        f"Capture, open loop (commit {commit})",
        (
            "rate/s",
            "limiter",
            "bot",
            "updates",
            "achieved/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "loop lag p99/max ms",
            "bot CPU ms/update",
            "floor",
            "vs floor",
            "fake CPU ms/update",
            "API calls/update",
            "429s",
            "saved",
            "failures",
            "load avg",
        ),
    )
    floors = {(r.label, r.rate, r.limiter): r for r in runs}
    for run in runs:
        floor = floors.get((run.floor, run.rate, run.limiter))
        lag = run.lag
        table.add(
            f"{run.rate:g}",
            run.limiter,
            run.label,
            run.updates,
            f"{run.achieved:.1f}",
            ms(run.p(50)),
            ms(run.p(95)),
            ms(run.p(99)),
            ms(max(run.latencies, default=math.nan)),
            f"{ms(lag.get('p99', math.nan))} / {ms(lag.get('max', math.nan))}",
            f"{run.cpu_per_update * 1000:.2f}",
            run.floor or "-",
            "-"
            if not run.floor
            else "-"
            if floor is None
            else ratio(run.cpu_per_update, floor.cpu_per_update),
            f"{run.fake_cpu_per_update * 1000:.2f}",
            f"{run.api_calls / max(run.replies_in_window, 1):.2f}",
            run.flood_rejections,
            "-" if run.saved is None else f"{run.saved}/{run.entries}",
            ", ".join(f"{k}={v}" for k, v in sorted(run.failures.items())) or "none",
            run.load,
        )
    table.print()
    print(
        "Latency: push of an update into the fake Bot API to the bot's reply arriving there, for "
        "every update pushed in the measured window. Achieved: replies in the window per second. "
        "Bot CPU: the bot process's user+system time in the window per reply; fake CPU: the "
        "driver's (fake server and simulated workers). Loop lag: how late a 20 ms sleep in the "
        "bot woke up. 429s: messages the fake refused for Telegram's flood limits (PTB's "
        "limiter retries them). Saved: new observations / entries completed.\n"
    )
    with_digests = [r for r in runs if r.digest]
    if with_digests:
        digests = Table(
            f"Digests built and sent during the capture load (commit {commit})",
            (
                "rate/s",
                "bot",
                "weekly digests sent",
                "all weekly, s",
                "whole-org. monthly, s",
                "render weekly p50/max ms (queue incl.)",
                "render monthly ms",
                "results",
            ),
        )
        for run in with_digests:
            d = run.digest
            weekly = d["render_weekly"]
            digests.add(
                f"{run.rate:g}",
                run.label,
                len(weekly),
                f"{d['weekly_s']:.1f}",
                f"{d['monthly_s']:.1f}",
                f"{ms(percentile(weekly, 50))} / {ms(max(weekly, default=math.nan))}",
                ", ".join(ms(t) for t in d["render_monthly"]) or "-",
                "+".join(f"{k}:{v}" for k, v in sorted(d["results"].items())),
            )
        digests.print()
    _targets(runs, floors, commit)


def _targets(runs: list[Run], floors: dict[tuple[str, float, str], Run], commit: str) -> None:
    targets = Table(f"Targets (commit {commit})", ("target", "bot", "measured", "ratio", "verdict"))
    for run in runs:
        if not run.floor or run.label == "bare":
            continue
        floor = floors.get((run.floor, run.rate, run.limiter))
        if run.rate == COUNTY_PEAK and run.limiter == "on":
            where = "while digests run" if run.digests else "capture alone"
            targets.add(
                f"20/s, limiter on, {where}: p50 <= 10 ms, p99 <= 50 ms",
                run.label,
                f"p50 {ms(run.p(50))} ms, p99 {ms(run.p(99))} ms",
                "-",
                verdict(run.p(50) <= TARGET_P50 and run.p(99) <= TARGET_P99),
            )
        if run.rate == HEADROOM_RATE and run.limiter == "off":
            targets.add(
                "60/s, limiter off: p99 <= 100 ms",
                run.label,
                f"{ms(run.p(99))} ms",
                "-",
                verdict(run.p(99) <= TARGET_HEADROOM_P99),
            )
        if floor is not None and not run.digests:
            cpu = run.cpu_per_update / floor.cpu_per_update
            targets.add(
                f"bot CPU per update <= 3x the fair floor ({run.floor}; {run.rate:g}/s, "
                f"limiter {run.limiter})",
                run.label,
                f"{run.cpu_per_update * 1000:.2f} ms",
                f"{cpu:.2f}x",
                verdict(cpu <= CPU_RATIO),
            )
    labels = dict.fromkeys(r.label for r in runs if r.limiter == "off" and not r.digests)
    for label in labels:
        if label == "bare" or label.startswith("floor"):
            continue
        rates = sorted((r.rate, r) for r in runs if r.label == label and r.limiter == "off")
        knee = next((rate for rate, r in rates if r.p(99) > KNEE_P99), None)
        highest = rates[-1][0] if rates else math.nan
        measured = (
            f"p99 > 250 ms first at {knee:g}/s"
            if knee is not None
            else f"p99 <= 250 ms up to {highest:g}/s"
        )
        ok = (knee is None and highest >= KNEE_MIN_RATE) or (knee is not None and knee >= 100)
        targets.add(
            "knee (p99 > 250 ms) at >= 100/s, limiter off",
            label,
            measured,
            "-",
            verdict(ok),
        )
    targets.print()


# --- the driver --------------------------------------------------------------------------


async def _digest_source(rows: int, seed: int, workdir: Path, smoke: bool) -> Path:
    """An SQLite file with the national data set, to copy for each run."""
    from bench.generate import ensure_dataset, generate
    from storage.db import normalise_url

    if smoke:
        path = workdir / f"national-{rows}.db"
        await generate(f"sqlite:///{path}", rows, seed)
        return path
    url = normalise_url(await ensure_dataset("sqlite", rows, seed))
    return Path(url.split(":///", 1)[1])


async def bench(args: argparse.Namespace) -> list[Run]:
    from bench.digests_scale import periods
    from bench.generate import DEFAULT_END

    runs: list[Run] = []
    variants = [VARIANTS[name] for name in args.variants]
    with tempfile.TemporaryDirectory(prefix="havainto-bench-") as tmp:
        workdir = Path(tmp)
        walk = await record_walk(workdir)
        source: Path | None = None
        if args.digests:
            source = await _digest_source(args.digest_rows, 1, workdir, args.digest_rows < 100_000)
        for rate in args.rates:
            base = Point(rate, args.rate_limit, args.duration, args.warmup, args.think)
            for variant in variants:
                if variant.kind != "havainto":
                    runs.append(await run_variant(variant, base, workdir, None, walk))
                    continue
                async with fresh_database(args.backend, workdir, args.pg_url) as url:
                    runs.append(await run_variant(variant, base, workdir, url, walk))
            if not args.digests:
                continue
            assert source is not None
            week, month = periods(DEFAULT_END)
            with_digests = Point(
                rate,
                args.rate_limit,
                args.duration,
                args.warmup,
                args.think,
                digests={"week": week, "month": month, "teams": args.digest_teams, "seed": 1},
            )
            for variant in variants:
                if variant.kind != "havainto":
                    continue
                copy = workdir / "national-copy.db"
                await asyncio.to_thread(shutil.copyfile, source, copy)
                try:
                    url = f"sqlite+aiosqlite:///{copy}"
                    runs.append(await run_variant(variant, with_digests, workdir, url, walk))
                finally:
                    remove_sqlite(copy)
        if args.keep_logs:
            from bench.common import DATA_DIR

            DATA_DIR.mkdir(exist_ok=True)
            for log in await asyncio.to_thread(lambda: list(workdir.glob("*.log"))):
                shutil.copyfile(log, DATA_DIR / log.name)
    return runs


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        serve_main(argv[1:])
        return
    parser = argparse.ArgumentParser(
        prog="python -m bench.capture_load",
        description="Open-loop capture load (Poisson arrivals, think time) through the real "
        "bot and the fake Bot API, against a fair-floor PTB bot measured in the same run.",
    )
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[20.0], help="updates per second (each point)"
    )
    parser.add_argument(
        "--rate-limit",
        choices=("on", "off"),
        default="on",
        help="on (production): PTB's limiter at Telegram's limits and a fake that answers 429 "
        "past them; off: both lifted",
    )
    parser.add_argument(
        "--duration", type=float, default=60.0, help="measured seconds per point (default 60)"
    )
    parser.add_argument(
        "--warmup", type=float, default=15.0, help="seconds of load before measuring (15)"
    )
    parser.add_argument("--think", type=float, default=2.0, help="mean think time, s (2)")
    parser.add_argument(
        "--variants", nargs="+", choices=tuple(VARIANTS), default=list(DEFAULT_VARIANTS)
    )
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server (admin URL)")
    parser.add_argument(
        "--digests",
        action="store_true",
        help="also measure each havainto variant while the weekly digests of all teams and "
        "the whole organisation's monthly summary are built and sent",
    )
    parser.add_argument(
        "--digest-rows",
        type=int,
        default=1_000_000,
        help="observations in the national data set (bench.generate; kept in bench/data/)",
    )
    parser.add_argument(
        "--digest-teams", type=int, default=0, help="weekly digests of this many teams (0: all)"
    )
    parser.add_argument("--keep-logs", action="store_true", help="copy the bot logs to bench/data/")
    args = parser.parse_args(argv)
    command = "python -m bench.capture_load " + " ".join(argv)
    commit = git_commit()
    print_header("Capture, open loop", command.strip())
    runs = asyncio.run(bench(args))
    report(runs, commit)


if __name__ == "__main__":
    main()
