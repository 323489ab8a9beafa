"""Databases for tests: new PostgreSQL databases on the test server, and one migrated
template per backend and test process that every test's database is copied from.

Running the migrations cost 0.2-1 s for each test that needs a database (about 1,200
databases in a run of the suite, counting the fuzz tests' batches); copying a migrated
SQLite file or a PostgreSQL template (``CREATE DATABASE ... TEMPLATE``) costs a few ms
to ~0.2 s. Each test process (each pytest-xdist worker) makes its own templates, the
first time one is needed, and drops them when its session ends."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from storage.db import Database

PG_ADMIN_URL = os.environ.get("HAVAINTO_TEST_DATABASE_URL", "")


def _asyncpg_dsn(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def pg_url(name: str) -> str:
    """The SQLAlchemy URL of the database ``name`` on the test server."""
    return (
        make_url(PG_ADMIN_URL)
        .set(drivername="postgresql+asyncpg", database=name)
        .render_as_string(hide_password=False)
    )


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(PG_ADMIN_URL))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_pg_database(template: str | None = None) -> str:
    """A new database on the test server, empty or a copy of ``template``: its URL."""
    name = "havainto_t_" + secrets.token_hex(6)
    copy = f' TEMPLATE "{template}"' if template else ""
    await _admin(f'CREATE DATABASE "{name}"{copy}')
    return pg_url(name)


async def drop_pg_database(url: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


class MigratedTemplates:
    """One database per backend migrated to the newest revision, made on first use."""

    def __init__(self) -> None:
        self._folder: Path | None = None
        self._sqlite: Path | None = None
        self._pg: str | None = None

    async def sqlite_copy(self, target: Path) -> str:
        """A migrated SQLite database at ``target`` (a file copy): its URL."""
        if self._sqlite is None:
            self._folder = Path(tempfile.mkdtemp(prefix="havainto-templates-"))
            path = self._folder / "template.db"
            db = Database(f"sqlite+aiosqlite:///{path}")
            await db.upgrade()
            await db.close()  # the last connection checkpoints the WAL into the file
            assert not path.with_name(path.name + "-wal").exists()
            self._sqlite = path
        shutil.copyfile(self._sqlite, target)
        return f"sqlite+aiosqlite:///{target}"

    async def pg_copy(self) -> str:
        """A new migrated PostgreSQL database (``CREATE DATABASE ... TEMPLATE``): its URL."""
        if self._pg is None:
            url = await create_pg_database()
            db = Database(url)
            await db.upgrade()
            await db.close()  # a template must have no connections while it is copied
            self._pg = make_url(url).database
        return await create_pg_database(template=self._pg)

    async def drop(self) -> None:
        """Remove the templates (at the end of the test session)."""
        if self._pg is not None:
            await drop_pg_database(pg_url(self._pg))
            self._pg = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = self._sqlite = None


TEMPLATES = MigratedTemplates()
