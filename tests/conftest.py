"""Shared fixtures: a fresh database on every backend, configs, and a fake clock.

Every test that takes ``db_url`` runs once on SQLite and, when
``HAVAINTO_TEST_DATABASE_URL`` names a PostgreSQL server (``.ci/run`` sets it),
once more on a brand-new PostgreSQL database created for that test and
dropped after it, so parallel runs never share state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config, load_config
from tests.support import logcheck
from tests.support.databases import (
    PG_ADMIN_URL,
    TEMPLATES,
    create_pg_database,
    drop_pg_database,
)
from tests.support.logcheck import Record
from tests.support.synapse_harness import Synapse

pytest_plugins = ("pytester",)  # tests/test_logcheck.py runs small sessions of its own

BACKENDS = ["sqlite"] + (["postgresql"] if PG_ADMIN_URL else [])


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database on each backend, already migrated (a copy of this process's
    template, ``tests/support/databases.py``) unless the test is marked ``unmigrated``."""
    migrated = request.node.get_closest_marker("unmigrated") is None
    if request.param == "sqlite":
        if migrated:
            yield await TEMPLATES.sqlite_copy(tmp_path / "havainto.db")
        else:
            yield f"sqlite+aiosqlite:///{tmp_path / 'havainto.db'}"
        return
    url = await (TEMPLATES.pg_copy() if migrated else create_pg_database())
    try:
        yield url
    finally:
        await drop_pg_database(url)


TEST_TEAMS: list[dict[str, Any]] = [
    {
        "id": "hki-etsiva",
        "name": "Helsingin etsivät",
        "region": "helsinki",
        "language": "fi",
        "chats": {"telegram": "-1001"},
        "leadership": "hki-johto",
        "areas": [
            {"id": "kallio", "name": "Kallio", "latitude": 60.184, "longitude": 24.950},
            {"id": "itakeskus", "name": "Itäkeskus", "latitude": 60.210, "longitude": 25.081},
        ],
    },
    {
        "id": "vaasa-uppsok",
        "name": "Vasa uppsökande",
        "region": "pohjanmaa",
        "language": "sv",
        "chats": {"telegram": "-1002"},
        "leadership": "pohjanmaa-ledning",
    },
]
TEST_LEADERSHIP: list[dict[str, Any]] = [
    {
        "id": "hki-johto",
        "name": "Helsingin johto",
        "region": "helsinki",
        "chats": {"telegram": "-2001"},
    },
    {
        "id": "pohjanmaa-ledning",
        "name": "Österbottens ledning",
        "region": "pohjanmaa",
        "language": "sv",
        "chats": {"telegram": "-2002"},
    },
    {"id": "koko-johto", "name": "Koko organisaatio", "telegram_chat_id": "-2000"},
]


@pytest.fixture
def make_config(db_url: str) -> Callable[..., Config]:
    """Build a config on the test database; keyword arguments override sections."""

    def build(**overrides: Any) -> Config:
        values: dict[str, Any] = {
            "database": {"url": db_url},
            "teams": TEST_TEAMS,
            "leadership": TEST_LEADERSHIP,
            "terminal": {"enabled": "no"},
        }
        values.update(overrides)
        return load_config(None, **values)

    return build


class FakeClock:
    """A clock the test moves by hand. Starts on a Monday morning in Helsinki."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 23, 8, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- logs of the whole session --------------------------------------------------------
# Every log record of the test session is kept (formatted, with tracebacks) and checked
# when the session finishes, whichever tests ran: no log line may carry an observation's
# text, a personal identity code or a secret (tests/support/logcheck.py). A finding
# fails the session (exit status 1) and is printed in the terminal summary.

CAPTURED_LOGS: list[Record] = []
LOG_PROBE = "log_capture_probe"
LOG_PROBLEMS_KEY = "havainto_log_problems"
_LOG_PROBLEMS: list[str] = []


class _SessionLogCapture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a broken record must not break the test it came from
            text = str(record.msg)
        args = record.args if isinstance(record.args, tuple) else ()
        CAPTURED_LOGS.append((record.name, str(record.msg), args, text))


def pytest_configure(config: pytest.Config) -> None:
    handler = _SessionLogCapture(level=logging.INFO)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    asyncio.run(TEMPLATES.drop())
    if session.config.option.collectonly:
        return
    # The capture must still be in place at the end (a test could have replaced the
    # root logger's handlers): a record logged now must arrive.
    logging.getLogger("havainto.tests").info(LOG_PROBE)
    if not any(name == "havainto.tests" and msg == LOG_PROBE for name, msg, *_ in CAPTURED_LOGS):
        _LOG_PROBLEMS.append("the session's log capture was removed: the logs were not checked")
    _LOG_PROBLEMS.extend(logcheck.problems(CAPTURED_LOGS))
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:  # a pytest-xdist worker: the controller decides
        worker_output[LOG_PROBLEMS_KEY] = list(_LOG_PROBLEMS)
        return
    if _LOG_PROBLEMS and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist, in the controller: a worker's log findings count like our own (the
    controller's ``pytest_sessionfinish`` runs after every worker is down)."""
    _LOG_PROBLEMS.extend(getattr(node, "workeroutput", {}).get(LOG_PROBLEMS_KEY, []))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _LOG_PROBLEMS:
        terminalreporter.section("session log check FAILED", sep="=", red=True, bold=True)
        for line in _LOG_PROBLEMS:
            terminalreporter.line(line)
        terminalreporter.line("(tests/support/logcheck.py: the run fails, exit status 1)")


# --- a real Matrix homeserver ---------------------------------------------------------
# One Synapse per test session, shared by every Matrix test (each test registers users
# of its own). Session-scoped and synchronous, so it works with any event-loop scope.
# If Synapse cannot be installed or started, the tests that use it fail with the reason.


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    server = Synapse(tmp_path_factory.mktemp("synapse"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
