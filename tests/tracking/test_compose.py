"""Composition: web links become signed click URLs, the original URLs are kept in order, the
pixel goes before </body>, and nothing else in the email changes."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from email.message import EmailMessage

import pytest
from temporalio.testing import ActivityEnvironment

from activities import JourneyActivities, TemplateRenderer
from activities.tracking import track_html
from journeyman.settings import Settings
from journeyman.signing import Signer, read_tracking
from journeyman.smtp_sink import SmtpSink
from persistence import Contact, Database, Message
from workflows.contracts import SendRequest, StartJourneyRequest, StartJourneyResult

PUBLIC = "https://t.example.com"
SIGNER = Signer("test-secret")
UNSUBSCRIBE = "https://t.example.com/u/abc.def?x=1&y=2"
DOCUMENT = f"""<!DOCTYPE html>
<html><head><title>Hi</title></head>
<body>
<!-- <a href="https://in-a-comment.example/">not a link</a> -->
<p><a class="b" href="https://shop.example/cart?id=7&amp;utm=mail">Cart</a>
<a href='mailto:help@shop.example'>Mail us</a> <a href="tel:+123">Call</a>
<a href="#top">Top</a> <a name="anchor">Anchor</a> <a href="/relative">Relative</a>
<a title="see href=https://title.example/" HREF=http://plain.example/b>Plain</a>
<a data-href="https://data.example/" href="https://shop.example/cart?id=7&amp;utm=mail">Again</a>
<a href="{UNSUBSCRIBE.replace("&", "&amp;")}">Unsubscribe</a></p>
<script>var s = '<a href="https://in-a-script.example/">';</script>
</body>
</html>
"""


def tracked(message_id: str = "journey:x:c-1:run-1:ask") -> tuple[str, list[str]]:
    result = track_html(
        DOCUMENT,
        message_id=message_id,
        public_url=f"{PUBLIC}/",
        signer=SIGNER,
        keep=frozenset({UNSUBSCRIBE}),
    )
    return result.html, result.links


def click_tokens(document: str) -> list[str]:
    return re.findall(rf'href="{re.escape(PUBLIC)}/t/c/([^"]+)"', document, re.IGNORECASE)


def test_web_links_become_click_urls_naming_their_index_and_originals_are_kept() -> None:
    document, links = tracked()

    assert links == [
        "https://shop.example/cart?id=7&utm=mail",
        "http://plain.example/b",
        "https://shop.example/cart?id=7&utm=mail",
    ]
    tokens = click_tokens(document)
    assert len(tokens) == 3
    claims = [
        read_tracking(SIGNER, token, click=True, max_age=timedelta(days=1)) for token in tokens
    ]
    assert [(c.message_id, c.link) for c in claims] == [
        ("journey:x:c-1:run-1:ask", 0),
        ("journey:x:c-1:run-1:ask", 1),
        ("journey:x:c-1:run-1:ask", 2),
    ]
    # The rest of each tag is kept as written.
    assert '<a class="b" href="https://t.example.com/t/c/' in document
    assert '<a title="see href=https://title.example/" HREF="https://t.example.com/t/c/' in document
    assert '<a data-href="https://data.example/" href="https://t.example.com/t/c/' in document


def test_other_links_comments_scripts_and_the_unsubscribe_link_are_untouched() -> None:
    document, _links = tracked()

    for kept in (
        "<a href='mailto:help@shop.example'>",
        '<a href="tel:+123">',
        '<a href="#top">',
        '<a name="anchor">',
        '<a href="/relative">',
        '<!-- <a href="https://in-a-comment.example/">not a link</a> -->',
        '<a href="https://in-a-script.example/">',
        '<a href="https://t.example.com/u/abc.def?x=1&amp;y=2">Unsubscribe</a>',
    ):
        assert kept in document
    # Outside the rewritten hrefs and the pixel, the document is byte for byte the same.
    restored = re.sub(r'href="https://t\.example\.com/t/c/[^"]+"', "HREF", document, flags=re.I)
    restored = re.sub(r'<img src="https://t\.example\.com/t/o/[^"]+"[^>]*>', "", restored)
    original = re.sub(
        r"""href="https://shop[^"]+"|HREF=http://plain\.example/b""", "HREF", DOCUMENT
    )
    assert restored == original


