"""What the fuzz tests (tests/test_fuzz_telegram.py, tests/test_fuzz_matrix.py) share.

Reproducible: every fuzz test takes its seed from ``fuzz_seed()``, which prints it
at the start (and the tests put it in every assertion message), and hands it to
hypothesis (``hypothesis.seed``). Hypothesis draws one seed per batch from it; the
batch is built by a ``random.Random`` with that seed (``OddValues`` and the
platforms' generators that extend it). Rerun a failure with the seed it printed::

    HAVAINTO_TEST_SEED=1234567 .venv/bin/python -m pytest -q tests/test_fuzz_telegram.py

Every batch (hypothesis example) starts from the same state: a fresh database
(``fresh_database``) with the same people enrolled and the same old entry, so
nothing a batch stored carries over into the next one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from sqlalchemy import select

from bot.runtime import Runtime
from storage.models import Draft, Identity, Invite, Observation, Person
from tests.support.databases import TEMPLATES, drop_pg_database

SEED_VARIABLE = "HAVAINTO_TEST_SEED"


def fuzz_seed() -> int:
    """The seed of this run: ``HAVAINTO_TEST_SEED`` when set, else a new random one. Printed."""
    given = os.environ.get(SEED_VARIABLE, "").strip()
    seed = int(given) if given else secrets.randbits(32)
    print(f"fuzz seed {seed} (rerun: {SEED_VARIABLE}={seed})", flush=True)
    return seed


def rerun_hint(seed: int) -> str:
    """For assertion messages: how to replay this run."""
    return f"[fuzz seed {seed}: rerun with {SEED_VARIABLE}={seed}]"


# No shrinking: a batch is built from its own seed by ``random.Random``, not from
# hypothesis' choices, so there is nothing to shrink; the failure message names the
# updates, and the run's seed replays it.
FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,
    phases=(Phase.generate,),
    suppress_health_check=[HealthCheck.too_slow],
)
BATCH_SEEDS = (0, 2**64 - 1)  # the range hypothesis draws each batch's seed from


# --- odd values ---------------------------------------------------------------------------------

SPECIAL_TEXTS = (
    "",
    " ",
    "\n\n",
    "\x00",
    "\u200b",
    "\u202e\u202dabc",
    "\ufeff",
    "🏳️‍🌈👩‍👩‍👧‍👦",
    "Z̸̢̛̠a̶l̷g̵o̶",
    "<b>lihava</b> <a href='x'>linkki</a> &amp; &lt;",
    "*_`[]()~>#+-=|{}.!",
    "1",
    "0",
    "-1",
    "99",
    "1.",
    "١",  # an Arabic-Indic digit one
    "Asuminen ja asunnottomuus",
    "Tallenna",
    "Ei kumpikaan",
    "kyllä",
    "010190-123A",
    "FI21 1234 5600 0007 85",
    "joku@example.org",
    "+358 40 1234567",
    "/",
    "//",
)
COMMANDS = (
    "/start",
    "/start abc",
    "/start " + "x" * 64,
    "/uusi",
    "/uusi Nuorilla ei ole yöpaikkaa",
    "/new",
    "/peru",
    "/cancel",
    "/omat",
    "/kieli",
    "/apua",
    "/help",
    "/viikko",
    "/kuukausi",
    "/vecka",
    "/month",
    "/export",
    "/vienti",
    "/admin",
    "/START",
    "/uusi@havainto_test_bot",
    "/uusi@another_bot",
    "/ä",
    "/" + "x" * 300,
)
ODD_FLOATS = (
    0.0,
    -0.0,
    90.0,
    -90.0,
    180.0,
    -180.0,
    90.0000001,
    1e308,
    -1e308,
    5e-324,
    math.inf,
    -math.inf,
    math.nan,
    60.184,
    24.95,
)
# Pieces of odd Unicode: controls, combining marks, zero-width and direction marks,
# other scripts, astral characters (emoji); no lone surrogates (Telegram sends UTF-8).
CHARACTER_RANGES = (
    (0x20, 0x7E),
    (0x20, 0x7E),
    (0x20, 0x7E),
    (0x00, 0x1F),
    (0x7F, 0xFF),
    (0x0300, 0x036F),
    (0x0590, 0x06FF),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x0400, 0x04FF),
    (0x4E00, 0x9FFF),
    (0xE000, 0xF8FF),
    (0xFFF0, 0xFFFF),
    (0x1F300, 0x1FAFF),
    (0x10000, 0x10FFFF),
)


class OddValues:
    """Odd scalars from one seeded random generator; the platforms' generators extend it."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def chance(self, percent: float) -> bool:
        return self.rng.random() * 100 < percent

    def pick(self, **weights: float) -> str:
        names = list(weights)
        return self.rng.choices(names, [weights[n] for n in names])[0]

    def text(self, max_size: int = 30) -> str:
        size = self.rng.choice((0, 1, 2, 5, self.rng.randint(0, max_size)))
        out = []
        for _ in range(size):
            low, high = self.rng.choice(CHARACTER_RANGES)
            out.append(chr(self.rng.randint(low, high)))
        return "".join(out)

    def long_text(self) -> str:
        piece = self.text(12) or "x"
        return (piece * self.rng.randint(1, 5000))[:5000]

    def any_text(self) -> str:
        kind = self.pick(short=5, special=3, long=2, mixed=2)
        if kind == "short":
            return self.text()
        if kind == "special":
            return self.rng.choice(SPECIAL_TEXTS)
        if kind == "long":
            return self.long_text()
        return f"{self.rng.choice(SPECIAL_TEXTS)} {self.text()}"

    def command_text(self) -> str:
        kind = self.pick(known=5, with_args=3, random=2)
        if kind == "known":
            return self.rng.choice(COMMANDS)
        if kind == "with_args":
            return f"{self.rng.choice(COMMANDS)} {self.any_text()}"
        return "/" + self.text(20)

    def odd_float(self) -> float:
        kind = self.pick(odd=3, range=3, any=1)
        if kind == "odd":
            return self.rng.choice(ODD_FLOATS)
        if kind == "range":
            return self.rng.uniform(-90, 90)
        return self.rng.uniform(-1e12, 1e12)

    def drop_some_field(self, update: dict[str, Any]) -> None:
        """Leave one field out somewhere in the update (a required one, as often as not)."""
        paths: list[tuple[dict[str, Any], str]] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    paths.append((node, key))
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(update)
        paths = paths[1:]  # keep the update kind itself
        if paths:
            node, key = self.rng.choice(paths)
            node.pop(key, None)


