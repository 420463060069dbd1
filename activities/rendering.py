"""Message rendering with Jinja2: one environment, built once when the worker starts.

An email template `X` is three files under the templates directory: `X.subject.txt`, `X.txt`
and `X.html` (the HTML usually extends `_layout.html`). The same `X` on other channels: `X.sms.txt`
for SMS, `X.push.title.txt` and `X.push.txt` for push. Only `.html` is autoescaped, so a
contact attribute such as `<script>` shows as text in the HTML part and stays as typed in the
subject and the plain-text part, where escaping would only garble it.

`StrictUndefined` turns a missing variable into an error instead of a silent blank: an email
saying "Hi ," is worse than a step recorded as failed with a message naming the variable.

The worker renders in Jinja's immutable sandbox (`from_settings`): whoever can edit a template
cannot reach Python internals (`''.__class__.__mro__`, `cycler.__init__.__globals__`,
`str.format` field tricks), change the objects it is given, or make a worker spin on a huge
power or repetition. Values in the context are data: a contact attribute holding `{{ 7*7 }}`
is printed as typed, never rendered as a template (see tests/security/test_templates.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from temporalio.exceptions import ApplicationError

from journeyman.settings import Settings
from workflows.contracts import ERR_TEMPLATE, ContactSnapshot, Event

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
# Context names the renderer owns; a step context cannot shadow them.
RESERVED_NAMES = frozenset({"contact", "event", "journey", "step", "public_url", "brand"})


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class RenderedPush:
    title: str
    body: str


# The largest string or list a template may build by repetition, and the largest exponent:
# far beyond any message, far below what would stall a worker (a message is not a computation).
MAX_REPEAT = 100_000
MAX_POWER_BITS = 4096


class MessageSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with `*` and `**` bounded."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _power_bits(left, right) > MAX_POWER_BITS:
            raise SecurityError(f"a power over {MAX_POWER_BITS} bits")
        if operator == "*":
            sizes = [
                len(sequence) * count
                for sequence, count in ((left, right), (right, left))
                if isinstance(sequence, str | list | tuple) and isinstance(count, int)
            ]
            if any(size > MAX_REPEAT for size in sizes):
                raise SecurityError(f"repetition over {MAX_REPEAT} items")
        return super().call_binop(context, operator, left, right)


def _power_bits(base: Any, exponent: Any) -> float:
    """About how many bits `base ** exponent` takes (floats overflow on their own)."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        return float(max(abs(base).bit_length() - 1, 0) * exponent)
    return 0.0


class TemplateRenderer:
    """Renders message templates; construct once and share (it caches compiled templates).

    It renders through `MessageSandbox`, Jinja's immutable sandbox: templates cannot reach
    Python internals (`''.__class__.__mro__` and friends). `sandboxed=False` (plain Jinja) is
    for tests that compare both; whoever builds a renderer gets the sandbox unless they ask.
    """

    def __init__(
        self,
        templates_dir: Path,
        *,
        public_url: str,
        brand: str = "Journeyman",
        sandboxed: bool = True,
    ) -> None:
        environment_class = MessageSandbox if sandboxed else Environment
        self.environment: Environment = environment_class(
            loader=FileSystemLoader(templates_dir),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.environment.filters["money"] = money
        self.environment.filters["absolute"] = absolute
        self.public_url = public_url.rstrip("/")
        self.brand = brand
        self.sandboxed = sandboxed

    @classmethod
    def from_settings(cls, settings: Settings, *, sandboxed: bool = True) -> TemplateRenderer:
        return cls(
            settings.templates_dir,
            public_url=settings.public_url,
            brand=brand_from_sender(settings.email_from),
            sandboxed=sandboxed,
        )

    def context(
        self,
        *,
        contact: ContactSnapshot,
        event: Event | None,
        journey: str,
        step: str,
        step_context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """What a template sees: the step's context at top level, then the names we own."""
        return {
            **(step_context or {}),
            "contact": {
                "contact_id": contact.contact_id,
                "email": contact.email,
                "phone": contact.phone,
                "locale": contact.locale,
                "timezone": contact.timezone,
                "attributes": dict(contact.attributes),
            },
            "event": {**event.properties, "name": event.name} if event else None,
            "journey": journey,
            "step": step,
            "public_url": self.public_url,
            "brand": self.brand,
        }

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        """Render one template file, turning every failure into a non-retryable TemplateError.

        Rendering is pure: a retry would fail the same way, so nothing here is retryable.
        """
        try:
            return self.environment.get_template(name).render(context)
        except Exception as err:  # every failure of a pure render is a template problem
            raise ApplicationError(
                f"template {name!r} failed to render: {type(err).__name__}: {err}",
                type=ERR_TEMPLATE,
                non_retryable=True,
            ) from err

    def render_email(self, template: str, context: Mapping[str, Any]) -> RenderedEmail:
        subject = self.render(f"{template}.subject.txt", context)
        return RenderedEmail(
            # A header is one line: template newlines and runs of spaces collapse.
            subject=" ".join(subject.split()),
            text=self.render(f"{template}.txt", context),
            html=self.render(f"{template}.html", context),
        )

    def render_sms(self, template: str, context: Mapping[str, Any]) -> str:
        """The SMS text, trimmed: a phone shows leading and trailing blank lines as such."""
        return self._render_short(f"{template}.sms.txt", context)

    def render_push(self, template: str, context: Mapping[str, Any]) -> RenderedPush:
        title = self._render_short(f"{template}.push.title.txt", context)
        return RenderedPush(
            # A notification title is one line on every platform, like an email subject.
            title=" ".join(title.split()),
            body=self._render_short(f"{template}.push.txt", context),
        )

    def _render_short(self, name: str, context: Mapping[str, Any]) -> str:
        text = self.render(name, context).strip()
        if not text:
            # Providers refuse an empty message after we have claimed it; refuse it here, as
            # the template problem it is, before anything is claimed.
            raise ApplicationError(
                f"template {name!r} rendered an empty message",
                type=ERR_TEMPLATE,
                non_retryable=True,
            )
        return text


def brand_from_sender(email_from: str) -> str:
    """The display name of the sender address, which is what recipients know us by."""
    name, _address = parseaddr(email_from)
    return name or "Journeyman"


def money(value: Any, currency: str = "USD") -> str:
    """`49.5 | money` -> `$49.50`; unknown currencies read `49.50 CHF`."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation as err:
        raise ValueError(f"not an amount of money: {value!r}") from err
    code = str(currency).upper()
    text = f"{amount:,.2f}"
    symbol = CURRENCY_SYMBOLS.get(code)
    return f"{symbol}{text}" if symbol else f"{text} {code}"


@pass_context
def absolute(context: Context, url: Any) -> str:
    """Make a link absolute under `public_url`; only http(s) URLs are kept as given.

    Event properties come from a backend: a `javascript:` link must not reach an inbox, so any
    other scheme is treated as a path under our own site.
    """
    text = str(url).strip()
    if urlsplit(text).scheme in ("http", "https"):
        return text
    base = str(context.get("public_url", "")).rstrip("/")
    return f"{base}/{text.lstrip('/')}"