def test_the_open_pixel_goes_just_before_the_end_of_the_body() -> None:
    document, _links = tracked()

    match = re.search(
        r'<img src="https://t\.example\.com/t/o/([^"]+)" width="1" height="1" alt=""></body>',
        document,
    )
    assert match is not None
    claim = read_tracking(SIGNER, match.group(1), click=False, max_age=timedelta(days=1))
    assert (claim.message_id, claim.link) == ("journey:x:c-1:run-1:ask", None)


def test_a_fragment_without_body_gets_the_pixel_at_the_end() -> None:
    result = track_html("<p>hi</p>", message_id="m", public_url=PUBLIC, signer=SIGNER)
    assert result.html.startswith("<p>hi</p><img src=")
    assert result.links == []


def test_composing_again_gives_the_same_links_and_tokens_naming_the_same_claims() -> None:
    first_document, first_links = tracked()
    second_document, second_links = tracked()

    assert first_links == second_links
    max_age = timedelta(days=1)
    first = [
        read_tracking(SIGNER, t, click=True, max_age=max_age) for t in click_tokens(first_document)
    ]
    second = [
        read_tracking(SIGNER, t, click=True, max_age=max_age) for t in click_tokens(second_document)
    ]
    assert first == second


def test_another_message_gets_tokens_for_its_own_id() -> None:
    document, _links = tracked("journey:x:c-2:run-9:ask")
    claims = [
        read_tracking(SIGNER, t, click=True, max_age=timedelta(days=1))
        for t in click_tokens(document)
    ]
    assert {claim.message_id for claim in claims} == {"journey:x:c-2:run-9:ask"}


# ----- through the send activity -----------------------------------------------------------


class _NoStarter:
    async def __call__(self, request: StartJourneyRequest) -> StartJourneyResult:
        raise AssertionError("not used")


def _settings(sink: SmtpSink) -> Settings:
    return Settings(
        smtp_host=sink.host,
        smtp_port=sink.port,
        smtp_timeout_seconds=5,
        public_url="https://shop.example.com",
        secret_key="test-secret",
        quiet_hours="",
    )


def _parts(message: EmailMessage) -> tuple[str, str]:
    html_part = message.get_body(preferencelist=("html",))
    text_part = message.get_body(preferencelist=("plain",))
    assert html_part is not None and text_part is not None
    return str(html_part.get_content()), str(text_part.get_content())


@pytest.mark.parametrize("category", ["marketing", "transactional"])
async def test_the_sent_email_is_tracked_and_the_claim_keeps_its_links(
    database: Database, sink: SmtpSink, category: str
) -> None:
    settings = _settings(sink)
    activities = JourneyActivities(
        database=database,
        settings=settings,
        renderer=TemplateRenderer.from_settings(settings),
        starter=_NoStarter(),
    )
    contact_id = f"c-{uuid.uuid4().hex[:10]}"
    async with database.session() as session:
        session.add(Contact(contact_id=contact_id, email="ada@example.com"))
        await session.commit()
    workflow_id = f"journey:abandoned_cart:{contact_id}:cart-7"
    request = SendRequest(
        message_id=f"{workflow_id}:run-1:first_reminder",
        workflow_id=workflow_id,
        run_id=str(uuid.uuid4()),
        journey="abandoned_cart",
        version=1,
        step="first_reminder",
        contact_id=contact_id,
        channel="email",
        template="abandoned_cart/reminder",
        context={"cart_id": "cart-7", "currency": "EUR", "items": []},
        category=category,  # type: ignore[arg-type]
    )

    result = await ActivityEnvironment().run(activities.send_message, request)

    assert result.status == "sent"
    [received] = sink.messages
    html, text = _parts(received)
    async with database.session() as session:
        row = await session.get(Message, request.message_id)
    assert row is not None
    # The brand link of the layout and the cart button, in document order.
    assert row.links == ["https://shop.example.com", "https://shop.example.com/cart/cart-7"]
    tokens = re.findall(r'href="https://shop\.example\.com/t/c/([^"]+)"', html)
    assert len(tokens) == 2
    assert 'src="https://shop.example.com/t/o/' in html
    # The text part keeps the real destination.
    assert "https://shop.example.com/cart/cart-7" in text
    assert "/t/c/" not in text and "/t/o/" not in text
    unsubscribe = re.findall(r'href="(https://shop\.example\.com/u/[^"]+)"', html)
    if category == "marketing":
        # The footer's unsubscribe link is the one in the header, not a tracked redirect.
        assert unsubscribe and received["List-Unsubscribe"] == f"<{unsubscribe[0]}>"
    else:
        assert unsubscribe == []
