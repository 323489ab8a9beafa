"""Where the bot's time per update goes, from a py-spy profile of a capture run.

    HAVAINTO_BENCH_PROFILE=bench/data/profile python -m bench.capture_load --rates 20 ...
    python -m bench.profile_summary bench/data/profile/havainto-20-on.txt --updates 1180

Reads py-spy's collapsed stacks (``--format raw``: one line per distinct stack, frames
separated by ``;``, then the number of samples) and prints one Markdown table: the
samples in which the bot was busy (not waiting in the event loop's ``select``), split by
the innermost frame that belongs to a component we care about (SQLAlchemy's ORM, its
Core and the driver, PTB, aiohttp, our code, logging, ...), in milliseconds per update
with ``--updates`` (the updates answered in the profiled window) and ``--rate`` (py-spy's
samples per second, 250 by default).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

#: (component, a path fragment of its frames), the first match from the innermost
#: frame outwards names the component of a sample.
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("SQLAlchemy ORM (load, flush, unit of work)", "sqlalchemy/orm/"),
    ("SQLAlchemy Core and engine", "sqlalchemy/"),
    ("SQLite driver (sqlite3, storage/sqlite_inline.py)", "sqlite"),
    ("asyncpg", "asyncpg/"),
    ("PTB (telegram)", "telegram/"),
    ("aiohttp / HTTP", "aiohttp/"),
    ("pydantic", "pydantic"),
    ("logging", "logging/"),
    ("json", "json/"),
    ("asyncio machinery", "asyncio/"),
    ("Havainto: flows", "flows/"),
    ("Havainto: storage", "storage/"),
    ("Havainto: bot", "bot/"),
)
#: Innermost frames of a thread that waits: the event loop in ``select``, an idle worker
#: of a thread pool. (py-spy without ``--idle`` still samples these: they hold no GIL
#: but are not known to be idle.)
IDLE = (
    "select (selectors.py",
    "Condition.wait (threading.py",
    "_worker (concurrent/futures/thread.py",
    # aiosqlite's connection thread waiting for its next call (``tx.get()``, aiosqlite
    # 0.22.1 as pinned); a call it runs shows a later line of the same function.
    "_connection_worker_thread (aiosqlite/core.py:59)",
)


def classify(stack: str) -> str | None:
    """The component of one sample's stack (outermost first); None when idle."""
    frames = stack.split(";")
    innermost = frames[-1]
    if not stack.strip() or any(marker in innermost for marker in IDLE):
        return None
    if "_WorkItem.run (concurrent/futures/thread.py" in innermost:
        return "a thread pool's C call (DNS, file or driver work off the loop)"
    for frame in reversed(frames):
        for name, fragment in COMPONENTS:
            if fragment in frame:
                return name
    return "other (interpreter, C extensions)"


def summarise(path: Path) -> tuple[Counter[str], int]:
    counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdecimal():
            continue
        samples = int(number)
        total += samples
        component = classify(stack)
        if component is not None:
            counts[component] += samples
    return counts, total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_summary")
    parser.add_argument("profile", type=Path, help="py-spy --format raw output")
    parser.add_argument("--updates", type=int, required=True, help="updates in the window")
    parser.add_argument("--rate", type=float, default=250.0, help="py-spy samples per second")
    args = parser.parse_args(argv)
    counts, total = summarise(args.profile)
    busy = sum(counts.values())
    per_sample_ms = 1000.0 / args.rate
    print(f"### Profile: {args.profile.name}\n")
    print(
        f"{total} samples, {busy} busy ({busy / max(total, 1):.0%}); "
        f"{args.updates} updates: {busy * per_sample_ms / args.updates:.2f} ms busy per update\n"
    )
    print("| component | samples | share of busy | ms per update |")
    print("|---|---|---|---|")
    for name, samples in counts.most_common():
        share = samples / busy if busy else 0.0
        per_update = samples * per_sample_ms / args.updates
        print(f"| {name} | {samples} | {share:.0%} | {per_update:.2f} |")


if __name__ == "__main__":
    main()
