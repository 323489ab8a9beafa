"""Capture under load: N workers complete the full flow at once through the real bot.

    python -m bench.capture_load --workers 100 500 1000 --backends sqlite postgresql

For every N this runs, one after the other:

* **baseline (bare PTB)**: a bare PTB bot, ``ApplicationBuilder`` with PTB's
  defaults (its httpx request, no rate limiter) and concurrent updates on, with
  one handler that answers every update with one ``sendMessage`` (carrying one
  button, so the simulated people have something to press) and stores nothing.
  The ratios are taken against this one;
* **baseline (our PTB setup)**: the same handler in the very ``Application``
  our transport builds (``bot.transports.telegram.build_application``: the aiohttp
  request of ``bot.transports.telegram_http``, pool size, timeouts, rate limiter): what
  PTB alone costs on our HTTP layer, for comparison;
* **havainto** on each backend: the real runtime (``bot.runtime.build_runtime``,
  the Telegram transport with long polling, the service, the real database).

The bot runs in a process of its own, the fake Bot API server
(``tests.support.fake_telegram.FakeTelegram``, real HTTP on 127.0.0.1) and the
simulated workers in this one, so the fake does not steal the bot's CPU. The N
workers are enrolled first straight through ``Havainto.enrol_directly`` (the
same code path as ``/start CODE`` minus the invite round trip, which is not
what is measured). Then all N start at the same moment and each completes the
quick capture -- a text and six taps: theme, group, signal, how common,
escalation (always "none", so no leadership notice is sent), Save -- sending
each step as soon as the previous reply has arrived, like a person with no
thinking time. Each worker's free text is a real-looking sentence.

Latency is the time from pushing an update into the fake to the bot's reply
(``sendMessage``, or ``editMessageText`` when the next question replaces the
pressed one) arriving at the fake (both ``time.monotonic()`` in this
process). Throughput is all updates over the time from the first push to the
last reply. Bot CPU is the bot process's user+system time per update.

``--rate-limit production`` keeps PTB's ``AIORateLimiter`` at Telegram's
30 messages per second for the whole bot, as ``bot.transports.telegram`` configures it;
``--rate-limit off`` (default) lifts it so the figures measure our code and
not Telegram's flood limit. See ``bench/RESULTS.md`` for what that means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    DATA_DIR,
    DEFAULT_PG_URL,
    Table,
    fresh_database,
    load_average,
    ms,
    percentile,
    print_header,
    ratio,
    verdict,
)
from flows.events import Message
from tests.support.fake_telegram import MESSAGE_METHODS, FakeTelegram, SentCall

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:BENCH"
FIRST_USER = 10_000_001
WORKERS_PER_TEAM = 20
REPLY_TIMEOUT = 60.0
TEXTS = (
    "Nuori aikuinen yöpyi rappukäytävässä, hätämajoitusta ei löytynyt.",
    "Perhe odottaa toimeentulotukipäätöstä jo viidettä viikkoa.",
    "Päihdehoitoon on kuuden viikon jono, asiakas ei jaksa odottaa.",
    "Iäkäs mies ei saa aikaa sosiaalityöntekijälle, puhelinpalvelu ei vastaa.",
    "Nuori keskeytti opinnot eikä kukaan ottanut yhteyttä.",
)
THEME_WEIGHTS = {"theme.housing": 5.0, "theme.substance_mental": 3.0, "theme.income": 2.0}


# --- the bot process ---------------------------------------------------------------------


def _bot_config(settings: dict[str, Any]) -> Any:
    from bot.config import load_config

    return load_config(None, **settings)


def _lift_rate_limit() -> None:
    """Let the bot send as fast as the fake answers (Telegram's flood limit lifted)."""
    from telegram.ext import AIORateLimiter

    import bot.transports.telegram

    def unlimited(**kwargs: Any) -> AIORateLimiter:
        return AIORateLimiter(overall_max_rate=0, group_max_rate=0, **kwargs)

    setattr(bot.transports.telegram, "AIORateLimiter", unlimited)  # noqa: B010


BASELINES = {"baseline": "baseline (bare PTB)", "baseline-ours": "baseline (our PTB setup)"}


async def _serve(
    mode: str, settings: dict[str, Any], rate_limit: str, profile: str | None = None
) -> None:
    """Run one bot until stdin closes; print ``ready`` once it polls."""
    if rate_limit == "off":
        _lift_rate_limit()
    config = _bot_config(settings)
    stopper: Callable[[], Any]
    if mode in BASELINES:
        from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
        from telegram.ext import AIORateLimiter, ApplicationBuilder, ContextTypes, TypeHandler

        from bot.transports.telegram import build_application

        if mode == "baseline":
            builder = (
                ApplicationBuilder()
                .token(config.telegram.token)
                .base_url(config.telegram.base_url)
                .base_file_url(config.telegram.base_file_url)
                .concurrent_updates(True)
            )
            if rate_limit == "production":
                builder = builder.rate_limiter(AIORateLimiter())
            app = builder.build()
        else:
            app = build_application(config.telegram)
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("OK", callback_data="ok")]])

        async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            chat = update.effective_chat
            if chat is not None:
                await context.bot.send_message(chat.id, "Kiitos!", reply_markup=markup)

        app.add_handler(TypeHandler(Update, answer))
        await app.initialize()
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=config.telegram.poll_timeout)

        async def stop_baseline() -> None:
            assert app.updater is not None
            await app.updater.stop()
            await app.stop()
            await app.shutdown()

        stopper = stop_baseline
    else:
        from bot.runtime import build_runtime

        runtime = await build_runtime(config, terminal=False)
        for transport in runtime.transports:
            await transport.start()
        stopper = runtime.stop
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()  # the load only, not the start
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # the driver closes stdin to stop us
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    await stopper()


