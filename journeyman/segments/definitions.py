"""The segments, defined in code: a name, what it is for, and who is in it.

Add one by appending a `Segment` to `SEGMENTS`; the API lists it, journeys can branch on it
(`in_segment`), enter on it (`entry_segment`) or enroll it on a schedule. Vocabulary: see
`journeyman.segments.predicates` (contact fields, attributes, consent, suppression, dormancy,
lead score decayed to now, event history in a time window; `&`, `|`, `~`).
"""

from __future__ import annotations

from journeyman.segments.predicates import (
    attribute,
    consent,
    contact_field,
    days,
    dormant,
    email_suppressed,
    events,
    known_for,
    prop,
    qualified_score,
)
from journeyman.segments.segment import Segment

INACTIVE_30D = Segment(
    name="inactive_30d",
    description=(
        "Reachable by marketing email, known for over 30 days, and no activity in the last 30 "
        "days: the re-engagement audience."
    ),
    predicate=(
        contact_field("email").present()
        & consent("email")
        & ~email_suppressed()
        & ~dormant()
        & known_for(days(30))
        & events(None, within=days(30)).none()
    ),
)

TV_BROWSERS_NOT_BUYERS = Segment(
    name="tv_browsers_not_buyers",
    description="Viewed a TV at least twice in the last 7 days and ordered nothing since.",
    predicate=(
        events("product_viewed", within=days(7), where=[prop("category").equals("tv")]).at_least(2)
        & events("order_placed", within=days(7)).none()
    ),
)

QUALIFIED_LEADS = Segment(
    name="qualified_leads",
    description="Lead score (decayed to now) at or above the qualify line.",
    predicate=qualified_score(),
)

BIRTHDAY_CANDIDATES = Segment(
    name="birthday_candidates",
    description=(
        'attributes.birthday ("MM-DD" or "YYYY-MM-DD") is today, yesterday or tomorrow in UTC: '
        "somewhere on Earth it may be their birthday today; the birthday journey picks the "
        "local day. A 29 February birthday counts on 28 February in other years."
    ),
    predicate=attribute("birthday").month_day_near(days=1),
)

SEGMENTS: tuple[Segment, ...] = (
    INACTIVE_30D,
    TV_BROWSERS_NOT_BUYERS,
    QUALIFIED_LEADS,
    BIRTHDAY_CANDIDATES,
)
