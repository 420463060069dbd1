"""Email: build the multipart message, and hand it to an SMTP server with aiosmtplib.

Failures are sorted by what a retry could change:
- the server refused this recipient or this message with a 5xx: permanent, never retried;
- the connection broke while the server held the whole message and had not answered yet:
  it may have been delivered, so `DeliveryUncertainError` (the caller must not resend);
- everything else (connect errors, timeouts before DATA, 4xx, authentication): retryable,
  the exception propagates as is and Temporal retries the activity.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from contextlib import suppress
from datetime import UTC, datetime
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, getaddresses, parseaddr
from typing import Any, Protocol

from aiosmtplib import SMTP, SMTPException, SMTPRecipientRefused, SMTPResponseException
from temporalio.exceptions import ApplicationError

from activities.rendering import RenderedEmail
from journeyman.settings import Settings
from workflows.contracts import ERR_PERMANENT_SEND

MESSAGE_ID_HEADER = "X-Journeyman-Message-Id"
# RFC 8058 one-click unsubscribe: mailbox providers POST `List-Unsubscribe-Post`'s body to the
# URL in `List-Unsubscribe`, and show their own unsubscribe button for it.
LIST_UNSUBSCRIBE = "List-Unsubscribe"
LIST_UNSUBSCRIBE_POST = "List-Unsubscribe-Post"
ONE_CLICK = "List-Unsubscribe=One-Click"
_ONE_LINE_HEADERS = frozenset({MESSAGE_ID_HEADER.lower(), LIST_UNSUBSCRIBE.lower()})


class _WirePolicy(EmailPolicy):
    """Keeps our message id and the unsubscribe link on one line each.

    Neither has spaces to fold at. The standard folding would move an id to a continuation
    line (parsers then hand it back with a leading space), and would RFC 2047-encode a long
    `<url>`, which mailbox providers do not decode in List-Unsubscribe. SMTP allows 998
    characters per line.

    Every folded header is also checked to be one header (`_one_header`).
    """

    def fold(self, name: str, value: str) -> str:
        if name.lower() in _ONE_LINE_HEADERS and _fits_one_line(name, value):
            return f"{name}: {value}{self.linesep}"
        folded: str = super().fold(name, value)
        return _one_header(name, folded, self.linesep)

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() in _ONE_LINE_HEADERS and _fits_one_line(name, value):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        folded = super().fold_binary(name, value)
        _one_header(name, folded.decode("ascii", "replace"), self.linesep)
        return folded


# A line break not followed by folding whitespace starts a new header (or the body).
_NEW_LINE = re.compile(r"\r\n[^ \t]|\r[^ \n\t]|\n[^ \t]")


def _one_header(name: str, folded: str, linesep: str) -> str:
    """`folded`, if it is one header; ValueError if it would inject others.

    Assigning a header refuses CR and LF, but the email package decodes RFC 2047 encoded
    words first: a contact attribute `=?utf-8?q?=0D=0ABcc:_x@evil.example?=` rendered into a
    subject is stored as text with a CRLF in it, which folding then writes out as is.
    CPython 3.11.10+ checks this itself (`verify_generated_headers`); 3.11.7 does not.
    """
    if _NEW_LINE.search(folded.removesuffix(linesep)):
        raise ValueError(f"the {name} header would break into a new header line")
    return folded


def _fits_one_line(name: str, value: str) -> bool:
    return value.isascii() and value.isprintable() and len(name) + len(value) < 990


class _HeaderClasses(HeaderRegistry):
    """The standard header registry, making each header's class once.

    The stdlib's `HeaderRegistry.__getitem__` builds a new class with `type()` for every header
    it parses, stores or folds: about a tenth of the CPU of building and sending an email.
    The classes hold no state, so one per header name serves every message.
    """

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def map_to_type(self, name: str, cls: type[BaseHeader]) -> None:
        super().map_to_type(name, cls)
        self._classes.clear()

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            made = self._classes[key] = super().__getitem__(name)
        return made


# CRLF line ends for the wire; 7bit makes non-ASCII bodies quoted-printable and headers
# RFC 2047-encoded, so the message survives servers without 8BITMIME.
EMAIL_POLICY = _WirePolicy(linesep="\r\n", cte_type="7bit", header_factory=_HeaderClasses())


class DeliveryUncertainError(Exception):
    """The connection failed after the server had the whole message: it may be delivered."""


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


def message_id_header(message_id: str, domain: str) -> str:
    """The RFC 5322 Message-ID for one of our message ids: the same id gives the same header."""
    digest = hashlib.sha256(message_id.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def sender_domain(email_from: str) -> str:
    """The domain of the sender address, used on the right of our Message-IDs."""
    _name, address = parseaddr(email_from)
    _local, at, domain = address.rpartition("@")
    return domain if at and domain else "journeyman"


def build_email(
    *,
    message_id: str,
    sender: str,
    recipient: str,
    rendered: RenderedEmail,
    domain: str,
    date: datetime | None = None,
    unsubscribe_url: str | None = None,
) -> EmailMessage:
    """A multipart/alternative message: plain text first, HTML as the preferred part.

    With `unsubscribe_url` (every marketing email), it carries the RFC 8058 one-click headers.
    """
    message = EmailMessage(policy=EMAIL_POLICY)
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(date or datetime.now(UTC))
    message["Message-ID"] = message_id_header(message_id, domain)
    message[MESSAGE_ID_HEADER] = message_id
    if unsubscribe_url is not None:
        message[LIST_UNSUBSCRIBE] = f"<{unsubscribe_url}>"
        message[LIST_UNSUBSCRIBE_POST] = ONE_CLICK
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    # Serialised here, which folds (and so checks, `_WirePolicy`) every header: a header that
    # would inject others is refused before any claim, not when sending; the mailer then
    # sends these very bytes (`wire_bytes`) instead of serialising the message again.
    wire_bytes(message)
    return message


# The attribute of an EmailMessage holding its serialised form, with the shape it had then.
_WIRE = "_journeyman_wire"


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as SMTP carries it (`EMAIL_POLICY`), serialised at most once while unchanged.

    The bytes are kept on the message with a snapshot of its headers and payloads; a message
    changed since (any header or part, by any method) is serialised afresh.
    """
    kept: tuple[Any, bytes] | None = getattr(message, _WIRE, None)
    if kept is not None and kept[0] == _shape(message):
        return kept[1]
    wire = message.as_bytes(policy=EMAIL_POLICY)
    # The shape is taken after serialising: the generator adds the multipart boundary.
    setattr(message, _WIRE, (_shape(message), wire))
    return wire


