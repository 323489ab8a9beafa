"""SQLite statements run on the event loop's own thread, for short units of work.

SQLAlchemy's async SQLite dialect drives ``aiosqlite``, which runs every call on
a worker thread: a statement is four round trips through a queue and the event
loop (cursor, execute, fetch, close). On SQLite every write unit of work holds
the database's one write lock from its first statement to its commit, so those
round trips are spent holding the lock: under load each one waits behind
everything else the loop has to do, and the units of work of the whole
process queue behind the slowest. The capture benchmark measured the bot
running at a quarter of the bare PTB bot's throughput, its event loop mostly
idle while units of work waited (``bench/RESULTS-earlier.md``).

The statements of a capture step are index lookups of microseconds: this module
runs them where they are awaited, so a unit of work runs from BEGIN to COMMIT
without giving the loop away and holds the lock only as long as its own work
takes. It is a connection object with the methods the dialect uses of
``aiosqlite``'s, handed to SQLAlchemy through ``create_async_engine``'s
documented ``async_creator`` hook; errors are the ``sqlite3`` exceptions the
dialect already knows (``aiosqlite`` re-exports the same classes).

Two rules keep the loop free (``storage.db`` applies them):

* long reads (exports, reports, digests at national scale) do not come here:
  ``Database.snapshot()`` keeps ``aiosqlite`` and its thread;
* the write lock is never waited for on the loop: the busy timeout of these
  connections is zero and ``Database.transaction()`` takes the lock (BEGIN
  IMMEDIATE) up front, waiting with ``asyncio.sleep`` while another process
  holds it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

BUSY_TIMEOUT_S = 10.0
SQLITE_BUSY = 5
SQLITE_BUSY_SNAPSHOT = 517  # a stale snapshot: waiting cannot help


def _busy(error: sqlite3.OperationalError) -> bool:
    code: int | None = getattr(error, "sqlite_errorcode", None)
    if code is None:  # not a code of SQLite's own
        return False
    return code & 0xFF == SQLITE_BUSY and code != SQLITE_BUSY_SNAPSHOT


async def _when_free(call: Callable[..., Any], *args: Any) -> Any:
    """Run ``call``; while another process holds the lock it needs, wait on the loop.

    SQLite refuses a statement it cannot get its lock for (SQLITE_BUSY) without
    doing any of it, so trying again later is safe. This is the busy timeout of a
    thread-run driver, with ``asyncio.sleep`` instead of a sleeping thread.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_TIMEOUT_S
    delay = 0.001
    while True:
        try:
            return call(*args)
        except sqlite3.OperationalError as error:
            if not _busy(error) or loop.time() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


class InlineCursor:
    """An ``aiosqlite.Cursor`` look-alike whose coroutines finish without waiting."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        await _when_free(self._cursor.execute, sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        await _when_free(self._cursor.executemany, sql, list(parameters))
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        if size is None:
            return self._cursor.fetchmany()
        return self._cursor.fetchmany(size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _RunNow:
    """Stands in for aiosqlite's request queue: the dialect sets the isolation level
    by putting ``(future, function)`` on it; here the function runs at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as error:
            future.set_exception(error)


class InlineConnection:
    """An ``aiosqlite.Connection`` look-alike over a ``sqlite3`` connection."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._tx = _RunNow()

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        await _when_free(self._conn.commit)

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Literal["DEFERRED", "EXCLUSIVE", "IMMEDIATE"] | None) -> None:
        self._conn.isolation_level = value


def inline_creator(path: str) -> Callable[[], Any]:
    """The ``async_creator`` for SQLAlchemy: a new inline connection to ``path``."""

    async def create() -> InlineConnection:
        # Autocommit at the driver (SQLAlchemy issues BEGIN itself); no busy waiting
        # on the loop (see the module's docstring); the connection is only ever used
        # by one task at a time, but the pool may close it from another thread.
        connection = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        return InlineConnection(connection)

    return create