def serve_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.capture_load serve")
    parser.add_argument("mode", choices=(*BASELINES, "havainto"))
    parser.add_argument("--settings", required=True, help="config overrides as JSON")
    parser.add_argument("--rate-limit", choices=("production", "off"), default="off")
    parser.add_argument("--log", required=True)
    parser.add_argument("--profile", help="write cProfile statistics of the bot here")
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
    asyncio.run(_serve(args.mode, json.loads(args.settings), args.rate_limit, args.profile))


# --- the fake, the workers and the measurement -------------------------------------------


class LoadFake(FakeTelegram):
    """The fake Bot API server, telling each waiting worker about its chat's next message."""

    def __init__(self) -> None:
        super().__init__(token=TOKEN)
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
    """What one scenario measured."""

    label: str
    workers: int
    latencies: list[float] = field(default_factory=list)
    first_push: float = 0.0
    last_reply: float = 0.0
    failures: Counter[str] = field(default_factory=Counter)
    bot_cpu: float = 0.0
    driver_cpu: float = 0.0  # the fake server and the simulated workers
    saved: int | None = None
    api_calls: int = 0
    load: str = ""

    @property
    def updates(self) -> int:
        return len(self.latencies)

    @property
    def seconds(self) -> float:
        return self.last_reply - self.first_push

    @property
    def throughput(self) -> float:
        return self.updates / self.seconds if self.seconds > 0 else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)


def _buttons(call: SentCall) -> list[str]:
    markup = call.reply_markup or {}
    return [b.get("callback_data", "") for row in markup.get("inline_keyboard", []) for b in row]


def _value(data: str) -> str:
    return data.split(":", 3)[-1]


def choose(call: SentCall, rng: random.Random) -> str | None:
    """The button a worker presses on the bot's question (None: no buttons)."""
    options = _buttons(call)
    if not options:
        return None
    return _choose_data(options, rng)


def _choose_data(options: list[str], rng: random.Random) -> str:
    values = {_value(d): d for d in options}
    if "save" in values:
        return values["save"]
    if "escalation.none" in values:
        return values["escalation.none"]
    codes = [d for v, d in values.items() if "." in v]
    if not codes:
        return options[0]  # the baseline's single button
    weights = [THEME_WEIGHTS.get(_value(d), 1.0) for d in codes]
    return rng.choices(codes, weights)[0]


