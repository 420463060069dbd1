"""The catalog with versions and active counts, read from the enrollments table."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlmodel import col, delete

from journeyman.catalog_info import JourneyVersionInfo, catalog_overview
from persistence import Database
from persistence.models import Enrollment
from workflows import catalog


@pytest.fixture
async def rows(database: Database) -> AsyncIterator[list[Enrollment]]:
    """Enrollment rows the test adds; removed afterwards, the database being the session's."""
    added: list[Enrollment] = []
    yield added
    async with database.session() as session:
        await session.exec(
            delete(Enrollment).where(col(Enrollment.run_id).in_([r.run_id for r in added]))
        )
        await session.commit()


async def add(
    database: Database, rows: list[Enrollment], journey: str, version: int, status: str
) -> None:
    row = Enrollment(
        run_id=uuid.uuid4().hex,
        workflow_id=f"journey:{journey}:{uuid.uuid4().hex[:8]}",
        journey=journey,
        version=version,
        contact_id=f"c-{uuid.uuid4().hex[:8]}",
        status=status,
        entered_at=datetime.now(UTC),
    )
    async with database.session() as session:
        session.add(row)
        await session.commit()
    rows.append(row)


def by_key(infos: list[JourneyVersionInfo]) -> dict[tuple[str, int], JourneyVersionInfo]:
    return {(info.name, info.version): info for info in infos}


async def test_every_version_in_the_code_is_listed_with_the_newest_marked(
    database: Database,
) -> None:
    overview = await catalog_overview(database)

    assert [(i.name, i.version) for i in overview if i.in_code] == sorted(
        (cls.name, cls.version) for cls in catalog.all_versions()
    )
    newest = {(i.name, i.version) for i in overview if i.newest}
    assert newest == {(cls.name, cls.version) for cls in catalog.latest()}
    cart = by_key(overview)
    assert (cart[("abandoned_cart", 1)].newest, cart[("abandoned_cart", 2)].newest) == (False, True)
    assert cart[("abandoned_cart", 2)].triggers == ("cart_abandoned",)
    assert cart[("abandoned_cart", 2)].description == catalog.get("abandoned_cart").description


async def test_active_enrollments_are_counted_per_version(
    database: Database, rows: list[Enrollment]
) -> None:
    before = by_key(await catalog_overview(database))
    for version, status in (
        (1, "active"),
        (1, "active"),
        (1, "completed"),
        (2, "active"),
        (2, "exited"),
    ):
        await add(database, rows, "abandoned_cart", version, status)

    after = by_key(await catalog_overview(database))

    for version, added in ((1, 2), (2, 1)):
        key = ("abandoned_cart", version)
        assert after[key].active - before[key].active == added


async def test_a_removed_version_with_active_enrollments_is_listed_as_not_in_the_code(
    database: Database, rows: list[Enrollment]
) -> None:
    retired = f"retired_{uuid.uuid4().hex[:8]}"
    await add(database, rows, retired, 3, "active")
    await add(database, rows, retired, 3, "active")
    await add(database, rows, retired, 2, "completed")

    overview = [info for info in await catalog_overview(database) if info.name == retired]

    assert overview == [
        JourneyVersionInfo(
            name=retired,
            version=3,
            description="",
            triggers=(),
            newest=False,
            active=2,
            in_code=False,
        )
    ]
