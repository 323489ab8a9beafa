"""Two instances on PostgreSQL behind the Telegram webhook, one of them killed mid-run.

    python -m bench.webhook_pair --rate 20 --duration 60

The production shape of `README.md` ("Telegram by webhook", "Two instances"): two bot
processes (`python -m bench.capture_load serve havainto`, i.e. `build_runtime` +
`Runtime.start` as `havainto run` configures them) on one PostgreSQL database, each
serving the webhook on its own port, with the production rate limiter on (the send
budget shared in PostgreSQL, as `havainto run` sets it there). A load balancer in
this process forwards every update the simulated workers make (the open-loop load of
`bench.capture_load`: Poisson arrivals of entries, a text and six taps each, an
exponential think time between steps) to the instances in turn and, as Telegram
does, sends it again -- to the other instance -- until one answers 200.

Half-way through the measured window one instance is killed (SIGKILL). Printed:
latency p50/p95/p99/max over the whole window and without the 5 s after the kill,
how the updates were shared, the updates sent again after the kill, and the checks:

* **no update handled twice**: no chat got the same message twice in a row (a
  second handling of an update repeats its reply), and the observations in the
  database are exactly the entries the workers saved;
* **no entry lost**: every entry that was started was saved, every step answered.

Targets (issue 14, point 6): p99 <= 100 ms at 20 updates/s; none handled twice; none
lost when an instance is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench.capture_load import (
    FIRST_USER,
    ROOT,
    STEPS,
    BotProcess,
    Load,
    LoadFake,
    Run,
    _count_saved,
    _enrol,
    _teams,
)
from bench.common import (
    DEFAULT_PG_URL,
    Table,
    fresh_database,
    git_commit,
    load_average,
    ms,
    percentile,
    print_header,
    verdict,
)
from tests.support.fake_telegram import MESSAGE_METHODS, SentCall

WEBHOOK_URL = "https://havainto.bench.invalid/telegram/webhook"
WEBHOOK_PATH = "/telegram/webhook"
SECRET = "bench-webhook-secret-0123456789"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
AFTER_KILL = 5.0  # seconds after the kill left out of the "steady" percentiles
TARGET_P99 = 0.100
RESEND_FOR = 60.0  # how long an update is offered again before it counts as lost


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Balancer:
    """Round-robin over the instances' webhook ports; an update that gets no 200 is
    offered to the next instance until one takes it, as Telegram sends it again."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.turn = 0
        self.served: Counter[int] = Counter()  # port -> updates it answered 200
        self.resent = 0  # updates offered more than once
        self.lost = 0
        self.down: dict[int, float] = {}  # port -> until when it is skipped (health check)
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()

    def _next(self) -> int:
        now = time.monotonic()
        for _ in range(len(self.ports)):
            port = self.ports[self.turn % len(self.ports)]
            self.turn += 1
            if self.down.get(port, 0.0) <= now:
                return port
        return self.ports[self.turn % len(self.ports)]

    async def deliver(self, update: dict[str, Any]) -> None:
        assert self.http is not None
        deadline = time.monotonic() + RESEND_FOR
        tries = 0
        while time.monotonic() < deadline:
            port = self._next()
            tries += 1
            if tries == 2:
                self.resent += 1
            try:
                async with self.http.post(
                    f"http://127.0.0.1:{port}{WEBHOOK_PATH}",
                    json=update,
                    headers={SECRET_HEADER: SECRET},
                ) as response:
                    await response.read()
                    if response.status == 200:
                        self.served[port] += 1
                        return
            except (aiohttp.ClientError, TimeoutError, OSError):
                self.down[port] = time.monotonic() + 10.0
            await asyncio.sleep(0.05 if tries < 3 else 0.5)
        self.lost += 1


class WebhookFake(LoadFake):
    """The fake Bot API whose updates reach the bots through the balancer (webhook)."""

    def __init__(self, flood_limit: bool) -> None:
        super().__init__(flood_limit=flood_limit)
        self.balancer: Balancer | None = None
        self.deliveries: set[asyncio.Task[None]] = set()

    def push_update(self, update: dict[str, Any]) -> int:
        update_id = super().push_update(update)
        self._pending.clear()  # nobody polls in webhook mode
        assert self.balancer is not None
        sent = self._history[update_id]
        task = asyncio.get_running_loop().create_task(self.balancer.deliver(dict(sent)))
        self.deliveries.add(task)
        task.add_done_callback(self.deliveries.discard)
        return update_id


