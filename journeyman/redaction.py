"""Scrubbing addresses, phone numbers and secrets out of error texts before they are kept.

Providers quote what they refuse: an SMTP 550 names the mailbox, Twilio's 21211 the number,
a misbehaving HTTP provider may echo our `Authorization` header. An activity that raises
such an error puts its text in the workflow's history (every operator sees it in the UI)
and, through the workflow, in results and logs. `RedactingFailureConverter` scrubs every
failure's message and stack trace, its causes included, as the SDK serialises it, so the
history never holds them; the failure's type, retryability and the rest of the text stay,
so an operator still sees what went wrong.

The SDK builds a data converter's failure converter with no arguments, so the secrets to
look for cannot be passed in: `failure_converter_for(settings)` makes a subclass holding a
`Redactor` built from those settings (a class per client, no process-wide state), and
`redacting_data_converter(settings)` is the data converter every client (API, worker) uses.

`redact(text)` is the same scrubbing for code that records provider text elsewhere (the
messages table's `reason`, log lines): addresses, numbers and credential headers always;
configured secrets when given a `Redactor` built from the settings. `RedactingFilter`, on a
log handler, does it to every record the handler writes, tracebacks included (the SDK logs
a failed activity's exception before it is converted).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
from collections.abc import Iterable
from typing import ClassVar
from urllib.parse import quote

import temporalio.api.failure.v1
from temporalio.client import Client
from temporalio.converter import DataConverter, DefaultFailureConverter, PayloadConverter

from journeyman.settings import Settings

EMAIL_MARK = "[email]"
PHONE_MARK = "[phone]"
SECRET_MARK = "[secret]"

# An address as providers quote it, `@` possibly percent-encoded (in a URL). The domain needs
# a dot, so `@activity.defn` in a stack trace's source line and `sales@localhost` stay. The
# local part leaves out `=`, `&`, `/` and `?`, rare in addresses but what joins one to the
# rest of a query string or path.
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%'*+^_`{|}~-]+(?:@|%40)"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
# E.164 as providers print it: a `+` (or `%2B`) and 7 to 15 digits, optionally grouped by
# spaces, dashes, dots or brackets. The `+` is required, so ids, timestamps and counts (bare
# digits) are never taken; a UTC offset (`+00:00`, `+0530`) starts with 0 or is too short.
_PHONE = re.compile(r"(?:(?<![\w+])\+|%2[Bb])[1-9](?:[ \-.()]{0,2}\d){6,14}(?!\d)")
# A credential as an echoed header carries it, whatever the secret: `Basic <base64>`,
# `Bearer <token>`.
_CREDENTIAL = re.compile(r"\b(Basic|Bearer|Token|Digest)(\s+)[A-Za-z0-9._~+/=-]{6,}")
# Shorter values are too likely to occur by chance in ordinary text (and are no secret).
MIN_SECRET_LENGTH = 6


def _secret_forms(secret: str) -> set[str]:
    """The secret as it could appear in text: as is, URL-encoded, base64'd."""
    forms = {secret, quote(secret, safe="")}
    encoded = base64.b64encode(secret.encode()).decode()
    forms |= {encoded, encoded.rstrip("=")}
    return forms


@dataclasses.dataclass(frozen=True)
class Redactor:
    """Scrubs text of email addresses, phone numbers, credentials and the given secrets."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def of(cls, secrets: Iterable[str | None]) -> Redactor:
        forms: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_LENGTH:
                forms |= _secret_forms(secret)
        # Longest first, so a secret containing another is replaced whole.
        return cls(tuple(sorted(forms, key=lambda form: (-len(form), form))))

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        return cls.of(settings_secrets(settings))

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for secret in self.secrets:
            text = text.replace(secret, SECRET_MARK)
        # Each pattern only where its anchor occurs: a stack trace rarely has one, and the
        # patterns cost most on text they do not match.
        if any(scheme in text for scheme in ("Basic", "Bearer", "Token", "Digest")):
            text = _CREDENTIAL.sub(rf"\1\2{SECRET_MARK}", text)
        if "@" in text or "%40" in text:
            text = _EMAIL.sub(EMAIL_MARK, text)
        if "+" in text or "%2" in text:
            text = _PHONE.sub(PHONE_MARK, text)
        return text

    def scrub_failure(self, failure: temporalio.api.failure.v1.Failure) -> None:
        """Redact the message and stack trace of `failure` and of each of its causes."""
        current: temporalio.api.failure.v1.Failure | None = failure
        while current is not None:
            current.message = self(current.message)
            current.stack_trace = self(current.stack_trace)
            current = current.cause if current.HasField("cause") else None


def settings_secrets(settings: Settings) -> list[str | None]:
    """Every secret in the settings: keys, tokens, passwords, signing secrets."""
    return [
        settings.temporal_api_key,
        *settings.api_keys,
        *settings.ingest_api_keys,
        settings.secret_key,
        settings.smtp_password,
        settings.sms_auth_token,
        settings.push_api_token,
        settings.webhook_secret,
        settings.feedback_secret,
        settings.mailgun_signing_key,
        settings.hubspot_token,
        settings.hubspot_client_secret,
        settings.crm_webhook_secret,
    ]


# Without settings: addresses, numbers and credential headers only.
redact = Redactor()


class RedactingFilter(logging.Filter):
    """Scrubs each record's message and traceback; put it on a handler, where it sees every
    record the handler writes (a logger's filter misses its children's records)."""

    def __init__(self, redactor: Redactor = redact) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redactor(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            # Formatters reuse `exc_text` once set, so the traceback is written scrubbed.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        return True


class RedactingFailureConverter(DefaultFailureConverter):
    """The SDK's failure converter, scrubbing each failure it builds with `redactor`.

    Only the way out is scrubbed (exception to failure): a failure read back from a history
    decodes as before, so older histories still replay and decode unchanged.
    """

    redactor: ClassVar[Redactor] = redact

    def to_failure(
        self,
        exception: BaseException,
        payload_converter: PayloadConverter,
        failure: temporalio.api.failure.v1.Failure,
    ) -> None:
        super().to_failure(exception, payload_converter, failure)
        self.redactor.scrub_failure(failure)


def failure_converter_for(settings: Settings) -> type[RedactingFailureConverter]:
    """A converter class that also knows the secrets of `settings` (the SDK instantiates
    the class itself, without arguments)."""
    redactor = Redactor.from_settings(settings)
    return type("RedactingFailureConverter", (RedactingFailureConverter,), {"redactor": redactor})


def redacting_data_converter(
    settings: Settings, base: DataConverter = DataConverter.default
) -> DataConverter:
    return dataclasses.replace(base, failure_converter_class=failure_converter_for(settings))


def with_redaction(client: Client, settings: Settings) -> Client:
    """`client` with the redacting data converter (for clients not made by `connect`)."""
    config = client.config()
    config["data_converter"] = redacting_data_converter(settings, config["data_converter"])
    return Client(**config)