# --- what the fuzz records ------------------------------------------------------------------


class ErrorRecords(logging.Handler):
    """Every ERROR record of the process while the fuzz runs (not only Havainto's)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Tally:
    generated: int = 0
    rejected_by_parser: int = 0
    fed: int = 0
    polled: int = 0
    checked_runs: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    rejected_kinds: Counter[str] = field(default_factory=Counter)
    may_store: int = 0
    telegram_errors: int = 0
    saved: int = 0
    batches: int = 0


def traceback_of(record: logging.LogRecord) -> str:
    if not record.exc_info:
        return ""
    return logging.Formatter().formatException(record.exc_info)[-2500:]


def show(raw: Any, limit: int = 400) -> str:
    """One update or event for a failure message (its batch's seed rebuilds it whole)."""
    text = json.dumps(raw, ensure_ascii=True, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


# --- what is stored -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    observations: tuple[tuple[Any, ...], ...]
    drafts: tuple[tuple[Any, ...], ...]
    people: tuple[tuple[Any, ...], ...]
    identities: tuple[tuple[Any, ...], ...]
    invites: tuple[tuple[Any, ...], ...]

    def diff(self, other: Snapshot) -> str:
        """Every row that went (-) and came (+), table by table, in full."""
        lines = []
        for name in ("observations", "drafts", "people", "identities", "invites"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine == theirs:
                continue
            lines.append(f"{name}:")
            lines.extend(f"  - {row!r}" for row in mine if row not in theirs)
            lines.extend(f"  + {row!r}" for row in theirs if row not in mine)
        return "\n".join(lines)


async def snapshot(runtime: Runtime) -> Snapshot:
    """Every row an update that must not store anything must leave alone. A person's
    language is left out: a language button is the one choice that is valid anywhere."""
    async with runtime.db.transaction() as session:

        async def rows(*columns: Any) -> tuple[tuple[Any, ...], ...]:
            result = await session.execute(select(*columns))
            return tuple(sorted((tuple(row) for row in result.all()), key=repr))

        return Snapshot(
            observations=await rows(
                Observation.id,
                Observation.person_id,
                Observation.description,
                Observation.theme,
                Observation.escalation,
                Observation.updated_at,
                Observation.withdrawn_at,
            ),
            drafts=tuple(
                (person_id, json.dumps(state, sort_keys=True), chat_id, updated_at)
                for person_id, state, chat_id, updated_at in await rows(
                    Draft.person_id, Draft.state, Draft.chat_id, Draft.updated_at
                )
            ),
            people=await rows(Person.id, Person.role, Person.team_id, Person.revoked_at),
            identities=await rows(
                Identity.person_id, Identity.transport, Identity.external_id, Identity.chat_id
            ),
            invites=await rows(Invite.code, Invite.used_at, Invite.revoked_at, Invite.person_id),
        )


# --- a fresh database for every batch ---------------------------------------------------------


@asynccontextmanager
async def fresh_database(db_url: str, folder: Path) -> AsyncIterator[str]:
    """A new migrated database on the backend of ``db_url`` (the test's own): its URL.

    SQLite: a copy of the migrated template in ``folder``, removed afterwards;
    PostgreSQL: a new database on the test server copied from the template, dropped
    afterwards (``tests/support/databases.py``)."""
    if db_url.startswith("postgresql"):
        url = await TEMPLATES.pg_copy()
        try:
            yield url
        finally:
            await drop_pg_database(url)
        return
    path = folder / f"fuzz-{secrets.token_hex(4)}.db"
    try:
        yield await TEMPLATES.sqlite_copy(path)
    finally:
        _remove_sqlite_files(path)


def _remove_sqlite_files(path: Path) -> None:
    for leftover in path.parent.glob(path.name + "*"):  # with -wal, -shm, -journal
        leftover.unlink()
