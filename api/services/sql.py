"""SQL that both dialects spell differently."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession


async def insert_if_absent(
    session: AsyncSession,
    dialect: str,
    model: type[SQLModel],
    key: Mapped[str],
    values: dict[str, Any],
) -> bool:
    """`INSERT ... ON CONFLICT DO NOTHING` in the session's transaction; True if it inserted.

    Race-free "create unless it exists". Whether a row was inserted is read from RETURNING:
    the driver's rowcount is not reliable for this statement (psycopg reports -1).
    """
    statement = dialect_insert(dialect, model).values(**values).on_conflict_do_nothing()
    result = await session.exec(statement.returning(key))
    return result.first() is not None


def dialect_insert(dialect: str, target: type[SQLModel] | Table) -> Any:
    """The dialect's INSERT, which knows `ON CONFLICT` (both spell it alike from there on)."""
    if dialect == "postgresql":
        return postgresql.insert(target)
    if dialect == "sqlite":
        return sqlite.insert(target)
    raise NotImplementedError(f"unsupported database dialect {dialect!r}")
