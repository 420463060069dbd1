"""Failures reach Temporal's histories without the addresses, numbers and secrets they quote.

An activity fails as providers do (an SMTP 550 naming the mailbox, Twilio's 21211 naming the
number in a cause whose stack trace quotes it too, an echoed Basic credential and the SMTP
password) on the time-skipping server. Through a client with the redacting converter the
history holds none of them and still says what failed; through a plain client the same run
holds all of them, so the scan is shown to find them.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import uuid

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from journeyman.redaction import (
    EMAIL_MARK,
    PHONE_MARK,
    SECRET_MARK,
    RedactingFailureConverter,
    RedactingFilter,
    Redactor,
    redact,
    redacting_data_converter,
    with_redaction,
)
from journeyman.settings import Settings
from journeyman.temporal import connect_options
from tests.security.refusing_workflow import (
    ADDRESS,
    BASIC,
    PHONE,
    REFUSED,
    SMS_TOKEN,
    SMTP_PASSWORD,
    Refusal,
    RefusedByProvider,
    refuse_like_a_provider,
)
from tests.security.test_secrets import history_text

PERSONAL = {"address": ADDRESS, "phone": PHONE}
# The SMS token travels only inside the Basic credential (base64 of "sid:token").
SECRETS = {"SMTP password": SMTP_PASSWORD, "Basic credential": BASIC}


@pytest.fixture
def settings(task_queue: str) -> Settings:
    return Settings(task_queue=task_queue, smtp_password=SMTP_PASSWORD, sms_auth_token=SMS_TOKEN)


def _text(history: WorkflowHistory) -> str:
    document = json.loads(history.to_json())
    return history_text(document)


def _found(text: str) -> list[str]:
    return sorted(name for name, value in (PERSONAL | SECRETS).items() if value in text)


async def _refused_run(client: Client, settings: Settings) -> tuple[BaseException, WorkflowHistory]:
    async with Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[RefusedByProvider],
        activities=[refuse_like_a_provider],
    ):
        handle = await client.start_workflow(
            RefusedByProvider.run,
            Refusal(contact_id=f"c-{uuid.uuid4().hex[:8]}"),
            id=f"refused-{uuid.uuid4().hex}",
            task_queue=settings.task_queue,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        return failed.value, await handle.fetch_history()


async def test_a_provider_refusal_reaches_the_history_redacted(
    time_env: WorkflowEnvironment, settings: Settings
) -> None:
    client = with_redaction(time_env.client, settings)
    error, history = await _refused_run(client, settings)
    text = _text(history)

    assert _found(text) == []
    # What failed is still there for an operator: the type, the provider's words, the marks.
    assert REFUSED in text
    assert f"550 5.1.1 <{EMAIL_MARK}>: mailbox unknown" in text
    assert f"AUTH PLAIN with {SECRET_MARK}" in text and f"Basic {SECRET_MARK}" in text
    assert f"21211 The 'To' number {PHONE_MARK} is not a valid phone number." in text
    assert "refusing_workflow.py" in text  # the stack trace is kept, scrubbed

    # The client decodes the failure chain as ever: type, retryability, redacted words.
    activity_error = error.__cause__
    assert isinstance(activity_error, ActivityError)
    refusal = activity_error.__cause__
    assert isinstance(refusal, ApplicationError)
    assert (refusal.type, refusal.non_retryable) == (REFUSED, True)
    assert refusal.message.startswith(f"550 5.1.1 <{EMAIL_MARK}>: mailbox unknown")
    cause = refusal.__cause__
    assert isinstance(cause, ApplicationError) and cause.type == "RuntimeError"
    assert PHONE_MARK in cause.message

    # The history replays, with the redacting converter and with the SDK's own.
    for data_converter in (redacting_data_converter(settings), DataConverter.default):
        replayer = Replayer(workflows=[RefusedByProvider], data_converter=data_converter)
        await replayer.replay_workflow(history)


async def test_without_the_converter_the_same_refusal_leaks_everything(
    time_env: WorkflowEnvironment, settings: Settings
) -> None:
    """The control: the scan above finds each value when nothing redacts it."""
    _, history = await _refused_run(time_env.client, settings)
    assert _found(_text(history)) == sorted(PERSONAL | SECRETS)


def test_every_client_the_processes_build_redacts_with_their_secrets() -> None:
    """API and worker connect with `connect_options`: its converter knows their secrets."""
    settings = Settings(smtp_password=SMTP_PASSWORD, hubspot_token="pat-na1-zqredact01")
    converter = connect_options(settings)["data_converter"].failure_converter
    assert isinstance(converter, RedactingFailureConverter)
    scrubbed = converter.redactor(f"{SMTP_PASSWORD} pat-na1-zqredact01 {ADDRESS}")
    assert scrubbed == f"{SECRET_MARK} {SECRET_MARK} {EMAIL_MARK}"
    # Another process's settings make another class: no secrets shared through the module.
    other = connect_options(Settings())["data_converter"].failure_converter
    assert SMTP_PASSWORD not in other.redactor.secrets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("550 <user.name+tag@mail.example.co.uk>: no", f"550 <{EMAIL_MARK}>: no"),
        ("to=ada%40example.com&x=1", f"to={EMAIL_MARK}&x=1"),
        ("The 'To' number +447700900123 is invalid", f"The 'To' number {PHONE_MARK} is invalid"),
        ("call +1 (555) 010-4477 now", f"call {PHONE_MARK} now"),
        ("To=%2B15005550009&Body=hi", f"To={PHONE_MARK}&Body=hi"),
        ("Authorization: Bearer abc.def-123_xyz", f"Authorization: Bearer {SECRET_MARK}"),
    ],
)
def test_addresses_numbers_and_credentials_are_replaced(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "at 2026-11-23T03:18:30+00:00 (+0530), in 1e+10 ms",
        "message welcome_series:c-15551234567:1 attempt 3 of msg 4411223344556677",
        '  File "/app/activities/crm_sync.py", line 88, in run\n    @activity.defn(name=X)',
        "sales@localhost refused: 421 4.7.0 try again later",
        "HTTP 503 from https://api.hubapi.com/crm/v3/objects/contacts/batch/upsert",
    ],
)
def test_ids_timestamps_and_code_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_secrets_are_replaced_in_every_form_and_short_values_are_not_secrets() -> None:
    secret = "zq/secret+value=1"
    redactor = Redactor.of([secret, "abc", None, ""])
    encoded = base64.b64encode(secret.encode()).decode()
    text = f"a {secret} b zq%2Fsecret%2Bvalue%3D1 c {encoded} d abc"
    assert redactor(text) == f"a {SECRET_MARK} b {SECRET_MARK} c {SECRET_MARK} d abc"


def test_a_log_handler_with_the_filter_writes_records_and_tracebacks_scrubbed() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(Redactor.of([SMTP_PASSWORD])))
    logger = logging.getLogger("tests.security.redaction")
    logger.addHandler(handler)
    try:
        try:
            raise ApplicationError(f"550 <{ADDRESS}>: mailbox unknown", type=REFUSED)
        except ApplicationError:
            logger.exception("Completing activity as failed (%s)", SMTP_PASSWORD)
        logger.warning("Delivery to %s (%s) is uncertain", ADDRESS, PHONE)
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert _found(written) == []
    assert f"Completing activity as failed ({SECRET_MARK})" in written
    assert f"550 <{EMAIL_MARK}>: mailbox unknown" in written  # the traceback's last line
    assert f"Delivery to {EMAIL_MARK} ({PHONE_MARK}) is uncertain" in written
