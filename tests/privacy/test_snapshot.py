"""What `read_contact` hands a workflow: no address and no name, yet the journeys still
branch as before (the abandoned cart's channel choice reads `has_email`/`has_phone`, and the
histories recorded before, which carry the address, replay to the same choice)."""

from __future__ import annotations

import pytest

from workflows.abandoned_cart import second_reminder_channel
from workflows.contracts import PERSONAL_ATTRIBUTES, ContactSnapshot
from workflows.lead_nurturing import lead_label


def snapshot(email: str | None, phone: str | None, sms: bool) -> ContactSnapshot:
    return ContactSnapshot(
        contact_id="c-7",
        exists=True,
        email=email,
        phone=phone,
        attributes={"first_name": "Ada", "last_name": "Lovelace", "company": "AE", "tier": 2},
        consent={"email": True, "sms": sms, "push": True},
        score=61.0,
        qualified=True,
    )


def test_for_workflow_drops_addresses_and_names_and_keeps_the_facts() -> None:
    full = snapshot("ada@example.com", "+44 20 7946 0000", sms=True)

    slim = full.for_workflow()

    assert (slim.email, slim.phone, slim.has_email, slim.has_phone) == (None, None, True, True)
    assert slim.attributes == {"company": "AE", "tier": 2}
    assert (slim.consent, slim.score, slim.qualified) == (full.consent, 61.0, True)
    assert not PERSONAL_ATTRIBUTES & set(slim.attributes)
    # The sales alert's subject names the lead by id then (the email names them in full).
    assert lead_label(slim) == "c-7 (AE)"


@pytest.mark.parametrize(
    ("email", "phone", "sms", "channel"),
    [
        (None, "+393331234567", True, "sms"),
        ("ada@example.com", "+393331234567", True, "email"),
        (None, "+393331234567", False, "email"),
        (None, None, True, "email"),
    ],
)
def test_the_channel_choice_is_the_same_with_or_without_the_address(
    email: str | None, phone: str | None, sms: bool, channel: str
) -> None:
    full = snapshot(email, phone, sms)
    assert second_reminder_channel(full) == channel  # as recorded histories carry it
    assert second_reminder_channel(full.for_workflow()) == channel
