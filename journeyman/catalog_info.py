"""The catalog as an operator sees it: every journey version, and how many run on each.

New enrollments start on the newest version of a journey; running ones finish on the version
they started with, so an older version stays in the code until none runs on it. The counts
say when that is: an old version with `active == 0` can be deleted (after its recorded
histories). A version with active enrollments that the code no longer has is listed too
(`in_code` False): those enrollments are stuck until it is put back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlmodel import col

from persistence import Database
from persistence.models import Enrollment
from workflows import catalog


@dataclass(frozen=True)
class JourneyVersionInfo:
    name: str
    version: int
    description: str
    triggers: tuple[str, ...]
    # Where new enrollments go: the highest version in the code.
    newest: bool
    # Enrollments with status `active` on this version.
    active: int
    in_code: bool = True


async def active_counts(database: Database) -> dict[tuple[str, int], int]:
    """Active enrollments per (journey, version), from the enrollments table."""
    statement = (
        select(col(Enrollment.journey), col(Enrollment.version), func.count())
        .where(col(Enrollment.status) == "active")
        .group_by(col(Enrollment.journey), col(Enrollment.version))
    )
    async with database.session() as session:
        connection = await session.connection()
        rows = (await connection.execute(statement)).all()
    return {(journey, version): count for journey, version, count in rows}


async def catalog_overview(database: Database) -> list[JourneyVersionInfo]:
    """Every journey version in the code, plus versions gone from the code that still have
    active enrollments; by journey name, then version."""
    counts = await active_counts(database)
    newest = {cls.name: cls.version for cls in catalog.latest()}
    found: dict[tuple[str, int], JourneyVersionInfo] = {}
    for cls in catalog.all_versions():
        found[(cls.name, cls.version)] = JourneyVersionInfo(
            name=cls.name,
            version=cls.version,
            description=cls.description,
            triggers=tuple(cls.triggers),
            newest=cls.version == newest[cls.name],
            active=counts.get((cls.name, cls.version), 0),
        )
    for (name, version), active in counts.items():
        if (name, version) not in found:
            found[(name, version)] = JourneyVersionInfo(
                name=name,
                version=version,
                description="",
                triggers=(),
                newest=False,
                active=active,
                in_code=False,
            )
    return [found[key] for key in sorted(found)]
