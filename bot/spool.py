"""Keeping events while the database is unreachable, and replaying them when it is back.

When a unit of work fails because the database cannot be reached (a dropped
connection, a refused connect, a PostgreSQL restart), the transaction rolled
back and the event had no effect. ``Havainto.handle`` then puts the neutral
``Incoming`` here, tells the worker it is kept, and ``SpoolReplayer`` hands it
back to the service once the database answers again; a restarted process
replays what an earlier one left behind. The event id dedupe in
``processed_events`` makes a replay idempotent.

On disk each event is one small JSON file in a subdirectory of
``database.spool_dir`` per database (``spool_path``), named by
arrival order, written to a temporary name, fsync'd and renamed, so a crash
leaves either the whole event or nothing. The files hold what the worker typed
until the replay, so the directory is created ``0700`` and the files ``0600``;
give every instance its own directory.

``is_unavailable`` decides which errors mean "the database is not there" (as
opposed to a bug, which must not be retried forever).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import json
import logging
import os
import re
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, get_args

import sqlalchemy.exc
from sqlalchemy.engine import make_url

from flows import events
from flows.events import Incoming, Outbound

log = logging.getLogger("havainto.spool")

Key = tuple[str, str]
Deliver = Callable[[list[Outbound]], Awaitable[None]]

_EVENT_TYPES: dict[str, type[Any]] = {cls.__name__: cls for cls in get_args(events.Event)}
_SQLITE_TRANSIENT = ("locked", "busy", "unable to open", "disk i/o")
_ASYNCPG_CLOSED = ("connection is closed", "connection was closed", "connection lost")


# --- which errors mean "the database is not reachable" ------------------------------------


def is_unavailable(error: BaseException) -> bool:
    """True when ``error`` (or anything it wraps) says the database could not be reached.

    Connection-level failures only: refused or dropped connections, a server
    shutting down or starting up, pool and connect timeouts, a locked SQLite
    file. Integrity errors, missing tables and programming errors are bugs and
    stay errors.
    """
    for exc in _chain(error):
        if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, sqlalchemy.exc.TimeoutError | OSError):
            return True
        if isinstance(exc, sqlite3.OperationalError):
            message = str(exc).lower()
            if any(part in message for part in _SQLITE_TRANSIENT):
                return True
        if _is_asyncpg_unavailable(exc):
            return True
    return False


def _is_asyncpg_unavailable(exc: BaseException) -> bool:
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return False
    if isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.TooManyConnectionsError,
    ):
        return True
    if isinstance(exc, asyncpg.exceptions.InterfaceError):
        message = str(exc).lower()
        return any(part in message for part in _ASYNCPG_CLOSED)
    return False


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        exc = todo.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        yield exc
        orig = getattr(exc, "orig", None)
        todo += [exc.__cause__, exc.__context__, orig if isinstance(orig, BaseException) else None]


def spool_path(spool_dir: str | os.PathLike[str], database_url: str) -> Path:
    """The spool of one database: ``spool_dir/<backend>-<database>-<hash>``.

    Kept events belong to the database they were meant for: a process pointed
    at another database (or another test's) never replays them there.
    """
    from storage.db import normalise_url

    url = make_url(normalise_url(database_url))
    backend = url.get_backend_name()
    name = url.database or "memory"
    if backend == "sqlite" and name != "memory" and not name.startswith(":"):
        name = str(Path(name).resolve())
    digest = hashlib.sha256(f"{backend}:{name}".encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).name)[:40]
    return Path(spool_dir) / f"{backend}-{slug}-{digest}"


# --- serialising events -------------------------------------------------------------------


def dump_incoming(incoming: Incoming) -> dict[str, Any]:
    event = incoming.event
    return {
        **{f.name: getattr(incoming, f.name) for f in dataclasses.fields(incoming)},
        "event": {"type": type(event).__name__, **dataclasses.asdict(event)},
    }


def load_incoming(data: dict[str, Any]) -> Incoming:
    fields = dict(data)
    event_data = dict(fields.pop("event"))
    event_type = _EVENT_TYPES[event_data.pop("type")]
    return Incoming(event=event_type(**event_data), **fields)


# --- the spool ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Spooled:
    """One kept event: its file name orders it, ``received_at`` is when the worker sent it."""

    name: str
    incoming: Incoming
    received_at: datetime

    @property
    def key(self) -> Key:
        return (self.incoming.transport, self.incoming.user_id)


class Spool:
    """Events waiting for the database, per sender in arrival order, on disk and in memory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._queues: dict[Key, deque[Spooled]] = {}
        self._event_ids: set[tuple[str, str]] = set()
        self._counter = itertools.count()
        self.changed = asyncio.Event()
        self.load()

    def load(self) -> int:
        """Read what an earlier process left behind; returns how many events were found."""
        self._queues.clear()
        self._event_ids.clear()
        if not self.directory.is_dir():
            return 0
        found = 0
        for path in sorted(self.directory.glob("*.json")):
            try:
                data = json.loads(path.read_text("utf-8"))
                item = Spooled(
                    path.name,
                    load_incoming(data["incoming"]),
                    datetime.fromisoformat(data["received_at"]),
                )
            except (OSError, ValueError, KeyError, TypeError):
                # Keep the file for a person to look at, out of the replay's way.
                log.error("spool_unreadable file=%s", path.name)
                path.rename(path.with_suffix(".unreadable"))
                continue
            self._remember(item)
            found += 1
        if found:
            log.warning("spool_loaded pending=%d", found)
            self.changed.set()
        return found

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def has(self, key: Key) -> bool:
        return bool(self._queues.get(key))

    def holds(self, incoming: Incoming) -> bool:
        """True when this very event (same transport and event id) is kept already, e.g. a
        platform delivering it again while the database is still away."""
        return incoming.event_id is not None and (
            (incoming.transport, incoming.event_id) in self._event_ids
        )

    def _remember(self, item: Spooled) -> None:
        self._queues.setdefault(item.key, deque()).append(item)
        if item.incoming.event_id is not None:
            self._event_ids.add((item.incoming.transport, item.incoming.event_id))

    def first(self, key: Key) -> Spooled | None:
        queue = self._queues.get(key)
        return queue[0] if queue else None

    def keys(self) -> list[Key]:
        """Senders with kept events, the one waiting longest first."""
        waiting = [(queue[0].name, key) for key, queue in self._queues.items() if queue]
        return [key for _, key in sorted(waiting)]

    async def add(self, incoming: Incoming, received_at: datetime) -> Spooled:
        """Keep ``incoming`` durably (fsync'd) before the worker is told it is kept."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._counter):06d}.json"
        item = Spooled(name, incoming, received_at)
        payload = json.dumps(
            {"v": 1, "received_at": received_at.isoformat(), "incoming": dump_incoming(incoming)},
            ensure_ascii=False,
        )
        await asyncio.to_thread(self._write, name, payload)
        self._remember(item)
        self.changed.set()
        return item

    async def remove(self, item: Spooled) -> None:
        """Forget a replayed event (after its transaction committed)."""
        queue = self._queues.get(item.key)
        if queue and queue[0] == item:
            queue.popleft()
        elif queue and item in queue:
            queue.remove(item)
        if queue is not None and not queue:
            del self._queues[item.key]
        if item.incoming.event_id is not None:
            self._event_ids.discard((item.incoming.transport, item.incoming.event_id))
        await asyncio.to_thread(self._unlink, item.name)

    def _write(self, name: str, payload: str) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self.directory / f".{name}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, payload.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.directory / name)
        self._sync_directory()

    def _unlink(self, name: str) -> None:
        try:
            (self.directory / name).unlink()
        except FileNotFoundError:
            return
        self._sync_directory()

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- the background replay ----------------------------------------------------------------


class Replayable(Protocol):
    """What the replayer needs from the service (``Havainto`` provides it)."""

    spool: Spool

    async def replay_spool(self, deliver: Deliver) -> bool: ...


class SpoolReplayer:
    """Replays kept events once the database answers; backs off while it does not.

    The wait doubles from ``initial_delay`` up to ``max_delay`` after every
    failed attempt and starts over after a success, so an outage costs one
    cheap connection attempt every half minute at most, never a busy loop.
    """

    def __init__(
        self,
        service: Replayable,
        deliver: Deliver,
        initial_delay: float = 0.5,
        max_delay: float = 30.0,
    ) -> None:
        self.service = service
        self.deliver = deliver
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.attempts = 0
        self.last_success: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="havainto-spool-replayer")

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a bounded stop
        """Stop after the event being replayed (if any); what is left stays on disk."""
        if self._task is None:
            return
        self._stopping.set()
        self.service.spool.changed.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
        except Exception:
            log.exception("spool_replayer_failed")
        self._task = None

    async def _run(self) -> None:
        spool = self.service.spool
        delay = self.initial_delay
        while not self._stopping.is_set():
            if not len(spool):
                spool.changed.clear()
                await spool.changed.wait()
                continue
            self.attempts += 1
            try:
                done = await self.service.replay_spool(self.deliver)
            except Exception:
                log.exception("spool_replay_crashed")
                done = False
            if done:
                self.last_success = datetime.now(UTC)
                delay = self.initial_delay
                continue
            log.warning("database_unavailable pending=%d retry_in=%.1fs", len(spool), delay)
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, self.max_delay)