async def play_worker(
    fake: LoadFake, user_id: int, run: Run, start: asyncio.Event, rng: random.Random
) -> None:
    """One person: a text, then a tap on each question until the bot has nothing to ask."""
    has_buttons: Callable[[SentCall], bool] = lambda c: bool(_buttons(c))  # noqa: E731
    anything: Callable[[SentCall], bool] = lambda c: True  # noqa: E731
    await start.wait()
    steps = 7
    reply: SentCall | None = None
    for step in range(steps):
        last = step == steps - 1
        future = fake.expect(user_id, anything if last else has_buttons)
        pushed = time.monotonic()
        if reply is None:
            fake.send_text(user_id, rng.choice(TEXTS))
        else:
            data = choose(reply, rng)
            if data is None:
                run.failures["no_buttons"] += 1
                return
            fake.press(user_id, data, message_id=reply.message_id)
        run.first_push = min(run.first_push, pushed) if run.first_push else pushed
        try:
            reply = await asyncio.wait_for(future, REPLY_TIMEOUT)
        except TimeoutError:
            run.failures["timeout"] += 1
            return
        run.latencies.append(reply.time - pushed)
        run.last_reply = max(run.last_reply, reply.time)
        if last and run.saved is not None and "#" not in (reply.text or ""):
            run.failures["not_saved"] += 1


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


