"""Two SQL expressions whose spelling differs between SQLite and PostgreSQL, written once.

Predicates build SQLAlchemy expressions from these; the dialect picks the spelling when the
statement compiles, so a segment's definition is the same code on both databases.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class json_kind(FunctionElement[str]):
    """The JSON type of `column[key]`, normalised across dialects: 'string', 'number',
    'true', 'false', 'null', 'object', 'array', or NULL when the key is absent.

    Booleans are split into 'true' and 'false' so that "equals True" needs no cast (a cast
    of a non-boolean value fails on PostgreSQL even behind a false AND).
    """

    type = String()
    name = "json_kind"
    inherit_cache = True


@compiles(json_kind, "sqlite")
def _json_kind_sqlite(element: json_kind, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(clause, **kw) for clause in element.clauses)
    kind = f"json_type({column}, '$.' || {key})"
    return (
        f"(CASE {kind} WHEN 'text' THEN 'string' WHEN 'integer' THEN 'number' "
        f"WHEN 'real' THEN 'number' ELSE {kind} END)"
    )


@compiles(json_kind, "postgresql")
def _json_kind_postgresql(element: json_kind, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(clause, **kw) for clause in element.clauses)
    kind = f"json_typeof(({column}) -> {key})"
    return f"(CASE {kind} WHEN 'boolean' THEN (({column}) ->> {key}) ELSE {kind} END)"


class seconds_between(FunctionElement[float]):
    """`later - earlier` in seconds, both timestamps (with time zone)."""

    type = Float()
    name = "seconds_between"
    inherit_cache = True


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(clause, **kw) for clause in element.clauses)
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC); julianday reads that format.
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


@compiles(seconds_between, "postgresql")
def _seconds_postgresql(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) AS DOUBLE PRECISION)"
