"""Engine, sessions and migrations.

One ``Database`` per process. SQLite (the embedded default) runs in WAL mode
with a busy timeout so several tasks and processes can share the file;
PostgreSQL is the production and multi-instance database. The schema is owned
by Alembic (``migrations/``): ``upgrade()`` runs at every start and from
``havainto db upgrade``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.planner import refresh_statistics
from storage.sqlite_inline import BUSY_TIMEOUT_S as SQLITE_BUSY_TIMEOUT_S
from storage.sqlite_inline import inline_creator

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def normalise_url(url: str) -> str:
    """Accept plain ``sqlite:///`` and ``postgresql://`` URLs and pick the async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, busy_timeout_s: float) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_s * 1000:.0f}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record, SQLITE_BUSY_TIMEOUT_S)
    # Let SQLAlchemy, not the driver, open transactions (see _sqlite_begin).
    dbapi_connection.isolation_level = None


def _sqlite_connect_inline(dbapi_connection: Any, record: Any) -> None:
    # Never wait for a lock inside SQLite on the event loop's thread: the inline
    # driver waits with asyncio.sleep instead (storage.sqlite_inline). Its
    # connections are in autocommit mode from the start.
    _sqlite_pragmas(dbapi_connection, record, 0)


def _sqlite_begin(connection: Any) -> None:
    # Take the write lock at the start of every unit of work. A deferred transaction
    # that reads and then writes cannot wait for a concurrent writer (SQLite answers
    # "database is locked" at once); an immediate one waits up to busy_timeout.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_read(connection: Any) -> None:
    # A deferred transaction that only reads: in WAL mode it sees one consistent
    # snapshot and never takes the write lock, so writers go on beside it.
    connection.exec_driver_sql("BEGIN")


def _sqlite_query_only(dbapi_connection: Any, record: Any) -> None:
    _sqlite_connect(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _sqlite_file(url: str) -> str | None:
    """The database file of a plain ``sqlite:///path`` URL (no URI options, not memory)."""
    parsed = make_url(url)
    path = parsed.database
    if not path or path == ":memory:" or parsed.query or path.startswith("file:"):
        return None
    return path


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (None for PostgreSQL, memory and URI forms)."""
    url = normalise_url(url)
    if not url.startswith("sqlite"):
        return None
    path = _sqlite_file(url)
    return Path(path) if path is not None else None


def create_engine(url: str, *, read_only: bool = False, threaded: bool = False) -> AsyncEngine:
    """The engine. On SQLite, units of work that write run their statements on the
    event loop's thread (``storage.sqlite_inline``); ``read_only`` makes the engine
    for long reads, on aiosqlite's thread, whose transactions only read; ``threaded``
    one that writes on aiosqlite's thread (heavy maintenance)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = _sqlite_file(url)
        connect: Callable[[Any, Any], None]
        if read_only:
            engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
            connect, begin = _sqlite_query_only, _sqlite_begin_read
        elif path is not None and not threaded:
            engine = create_async_engine(url, async_creator=inline_creator(path))
            connect, begin = _sqlite_connect_inline, _sqlite_begin
        else:
            engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
            connect, begin = _sqlite_connect, _sqlite_begin
        event.listen(engine.sync_engine, "connect", connect)
        event.listen(engine.sync_engine, "begin", begin)
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class _WriterQueue:
    """Units of work of this process take turns on SQLite, first come, first served.

    Every SQLite unit of work begins IMMEDIATE, so only one runs at a time anyway.
    Left to SQLite, the others wait in its busy handler, which sleeps in growing
    steps (up to 100 ms) and serves nobody in order: under load that wasted the lock's
    free time and gave seconds-long tails (bench/RESULTS-earlier.md). Here they wait on an
    asyncio lock instead. Other processes still meet at the file (busy_timeout). A
    task that already has its turn (a transaction opened inside another) does not
    queue behind itself, and nobody waits here longer than SQLite's own busy
    timeout: past it, they meet SQLite's busy handler as before, so a transaction
    opened by a task the turn holder waits for cannot hang forever.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owner: asyncio.Task[Any] | None = None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if not self.enabled or task is None or task is self._owner:
            yield
            return
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            # One Database may outlive an event loop (several asyncio.run in a CLI).
            self._lock, self._loop = asyncio.Lock(), loop
        lock = self._lock
        if not lock.locked():
            await lock.acquire()  # free: taken at once, without a timer task
        else:
            try:
                await asyncio.wait_for(lock.acquire(), SQLITE_BUSY_TIMEOUT_S)
            except TimeoutError:
                yield  # not our turn in time: let SQLite decide, as without the queue
                return
        self._owner = task
        try:
            yield
        finally:
            self._owner = None
            lock.release()


class Database:
    """The engine and a session factory: one session per unit of work."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = create_engine(self.url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writers = _WriterQueue(enabled=self.url.startswith("sqlite"))
        # SQLite only, made on first use: "read_only" for snapshots, "threaded" for
        # maintenance (both on aiosqlite's thread; see create_engine).
        self._side: dict[str, async_sessionmaker[AsyncSession]] = {}

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside a transaction: committed on success, rolled back on error."""
        async with self._writers.turn(), self.sessions() as session, session.begin():
            yield session

    def _side_sessions(self, kind: str) -> async_sessionmaker[AsyncSession]:
        if kind not in self._side:
            engine = create_engine(self.url, **{kind: True})
            self._side[kind] = async_sessionmaker(engine, expire_on_commit=False)
        return self._side[kind]

    @asynccontextmanager
    async def maintenance(self) -> AsyncIterator[AsyncSession]:
        """A write transaction for heavy work (retention, ANALYZE): like
        ``transaction()``, but on SQLite its statements run on a driver thread
        (aiosqlite) instead of the event loop's, so a second of work does not stop
        the bot answering. It still takes its turn in the writer queue."""
        if not self.url.startswith("sqlite") or _sqlite_file(self.url) is None:
            async with self.transaction() as session:
                yield session
            return
        threaded = self._side_sessions("threaded")
        async with self._writers.turn(), threaded() as session, session.begin():
            yield session

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncSession]:
        """A session that only reads, for long reads (exports, reports, digests).

        On SQLite every ``transaction()`` holds the write lock from its first
        statement: an export of a million rows inside one would keep every worker's
        entry waiting for minutes. A snapshot is a deferred, query-only transaction
        on a connection of its own: one consistent view, no write lock, no turn in
        the writer queue. On PostgreSQL it is a read-only REPEATABLE READ
        transaction: one consistent view as well (reads never block writers there).
        """
        if not self.url.startswith("sqlite"):
            async with self.sessions() as session, session.begin():
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                await session.execute(text("SET TRANSACTION READ ONLY"))
                yield session
            return
        async with self._side_sessions("read_only")() as session, session.begin():
            yield session

    async def upgrade(self, statistics: bool = True) -> None:
        """Bring the schema to the newest migration (safe to run at every start), then
        refresh SQLite's planner statistics (``storage.planner``)."""
        await asyncio.to_thread(upgrade_schema, self.url)
        if statistics:
            await refresh_statistics(self)

    async def close(self) -> None:
        await self.engine.dispose()
        for sessions in self._side.values():
            await sessions.kw["bind"].dispose()
        self._side.clear()


def upgrade_schema(url: str, revision: str = "head") -> None:
    """Run Alembic's upgrade synchronously (the env script opens its own event loop)."""
    command.upgrade(alembic_config(url), revision)