def repeated_replies(sent: list[SentCall], users: set[int]) -> int:
    """Messages to a worker identical to the one just before in the same chat: a reply
    sent twice, the mark of an update handled twice."""
    last: dict[int, tuple[str, str, str]] = {}
    repeats = 0
    for call in sent:
        if call.method not in MESSAGE_METHODS or call.result is None:
            continue
        chat = int(call.chat_id or 0)
        if chat not in users:
            continue
        key = (call.method, call.text or "", json.dumps(call.reply_markup, sort_keys=True))
        if last.get(chat) == key:
            repeats += 1
        last[chat] = key
    return repeats


async def _start(settings: dict[str, Any], name: str, workdir: Path) -> BotProcess:
    log_path = workdir / f"bot-{name}.log"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.capture_load",
        "serve",
        "havainto",
        "--settings",
        json.dumps(settings),
        "--rate-limit",
        "on",
        "--log",
        str(log_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    bot = BotProcess(proc, log_path)
    await bot.wait_ready()
    return bot


async def pair(
    rate: float,
    duration: float,
    warmup: float,
    think: float,
    pg_url: str,
    kill: bool,
    shared_budget: bool = True,
) -> dict[str, Any]:
    run = Run("two instances" + (", one killed" if kill else ""), rate, "on")
    run.saved = 0
    workdir = Path(tempfile.mkdtemp(prefix="havainto-pair-"))
    pool = int(rate / STEPS * (STEPS * think + 10) * 2) + 20
    users = [FIRST_USER + i for i in range(pool)]
    out: dict[str, Any] = {"run": run}
    async with fresh_database("postgresql", workdir, pg_url) as db_url:
        fake = WebhookFake(flood_limit=True)
        await fake.start()
        ports = [free_port(), free_port()]
        balancer = Balancer(ports)
        await balancer.start()
        fake.balancer = balancer
        bots: list[BotProcess] = []
        try:
            base: dict[str, Any] = {
                "telegram": {
                    "token": fake.token,
                    "base_url": fake.base_url,
                    "base_file_url": fake.base_file_url,
                    "bot_username": fake.bot_username,
                    "webhook_url": WEBHOOK_URL,
                    "webhook_listen": "127.0.0.1",
                    "webhook_secret": SECRET,
                    # The send budget shared in PostgreSQL (as `havainto run` sets it on
                    # PostgreSQL), or PTB's limiter in each instance (--budget per-instance).
                    "shared_budget": shared_budget,
                },
                "database": {"url": db_url},
                "teams": _teams(pool),
                "terminal": {"enabled": "no"},
            }
            await _enrol(base, users)
            for user in users:
                fake.user(user, first_name="Työntekijä", language_code="fi")
            for name, port in zip("ab", ports, strict=True):
                settings = json.loads(json.dumps(base))
                settings["telegram"]["webhook_port"] = port
                settings["database"]["spool_dir"] = str(workdir / f"spool-{name}")
                bots.append(await _start(settings, name, workdir))
            load = Load(fake, run, users, think, seed=7)
            stopped = False
            arrivals = asyncio.create_task(load.arrivals(lambda: stopped))
            await asyncio.sleep(warmup)
            run.load = load_average()
            start = time.monotonic()
            load.window = (start, math.inf)
            killed_at = math.inf
            if kill:
                await asyncio.sleep(duration / 2)
                killed_at = time.monotonic()
                os.kill(bots[1].proc.pid, signal.SIGKILL)
                await asyncio.sleep(duration / 2)
            else:
                await asyncio.sleep(duration)
            end = time.monotonic()
            load.window = (start, end)
            run.window = end - start
            stopped = True
            await arrivals
            while load.tasks:
                await asyncio.gather(*list(load.tasks))
            while fake.deliveries:
                await asyncio.gather(*list(fake.deliveries))
            await asyncio.sleep(0.5)  # the last keyboard edits land
            run.replies_in_window = sum(1 for m in load.replies if start <= m < end)
            out["pushed"] = list(zip(load.pushed, run.latencies, strict=True))
            out["killed_at"] = killed_at
            out["served"] = [balancer.served[p] for p in ports]
            out["resent"], out["lost"] = balancer.resent, balancer.lost
            out["repeated"] = repeated_replies(fake.sent, set(users))
            out["flood"] = sum(fake.flood_rejections.values())
        finally:
            for bot in bots:
                if bot.proc.returncode is None:
                    await bot.close()
            await balancer.close()
            await fake.stop()
        run.saved = await _count_saved(db_url)
        # Replies an instance committed and never sent, sent by the outbox later.
        out["outbox"] = sum(
            int(count)
            for bot in bots
            for count in re.findall(
                r"replies_resent transport=\S+ count=(\d+)",
                bot.log_path.read_text(encoding="utf-8", errors="replace"),
            )
        )
    if run.saved != run.entries:
        run.failures["saved_mismatch"] += 1
    return out


def report(result: dict[str, Any], commit: str) -> None:
    run: Run = result["run"]
    killed_at = result["killed_at"]
    steady = [lat for at, lat in result["pushed"] if not killed_at <= at < killed_at + AFTER_KILL]
    table = Table(
        f"Two instances on PostgreSQL behind the webhook (commit {commit})",
        (
            "rate/s",
            "run",
            "updates",
            "achieved/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            f"p99 ms without {AFTER_KILL:g} s after the kill",
            "answered by a / b",
            "sent again",
            "lost",
            "repeated replies",
            "sent by the outbox",
            "entries saved",
            "429s",
            "failures",
            "load avg",
        ),
    )
    failures = ", ".join(f"{k}={v}" for k, v in sorted(run.failures.items())) or "none"
    table.add(
        f"{run.rate:g}",
        run.label,
        str(run.updates),
        f"{run.achieved:.1f}",
        ms(run.p(50)),
        ms(run.p(95)),
        ms(run.p(99)),
        ms(max(run.latencies)) if run.latencies else "-",
        ms(percentile(steady, 99)) if steady else "-",
        " / ".join(str(n) for n in result["served"]),
        str(result["resent"]),
        str(result["lost"]),
        str(result["repeated"]),
        str(result["outbox"]),
        f"{run.saved}/{run.entries}",
        str(result["flood"]),
        failures,
        run.load,
    )
    table.print()
    targets = Table("Targets", ("target", "measured", "verdict"))
    targets.add(
        f"p99 <= {TARGET_P99 * 1000:.0f} ms at {run.rate:g}/s (whole window)",
        ms(run.p(99)),
        verdict(run.p(99) <= TARGET_P99),
    )
    # An update handled twice would save an entry twice or answer twice; a reply the
    # outbox sends after a kill (the killed instance may have sent it already) is not that.
    targets.add(
        "no update handled twice",
        f"{result['repeated']} repeated replies ({result['outbox']} sent again by the outbox "
        f"after the kill); {run.saved} saved for {run.entries} entries",
        verdict(result["repeated"] <= result["outbox"] and run.saved == run.entries),
    )
    targets.add(
        "no entry lost when an instance is killed",
        f"{result['lost']} updates lost; failures: {failures}",
        verdict(result["lost"] == 0 and not run.failures),
    )
    targets.print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.webhook_pair",
        description="Two instances on PostgreSQL behind the Telegram webhook, open-loop load, "
        "one instance killed half-way through.",
    )
    parser.add_argument("--rate", type=float, default=20.0, help="updates per second")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--think", type=float, default=2.0, help="mean think time, seconds")
    parser.add_argument("--no-kill", action="store_true", help="keep both instances running")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server (admin URL)")
    parser.add_argument(
        "--budget",
        choices=("shared", "per-instance"),
        default="shared",
        help="the send budget shared in PostgreSQL (production) or PTB's limiter per instance",
    )
    args = parser.parse_args(argv)
    print_header(
        "Two instances behind the webhook",
        ("python -m bench.webhook_pair " + " ".join(sys.argv[1:] if argv is None else argv)),
    )
    result = asyncio.run(
        pair(
            args.rate,
            args.duration,
            args.warmup,
            args.think,
            args.pg_url,
            not args.no_kill,
            args.budget == "shared",
        )
    )
    report(result, git_commit())


if __name__ == "__main__":
    main()