async def _enrol(settings: dict[str, Any], workers: int) -> None:
    from bot.service import Havainto
    from storage.db import Database

    config = _bot_config(settings)
    db = Database(config.database.url)
    service = Havainto(config, db)
    try:
        await service.prepare()
        teams = [t.id for t in config.teams]
        for i in range(workers):
            uid = str(FIRST_USER + i)
            await service.enrol_directly("telegram", uid, uid, teams[i // WORKERS_PER_TEAM])
    finally:
        await db.close()


async def run_service_only(backend: str, workers: int, db_url: str, seed: int = 7) -> Run:
    """The same N workers and flow straight through ``Havainto.handle``: no Telegram.

    What our own code (service, flow, storage) costs per event, without PTB, HTTP or
    the fake; it runs in this process, so its CPU includes the database driver's
    threads. Latency is the time ``handle`` takes, queueing included.
    """
    from bot.service import Havainto
    from flows.events import ChoiceIn, Incoming, TextIn
    from storage.db import Database

    settings: dict[str, Any] = {
        "database": {"url": db_url},
        "teams": _teams(workers),
        "terminal": {"enabled": "no"},
    }
    await _enrol(settings, workers)
    config = _bot_config(settings)
    db = Database(config.database.url)
    service = Havainto(config, db)
    run = Run(f"service only ({backend})", workers, saved=0)
    event_ids = iter(range(1, 10**9))
    rng = random.Random(seed)

    async def person(user_id: str, rng: random.Random) -> None:
        event: TextIn | ChoiceIn = TextIn(rng.choice(TEXTS))
        for step in range(7):
            started = time.perf_counter()
            out = await service.handle(
                Incoming("telegram", user_id, user_id, event, event_id=str(next(event_ids)))
            )
            run.latencies.append(time.perf_counter() - started)
            run.first_push = min(run.first_push or started, started)
            run.last_reply = max(run.last_reply, time.perf_counter())
            replies = [o.reply for o in out if isinstance(o.reply, Message)]
            if step == 6:
                break
            if not replies or not replies[-1].choices:
                run.failures["no_buttons"] += 1
                return
            data = _choose_data([c.data for c in replies[-1].flat_choices()], rng)
            event = ChoiceIn(data)

    try:
        run.load = load_average()
        cpu_before = time.process_time()
        await asyncio.gather(
            *(person(str(FIRST_USER + i), random.Random(rng.random())) for i in range(workers))
        )
        run.bot_cpu = time.process_time() - cpu_before
    finally:
        await db.close()
    run.saved = await _count_saved(db_url)
    return run


async def _count_saved(db_url: str) -> int:
    from sqlalchemy import func, select

    from storage.db import Database
    from storage.models import Observation

    db = Database(db_url)
    try:
        async with db.transaction() as session:
            return int((await session.execute(select(func.count(Observation.id)))).scalar_one())
    finally:
        await db.close()


async def run_scenario(
    mode: str,
    workers: int,
    db_url: str | None,
    rate_limit: str,
    workdir: Path,
    seed: int = 7,
    profile: Path | None = None,
) -> Run:
    label = BASELINES[mode] if db_url is None else f"havainto ({mode})"
    run = Run(label, workers, saved=None if db_url is None else 0)
    fake = LoadFake()
    await fake.start()
    try:
        settings: dict[str, Any] = {
            "telegram": {
                "token": fake.token,
                "base_url": fake.base_url,
                "base_file_url": fake.base_file_url,
                "bot_username": fake.bot_username,
                "poll_timeout": 5,
            },
            "teams": _teams(workers),
            "terminal": {"enabled": "no"},
        }
        if db_url is not None:
            settings["database"] = {"url": db_url}
            await _enrol(settings, workers)
        for i in range(workers):
            fake.user(FIRST_USER + i, first_name="Työntekijä", language_code="fi")
        log_path = workdir / f"bot-{mode}-{workers}.log"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.capture_load",
            "serve",
            mode if db_url is None else "havainto",
            "--settings",
            json.dumps(settings),
            "--rate-limit",
            rate_limit,
            "--log",
            str(log_path),
            *(["--profile", str(profile)] if profile else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        try:
            assert proc.stdout is not None and proc.stdin is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 120)
            if line.strip() != b"ready":
                raise RuntimeError(f"the bot did not start; see {log_path}")
            await asyncio.wait_for(fake.polled.wait(), 60)
            await asyncio.sleep(0.3)
            mark = len(fake.sent)
            cpu_before = _cpu_seconds(proc.pid)
            driver_before = time.process_time()
            run.load = load_average()
            start = asyncio.Event()
            rng = random.Random(seed)
            players = [
                asyncio.create_task(
                    play_worker(fake, FIRST_USER + i, run, start, random.Random(rng.random()))
                )
                for i in range(workers)
            ]
            await asyncio.sleep(0)
            start.set()
            await asyncio.gather(*players)
            await asyncio.sleep(0.3)  # let the last keyboard edits land
            run.bot_cpu = _cpu_seconds(proc.pid) - cpu_before
            run.driver_cpu = time.process_time() - driver_before
            run.api_calls = len(fake.sent) - mark
            run.failures.update(f"api_{c.status}" for c in fake.failed)
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    finally:
        await fake.stop()
    errors = _logged_errors(log_path)
    if errors:
        run.failures["bot_errors_logged"] += len(errors)
    if db_url is not None:
        run.saved = await _count_saved(db_url)
    return run


def _logged_errors(log_path: Path) -> list[str]:
    return [line for line in log_path.read_text().splitlines() if " ERROR " in line]


# --- the report --------------------------------------------------------------------------


def report(runs: list[tuple[Run, Run]], rate_limit: str) -> None:
    table = Table(
        f"Capture under load (rate limit {rate_limit})",
        (
            "workers",
            "bot",
            "updates",
            "updates/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "bot CPU ms/update",
            "fake CPU ms/update",
            "API calls/update",
            "p50 vs baseline",
            "throughput vs baseline",
            "saved",
            "failures",
            "load avg",
        ),
    )
    for run, baseline in runs:
        is_base = run is baseline
        in_process = run.label.startswith("service only")
        table.add(
            run.workers,
            run.label,
            run.updates,
            f"{run.throughput:.0f}",
            ms(run.p(50)),
            ms(run.p(95)),
            ms(run.p(99)),
            ms(max(run.latencies, default=float("nan"))),
            f"{run.bot_cpu / max(run.updates, 1) * 1000:.2f}",
            "-" if in_process else f"{run.driver_cpu / max(run.updates, 1) * 1000:.2f}",
            "-" if in_process else f"{run.api_calls / max(run.updates, 1):.2f}",
            "1.00x" if is_base else "-" if in_process else ratio(run.p(50), baseline.p(50)),
            "1.00x"
            if is_base
            else "-"
            if in_process
            else ratio(run.throughput, baseline.throughput),
            "-" if run.saved is None else f"{run.saved}/{run.workers}",
            ", ".join(f"{k}={v}" for k, v in sorted(run.failures.items())) or "none",
            run.load,
        )
    table.print()
    print(
        "Latency: push of an update to the bot's reply at the fake (service only: the time "
        "`Havainto.handle` takes). Bot CPU: user+system time of the bot process per update "
        "(service only: of this process, database driver threads included). The service-only "
        "rows drive the same flow straight through `Havainto.handle`, without Telegram.\n"
    )
    targets = Table(
        "Targets",
        ("target", "measured", "verdict"),
    )
    ours = {run.workers: run for run, _ in runs if run.label == BASELINES["baseline-ours"]}
    for run, baseline in runs:
        if run.label in BASELINES.values() or run.label.startswith("service only"):
            continue
        where = f"{run.label}, {run.workers} workers"
        targets.add(
            f"p50 <= 2x baseline ({where})",
            ratio(run.p(50), baseline.p(50)),
            verdict(run.p(50) <= 2 * baseline.p(50)),
        )
        if run.workers in ours:
            targets.add(
                f"(for comparison) p50 vs our PTB setup's baseline ({where})",
                ratio(run.p(50), ours[run.workers].p(50)),
                "-",
            )
        if run.workers == 500:
            targets.add(f"p99 < 100 ms ({where})", ms(run.p(99)) + " ms", verdict(run.p(99) < 0.1))
        if "sqlite" in run.label:
            targets.add(
                f">= 300 updates/s on SQLite ({where})",
                f"{run.throughput:.0f}/s",
                verdict(run.throughput >= 300),
            )
    targets.print()


async def bench(
    workers: list[int],
    backends: list[str],
    rate_limit: str,
    pg_url: str,
    keep_logs: bool,
    profile: bool = False,
) -> list[tuple[Run, Run]]:
    results: list[tuple[Run, Run]] = []
    with tempfile.TemporaryDirectory(prefix="havainto-bench-") as tmp:
        workdir = Path(tmp)
        for n in workers:
            baseline = await run_scenario(
                "baseline",
                n,
                None,
                rate_limit,
                workdir,
                profile=_profile_path(profile, "baseline", n),
            )
            results.append((baseline, baseline))
            ours = await run_scenario(
                "baseline-ours",
                n,
                None,
                rate_limit,
                workdir,
                profile=_profile_path(profile, "baseline-ours", n),
            )
            results.append((ours, baseline))
            for backend in backends:
                async with fresh_database(backend, workdir, pg_url) as url:
                    run = await run_scenario(
                        backend,
                        n,
                        url,
                        rate_limit,
                        workdir,
                        profile=_profile_path(profile, backend, n),
                    )
                    results.append((run, baseline))
                async with fresh_database(backend, workdir, pg_url) as url:
                    results.append((await run_service_only(backend, n, url), baseline))
        if keep_logs:
            _copy_logs(workdir)
    return results


def _copy_logs(workdir: Path) -> None:
    DATA_DIR.mkdir(exist_ok=True)
    for log in workdir.glob("*.log"):
        (DATA_DIR / log.name).write_bytes(log.read_bytes())


def _profile_path(enabled: bool, mode: str, workers: int) -> Path | None:
    if not enabled:
        return None
    path = DATA_DIR / f"profile-{mode}-{workers}.pstats"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        serve_main(argv[1:])
        return
    parser = argparse.ArgumentParser(
        prog="python -m bench.capture_load",
        description="N simulated workers complete the capture flow at once through the real "
        "PTB Application, the fake Bot API server and the real storage; a bare PTB bot is "
        "measured in the same run as the baseline.",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument(
        "--backends", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--rate-limit",
        choices=("off", "production"),
        default="off",
        help="off: lift Telegram's 30 msg/s flood limit (default); production: keep it",
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server (admin URL)")
    parser.add_argument("--keep-logs", action="store_true", help="copy the bot logs to bench/data/")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run each bot under cProfile; statistics go to bench/data/profile-*.pstats",
    )
    args = parser.parse_args(argv)
    command = "python -m bench.capture_load " + " ".join(argv)
    print_header("Capture under load", command.strip())
    results = asyncio.run(
        bench(
            args.workers, args.backends, args.rate_limit, args.pg_url, args.keep_logs, args.profile
        )
    )
    report(results, args.rate_limit)


if __name__ == "__main__":
    main()
