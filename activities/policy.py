"""Send-time rules that need no database: the moment of decision, quiet hours, the unsubscribe link.

Frequency caps need the database and a lock; they are in `activities.caps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time

from temporalio import activity

from activities.localtime import quiet_until, zone_for
from journeyman.settings import Settings
from journeyman.unsubscribe import unsubscribe_url
from persistence import Contact
from persistence.models import CONSENT_CHANNELS
from workflows.contracts import HoldPolicy, SendRequest

QUIET_HOURS = "quiet_hours"
FREQUENCY_CAP = "frequency_cap"
DORMANT = "dormant"


@dataclass(frozen=True)
class Hold:
    """A send held back: `skip` records it suppressed with `reason`; `defer` retries at `until`."""

    reason: str
    policy: HoldPolicy
    until: datetime


def send_time() -> datetime:
    """The instant a send's policy is decided at, from inside the send activity.

    It is the attempt's scheduled time, which is the workflow's clock: in the time-skipping
    test server that is the skipped time, so quiet hours and caps behave in tests as they do
    over real days. It is never earlier than the wall clock, though: a worker that was down
    for an hour must not decide a send due at 20:59 as if it were still 20:59 at 21:59. The
    skipped clock never runs behind the wall clock, so tests are unaffected.
    """
    scheduled = activity.info().current_attempt_scheduled_time
    return max(scheduled, datetime.now(UTC)).astimezone(UTC)


def needs_consent(request: SendRequest) -> bool:
    return request.category == "marketing"


def held_as_dormant(request: SendRequest, contact: Contact) -> bool:
    """List hygiene: a contact a re-engagement journey found dormant gets no marketing email
    until their next event clears the mark; receipts and other transactional email still go.
    """
    return (
        request.category == "marketing"
        and request.channel == "email"
        and contact.dormant_at is not None
    )


def quiet_hold(
    now: datetime, request: SendRequest, contact: Contact, settings: Settings
) -> Hold | None:
    """Whether quiet hours hold this send back at `now`, and until when.

    Only marketing sends have quiet hours: the step's or journey's (`request.quiet_hours`) if
    given, else the global ones; they are local to the contact's zone, else the journey's
    fallback zone, else the global default. Raises ValueError for malformed hours.
    """
    if request.category != "marketing":
        return None
    window = _quiet_window(request, settings)
    if window is None:
        return None
    start, end, policy = window
    zone = zone_for(contact.timezone, request.default_timezone, settings.default_timezone)
    until = quiet_until(now, zone, start, end)
    return Hold(QUIET_HOURS, policy, until) if until is not None else None


def _quiet_window(request: SendRequest, settings: Settings) -> tuple[time, time, HoldPolicy] | None:
    hours = request.quiet_hours
    if hours is not None:
        if not hours.enabled:
            return None
        return time.fromisoformat(hours.start), time.fromisoformat(hours.end), hours.policy
    window = settings.quiet_window
    if window is None:
        return None
    return window[0], window[1], settings.quiet_hours_policy


def unsubscribe_link(request: SendRequest, settings: Settings) -> str | None:
    """The one-click link every marketing message carries; None for transactional ones.

    Only channels with a consent flag have a link: unsubscribing from a webhook means nothing.
    """
    if request.category != "marketing" or request.channel not in CONSENT_CHANNELS:
        return None
    return unsubscribe_url(settings, request.contact_id, request.channel)