def _shape(message: EmailMessage) -> tuple[Any, ...]:
    """What the generator writes a message from; header values and text bodies are immutable."""
    payload = message._payload  # type: ignore[attr-defined]
    if isinstance(payload, list):
        payload = tuple(_shape(part) for part in payload)
    return (
        tuple(message._headers),  # type: ignore[attr-defined]
        payload,
        message.preamble,
        message.epilogue,
        message.get_default_type(),
    )


class SmtpMailer:
    """Sends one message per connection: sends are rare per worker and minutes apart."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpMailer:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_seconds,
        )

    async def send(self, message: EmailMessage) -> None:
        sender = _envelope_address(message, "From")
        recipients = [address for _name, address in getaddresses(message.get_all("To", []))]
        payload = wire_bytes(message)
        smtp = SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            start_tls=self.starttls,
            timeout=self.timeout,
        )
        await smtp.connect()
        try:
            # MAIL and RCPT are sent one by one (not `sendmail`) so that we know when the
            # server holds the message: only a failure inside DATA leaves delivery in doubt.
            mail_options = await _utf8_options(smtp, [sender, *recipients])
            await smtp.mail(sender, options=mail_options, encoding=_encoding(mail_options))
            for recipient in recipients:
                try:
                    await smtp.rcpt(recipient, encoding=_encoding(mail_options))
                except SMTPRecipientRefused as err:
                    _raise_if_permanent(err, "recipient_refused")
                    raise
            try:
                await smtp.data(payload)
            except SMTPResponseException as err:
                _raise_if_permanent(err, "message_refused")
                raise
            except (ConnectionError, TimeoutError) as err:
                raise DeliveryUncertainError(
                    f"connection to {self.host}:{self.port} failed during DATA: {err}"
                ) from err
        finally:
            # The message is accepted once DATA answered 250: return at once so the caller
            # records it (a worker killed between the 250 and that record sends it again with
            # the same Message-ID; waiting for QUIT's answer here widened that window). The
            # polite QUIT follows in the background; a failed one changes nothing.
            _quit_later(smtp)


# Background QUITs, referenced until done (the event loop keeps only weak references).
_quitting: set[asyncio.Task[None]] = set()


def _quit_later(smtp: SMTP) -> None:
    async def quit_and_close() -> None:
        with suppress(SMTPException, OSError):
            await smtp.quit()
        smtp.close()

    task = asyncio.get_running_loop().create_task(quit_and_close())
    _quitting.add(task)
    task.add_done_callback(_quitting.discard)


def _raise_if_permanent(err: SMTPResponseException, what: str) -> None:
    # 5xx to RCPT or DATA is about this recipient or this message: retrying cannot help.
    # Errors before that (greeting, auth, MAIL FROM) mostly mean our own configuration is
    # wrong, which an operator can fix within the retry window, so they stay retryable.
    if 500 <= err.code < 600:
        raise ApplicationError(
            f"{what}: {err.code} {err.message}",
            type=ERR_PERMANENT_SEND,
            non_retryable=True,
        ) from err


def _envelope_address(message: EmailMessage, header: str) -> str:
    _name, address = parseaddr(str(message[header]))
    if not address:
        raise ValueError(f"message has no {header} address")
    return address


async def _utf8_options(smtp: SMTP, addresses: list[str]) -> list[str]:
    if all(address.isascii() for address in addresses):
        return []
    if smtp.last_ehlo_response is None:
        await smtp.ehlo()
    if not smtp.supports_extension("smtputf8"):
        raise ApplicationError(
            "address_not_ascii: the SMTP server does not support SMTPUTF8",
            type=ERR_PERMANENT_SEND,
            non_retryable=True,
        )
    return ["SMTPUTF8"]


def _encoding(mail_options: list[str]) -> str:
    return "utf-8" if mail_options else "ascii"
