"""Templates render from one environment: escaped HTML, strict variables, absolute links."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities import RenderedEmail, TemplateRenderer
from journeyman.settings import Settings
from workflows.content import pick_content
from workflows.contracts import ERR_TEMPLATE, ContactSnapshot

from .samples import CART, ORDER, SCENARIOS, contact, event

SETTINGS = Settings(
    public_url="https://shop.example.com/",
    email_from="Acme Outfitters <hello@shop.example.com>",
)


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "sandboxed"])
def renderer(request: pytest.FixtureRequest) -> TemplateRenderer:
    return TemplateRenderer.from_settings(SETTINGS, sandboxed=request.param)


def render(
    renderer: TemplateRenderer,
    template: str,
    *,
    who: ContactSnapshot | None = None,
    **overrides: Any,
) -> RenderedEmail:
    journey, step, trigger, step_context = SCENARIOS[template]
    context = renderer.context(
        contact=who or contact(),
        event=trigger,
        journey=journey,
        step=step,
        step_context={**step_context, **overrides},
    )
    return renderer.render_email(template, context)


def assert_template_error(err: pytest.ExceptionInfo[ApplicationError], *words: str) -> None:
    assert err.value.type == ERR_TEMPLATE
    assert err.value.non_retryable
    for word in words:
        assert word in err.value.message


@pytest.mark.parametrize("template", sorted(SCENARIOS))
def test_every_journey_template_renders_all_three_parts(
    renderer: TemplateRenderer, template: str
) -> None:
    email = render(renderer, template)

    assert email.subject and "\n" not in email.subject
    assert email.text.startswith("Hi Ada,")
    assert "<p>Hi Ada,</p>" in email.html
    assert email.html.lstrip().startswith("<!DOCTYPE html>")
    assert "Acme Outfitters" in email.text and "Acme Outfitters" in email.html
    for part in (email.subject, email.text, email.html):
        assert "None" not in part and "Undefined" not in part


def test_welcome_greets_without_a_first_name(renderer: TemplateRenderer) -> None:
    email = render(renderer, "welcome_series/welcome", who=contact(first_name=None))

    assert email.subject == "Welcome to Acme Outfitters, friend"
    assert email.text.startswith("Hi there,")


def test_topic_features_the_pick_with_an_absolute_link(renderer: TemplateRenderer) -> None:
    webinar = pick_content(["automation"], 1)
    email = render(renderer, "welcome_series/topic", number=2, pick=webinar)

    assert webinar["kind"] == "webinar"
    assert email.subject == f"Save your seat: {webinar['title']}"
    link = f"https://shop.example.com{webinar['path']}"
    assert link in email.text
    assert f'href="{link}"' in email.html
    assert "you care about automation" in email.text


def test_cart_reminders_list_every_item_with_its_price(renderer: TemplateRenderer) -> None:
    for template in ("abandoned_cart/reminder", "abandoned_cart/last_chance"):
        email = render(renderer, template)

        assert "1 x Trail Runner 2  $129.00" in email.text
        assert "2 x Merino hiking socks  $14.50" in email.text
        assert "Merino hiking socks" in email.html and "$14.50" in email.html
        # The cart_url from the event is kept, with its query string escaped in HTML.
        assert CART["cart_url"] in email.text
        assert "cart-7?utm_source=journeyman" in email.html
    assert render(renderer, "abandoned_cart/reminder").subject == (
        "Still thinking about the Trail Runner 2?"
    )


def test_cart_link_defaults_to_the_public_cart_page(renderer: TemplateRenderer) -> None:
    without_url = {key: value for key, value in CART.items() if key != "cart_url"}
    journey, step, trigger, _ = SCENARIOS["abandoned_cart/reminder"]
    context = renderer.context(
        contact=contact(), event=trigger, journey=journey, step=step, step_context=without_url
    )
    email = renderer.render_email("abandoned_cart/reminder", context)

    assert "https://shop.example.com/cart/cart-7" in email.text


def test_prices_in_another_currency(renderer: TemplateRenderer) -> None:
    email = render(renderer, "post_purchase/thank_you", currency="EUR")

    assert "€129.00" in email.text
    assert "Total: €129.00" in email.text


def test_review_request_links_related_products_absolutely(renderer: TemplateRenderer) -> None:
    email = render(renderer, "post_purchase/review_request")

    assert "Waterproof gaiters: https://shop.example.com/products/gaiters" in email.text
    assert 'href="https://shop.example.com/products/vest"' in email.html
    assert "https://shop.example.com/orders/A-1001/review" in email.text


def test_review_request_without_related_products(renderer: TemplateRenderer) -> None:
    order = {key: value for key, value in ORDER.items() if key != "related_products"}
    journey, step, trigger, _ = SCENARIOS["post_purchase/review_request"]
    context = renderer.context(
        contact=contact(), event=trigger, journey=journey, step=step, step_context=order
    )
    email = renderer.render_email("post_purchase/review_request", context)

    assert "go well with it" not in email.text


def test_links_with_other_schemes_cannot_reach_the_inbox(renderer: TemplateRenderer) -> None:
    hostile = [{"name": "Free gift", "url": "javascript:alert(document.cookie)"}]
    email = render(renderer, "post_purchase/review_request", related_products=hostile)

    assert 'href="javascript:' not in email.html
    assert 'href="https://shop.example.com/javascript:' in email.html


def test_contact_attributes_are_escaped_in_html_only(renderer: TemplateRenderer) -> None:
    script = "<script>alert(1)</script>"
    email = render(renderer, "welcome_series/welcome", who=contact(first_name=script))

    assert "<script>" not in email.html
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt;," in email.html
    # Plain text and the subject are not HTML: escaping them would only garble the name.
    assert email.text.startswith(f"Hi {script},")
    assert email.subject.endswith(script)


def test_event_properties_are_in_the_context(renderer: TemplateRenderer) -> None:
    context = renderer.context(
        contact=contact(),
        event=event("cart_abandoned", CART),
        journey="abandoned_cart",
        step="first_reminder",
        step_context={"step": "spoofed", "extra": 1},
    )

    assert context["event"]["name"] == "cart_abandoned"
    assert context["event"]["cart_id"] == "cart-7"
    assert context["step"] == "first_reminder"  # the renderer's names win over a step's
    assert context["extra"] == 1
    assert context["public_url"] == "https://shop.example.com"


def test_undefined_variable_is_a_non_retryable_template_error(
    renderer: TemplateRenderer,
) -> None:
    journey, step, trigger, _ = SCENARIOS["abandoned_cart/reminder"]
    context = renderer.context(
        contact=contact(), event=trigger, journey=journey, step=step, step_context={}
    )
    with pytest.raises(ApplicationError) as err:
        renderer.render_email("abandoned_cart/reminder", context)

    assert_template_error(err, "abandoned_cart/reminder.subject.txt", "'items' is undefined")


def test_missing_template_is_a_non_retryable_template_error(renderer: TemplateRenderer) -> None:
    with pytest.raises(ApplicationError) as err:
        renderer.render_email("welcome_series/nope", {})

    assert_template_error(err, "welcome_series/nope.subject.txt", "TemplateNotFound")


def test_template_names_cannot_leave_the_templates_directory(
    renderer: TemplateRenderer,
) -> None:
    with pytest.raises(ApplicationError) as err:
        renderer.render("../pyproject.toml", {})

    assert_template_error(err, "TemplateNotFound")


def test_sandbox_keeps_user_templates_away_from_python(tmp_path: Path) -> None:
    (tmp_path / "user.txt").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    trusted = TemplateRenderer(tmp_path, public_url="https://shop.example.com", sandboxed=False)
    # The sandbox is what a renderer gets unless it asks otherwise.
    sandboxed = TemplateRenderer(tmp_path, public_url="https://shop.example.com")

    assert "class" in trusted.render("user.txt", {})
    with pytest.raises(ApplicationError) as err:
        sandboxed.render("user.txt", {})
    assert_template_error(err, "SecurityError")


def test_templates_are_compiled_once(renderer: TemplateRenderer) -> None:
    first = renderer.environment.get_template("welcome_series/welcome.html")
    render(renderer, "welcome_series/welcome")

    assert renderer.environment.get_template("welcome_series/welcome.html") is first


def test_a_receipt_still_goes_out_for_an_order_event_without_items(
    renderer: TemplateRenderer,
) -> None:
    # Backends do send bare `order_placed` events; the thank-you doubles as the receipt, so it
    # must not fail on them (other templates stay strict about what they need).
    context = renderer.context(
        contact=contact(),
        event=event("order_placed", {"order_id": "o-9"}),
        journey="post_purchase",
        step="thank_you",
        step_context={"order_id": "o-9"},
    )
    email = renderer.render_email("post_purchase/thank_you", context)
    assert "Order o-9" in email.text
    assert "o-9" in email.html


def test_the_comeback_and_birthday_emails_carry_their_code(renderer: TemplateRenderer) -> None:
    comeback = render(renderer, "reengagement/we_miss_you")
    birthday = render(renderer, "birthday/greeting")

    assert comeback.subject == "We miss you, Ada: 15% off to come back"
    assert birthday.subject == "Happy birthday, Ada!"
    for email, code in ((comeback, "COMEBACK15"), (birthday, "HAPPYBDAY20")):
        assert code in email.text and code in email.html
