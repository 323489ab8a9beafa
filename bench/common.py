"""What every benchmark shares: tables, percentiles, peak memory, the machine, databases.

Nothing here measures on its own. ``RssSampler`` watches the resident memory of
this process from a thread (``/proc/self/statm`` every few milliseconds) so a
phase can report its own peak, not the lifetime peak ``getrusage`` gives.
``fresh_database`` yields the URL of an empty database on either backend and
removes it afterwards; ``dataset_url`` names the persistent database a data set
of a given size lives in (``bench/data/`` for SQLite, ``havainto_bench_<rows>``
on the PostgreSQL server).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
DEFAULT_PG_URL = os.environ.get(
    "HAVAINTO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("sqlite", "postgresql")
_PAGE = os.sysconf("SC_PAGE_SIZE")


# --- numbers ---------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def ratio(a: float, b: float) -> str:
    return "n/a" if not b or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}x"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


@dataclass
class Table:
    """A plain-text table, printed as Markdown so RESULTS.md can take it as is."""

    title: str
    headers: Sequence[str]
    rows: list[Sequence[object]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append(cells)

    def render(self) -> str:
        cells = [[str(c) for c in self.headers]] + [[str(c) for c in r] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.headers))]

        def line(row: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

        out = [f"### {self.title}", "", line(cells[0])]
        out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        out += [line(r) for r in cells[1:]]
        return "\n".join(out) + "\n"

    def print(self) -> None:
        print(self.render(), flush=True)


# --- memory ----------------------------------------------------------------------------


def rss_bytes() -> int:
    """Resident set size of this process now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


class RssSampler:
    """Peak resident memory during a ``with`` block, sampled from a thread."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.start = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self.start = self.peak = rss_bytes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def peak_mb(self) -> float:
        return self.peak / 1e6

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 1e6


# --- the machine -------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total_gb() -> float:
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return math.nan


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


async def measure_in_process(module: str, args: Sequence[str], what: str) -> dict[str, Any]:
    """Run ``python -m <module> one <args>`` in a fresh process (its peak memory is its
    own) and return the JSON it prints last, with the load average at the end."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, "one", *args, stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed")
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    result["load"] = load_average()
    return result


def machine_summary() -> str:
    """One line that says where and when the figures were taken."""
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {cpu_model()}, {os.cpu_count()} cores, "
        f"{memory_total_gb():.0f} GB RAM; Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}; load average {load_average()}"
    )


def git_commit() -> str:
    """The commit of the code measured (short hash; ``-dirty`` with uncommitted changes)."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=BENCH_DIR.parent, capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short=10", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return f"{commit}-dirty" if dirty else commit


def print_header(name: str, command: str) -> None:
    print(f"## {name}\n", flush=True)
    print(f"Command: `{command}`  ", flush=True)
    print(f"Commit: `{git_commit()}`  ", flush=True)
    print(f"Machine: {machine_summary()}\n", flush=True)


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self.seconds = 0.0
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


# --- databases ---------------------------------------------------------------------------


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def pg_database_url(admin_url: str, name: str) -> str:
    return (
        make_url(admin_url)
        .set(drivername="postgresql+asyncpg", database=name)
        .render_as_string(hide_password=False)
    )


async def pg_version(url: str) -> str:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def pg_create(admin_url: str, name: str) -> str:
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return pg_database_url(admin_url, name)


async def pg_drop(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def pg_exists(admin_url: str, name: str) -> bool:
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database(
    backend: str, workdir: Path, pg_admin_url: str = DEFAULT_PG_URL
) -> AsyncIterator[str]:
    """An empty database on ``backend``, removed afterwards; yields its SQLAlchemy URL."""
    if backend == "sqlite":
        path = workdir / f"bench-{secrets.token_hex(4)}.db"
        try:
            yield f"sqlite+aiosqlite:///{path}"
        finally:
            remove_sqlite(path)
        return
    name = "havainto_bench_" + secrets.token_hex(5)
    url = await pg_create(pg_admin_url, name)
    try:
        yield url
    finally:
        await pg_drop(pg_admin_url, name)


def remove_sqlite(path: Path | str) -> None:
    """Delete an SQLite database file with its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def dataset_name(rows: int, seed: int) -> str:
    return f"havainto_bench_{rows}_s{seed}"


def dataset_url(backend: str, rows: int, seed: int, pg_admin_url: str = DEFAULT_PG_URL) -> str:
    """Where the data set of ``rows`` observations (generated with ``seed``) is kept."""
    if backend == "sqlite":
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{DATA_DIR / (dataset_name(rows, seed) + '.db')}"
    return pg_database_url(pg_admin_url, dataset_name(rows, seed))


def human(n: float) -> str:
    return f"{n:,.0f}".replace(",", " ")
