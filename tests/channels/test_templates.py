"""SMS and push templates: short, strict about variables, optional parts really optional."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.rendering import RenderedPush, TemplateRenderer
from workflows.contracts import ERR_TEMPLATE, ContactSnapshot, Event

from ..activities.samples import CART, ORDER
from .helpers import settings_for

SETTINGS = settings_for("http://unused.invalid")
LAST_CHANCE = "abandoned_cart/last_chance"
THANK_YOU = "post_purchase/thank_you"


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "sandboxed"])
def renderer(request: pytest.FixtureRequest) -> TemplateRenderer:
    return TemplateRenderer.from_settings(SETTINGS, sandboxed=request.param)


def context(renderer: TemplateRenderer, journey: str, **step_context: Any) -> dict[str, Any]:
    who = ContactSnapshot(
        contact_id="c-42", exists=True, phone="+442079460958", attributes={"first_name": "Ada"}
    )
    trigger = Event(id="evt-1", contact_id="c-42", name="cart_abandoned", properties=step_context)
    return renderer.context(
        contact=who, event=trigger, journey=journey, step="step", step_context=step_context
    )


def sms(renderer: TemplateRenderer, **step_context: Any) -> str:
    return renderer.render_sms(LAST_CHANCE, context(renderer, "abandoned_cart", **step_context))


def test_last_chance_sms_names_the_first_item_the_rest_and_the_link(
    renderer: TemplateRenderer,
) -> None:
    text = sms(renderer, **CART)

    assert text == (
        "Acme Outfitters: your cart with the Trail Runner 2 (+1 more) is still waiting.\n"
        f"{CART['cart_url']}\n"
        "Reply STOP to opt out"
    )
    assert len(text) <= 160


def test_last_chance_sms_offers_the_coupon_when_there_is_one(renderer: TemplateRenderer) -> None:
    assert "Use code SAVE10 at checkout.\n" in sms(renderer, **CART, coupon="SAVE10")
    assert "Use code TAKE5 at checkout.\n" in sms(renderer, **CART, coupon={"code": "TAKE5"})
    for no_coupon in (None, ""):
        assert "code" not in sms(renderer, **CART, coupon=no_coupon)


def test_last_chance_sms_for_one_item_or_none(renderer: TemplateRenderer) -> None:
    one = sms(renderer, cart_id="cart-7", items=[{"name": "Trail Runner 2"}])
    none = sms(renderer, cart_id="cart-7")

    assert one.startswith("Acme Outfitters: your cart with the Trail Runner 2 is still waiting.")
    # Without a cart_url the link is the public cart page.
    assert none == (
        "Acme Outfitters: your cart is still waiting.\n"
        "https://shop.example.com/cart/cart-7\n"
        "Reply STOP to opt out"
    )


def test_thank_you_push_has_a_one_line_title_and_a_short_body(
    renderer: TemplateRenderer,
) -> None:
    push = renderer.render_push(THANK_YOU, context(renderer, "post_purchase", **ORDER))
    several = renderer.render_push(
        THANK_YOU,
        context(renderer, "post_purchase", order_id="A-2", items=[{"name": "a"}, {"name": "b"}]),
    )
    bare = renderer.render_push(THANK_YOU, context(renderer, "post_purchase", order_id="A-3"))

    assert push == RenderedPush(
        title="Thank you for your order A-1001",
        body=(
            "Your Trail Runner 2 will be on the way soon. "
            "Thank you for shopping with Acme Outfitters."
        ),
    )
    assert several.body.startswith("Your a and 1 more will be on the way soon.")
    assert bare.body == (
        "We are getting your order ready. Thank you for shopping with Acme Outfitters."
    )


def test_a_missing_variable_is_still_an_error(renderer: TemplateRenderer) -> None:
    # The cart link needs `cart_id` when the event has no `cart_url`.
    with pytest.raises(ApplicationError) as err:
        sms(renderer, items=CART["items"])

    assert err.value.type == ERR_TEMPLATE and "cart_id" in err.value.message


def test_a_template_that_renders_nothing_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "blank.sms.txt").write_text("{% if false %}never{% endif %}\n  \n")
    (tmp_path / "blank.push.title.txt").write_text("Title\n")
    (tmp_path / "blank.push.txt").write_text("\n")
    renderer = TemplateRenderer(tmp_path, public_url="https://shop.example.com")

    for render in (renderer.render_sms, renderer.render_push):
        with pytest.raises(ApplicationError) as err:
            render("blank", {})
        assert err.value.type == ERR_TEMPLATE and "empty" in err.value.message


def test_a_push_title_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "t.push.title.txt").write_text("Your order\n  is   here\n")
    (tmp_path / "t.push.txt").write_text("Body\n")
    renderer = TemplateRenderer(tmp_path, public_url="https://shop.example.com")

    assert renderer.render_push("t", {}).title == "Your order is here"
