"""Small database helpers for tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from storage.db import Database


async def count(db: Database, model: Any) -> int:
    """How many rows the table of ``model`` has."""
    async with db.transaction() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def rows(db: Database, model: Any, *where: Any) -> list[Any]:
    """The rows of ``model`` that match ``where``."""
    async with db.transaction() as session:
        return list((await session.execute(select(model).where(*where))).scalars().all())
