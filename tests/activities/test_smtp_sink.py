"""The SMTP sink that tests and `journeyman dev` use to catch mail."""

from __future__ import annotations

import asyncio
import signal
import sys
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from aiosmtplib import SMTPResponseException

from activities import RenderedEmail, SmtpMailer, build_email
from journeyman.smtp_sink import SmtpSink

from .conftest import closed_port


async def send(port: int, recipient: str, subject: str = "Hello") -> None:
    message = build_email(
        message_id=f"m:{recipient}:{subject}",
        sender="Acme <hello@shop.example.com>",
        recipient=recipient,
        rendered=RenderedEmail(subject=subject, text="Hi\n", html="<p>Hi</p>\n"),
        domain="shop.example.com",
    )
    await SmtpMailer(host="127.0.0.1", port=port, timeout=5).send(message)


async def test_port_zero_picks_a_free_port_and_keeps_each_message(tmp_path: Path) -> None:
    with SmtpSink("127.0.0.1", 0, maildir=tmp_path / "mail") as sink:
        assert sink.port != 0
        await send(sink.port, "ada@example.com", "First")
        await send(sink.port, "grace@example.com", "Second")

        received = await sink.wait_for(2)

    assert [m["Subject"] for m in received] == ["First", "Second"]
    assert [m["Subject"] for m in sink.to("grace@example.com")] == ["Second"]
    files = saved_mail(tmp_path / "mail")
    assert [f.name.rsplit("-", 1)[1] for f in files] == ["1.eml", "2.eml"]
    saved = BytesParser(policy=policy.default).parsebytes(files[0].read_bytes())
    assert saved["Subject"] == "First"


async def test_wait_for_is_bounded() -> None:
    with SmtpSink() as sink, pytest.raises(TimeoutError, match="expected 1 message"):
        await sink.wait_for(1, within=0.05)


async def test_wait_for_wakes_when_the_message_arrives() -> None:
    with SmtpSink() as sink:
        waiting = asyncio.create_task(sink.wait_for(1, within=5))
        await asyncio.sleep(0)
        await send(sink.port, "ada@example.com")

        assert len(await waiting) == 1


async def test_runs_standalone_and_saves_mail_for_a_person_to_read(tmp_path: Path) -> None:
    port = closed_port()
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "journeyman.smtp_sink", "--port", str(port)],
        *["--maildir", str(tmp_path)],
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        banner = (await process.stdout.readline()).decode()
        assert f"127.0.0.1:{port}" in banner and str(tmp_path) in banner

        await send(port, "ada@example.com", "Read me")
        announced = (await process.stdout.readline()).decode()
        assert "Mail to ada@example.com: Read me -> " in announced
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0

    [saved] = saved_mail(tmp_path)
    assert b"Subject: Read me" in saved.read_bytes()
    assert announced.rstrip().endswith(str(saved))


def saved_mail(maildir: Path) -> list[Path]:
    return sorted(maildir.glob("*.eml"))


async def test_a_message_it_cannot_save_is_deferred_not_bounced(tmp_path: Path) -> None:
    maildir = tmp_path / "mail"
    with SmtpSink(maildir=maildir) as sink:
        maildir.rmdir()  # the disk went away under the sink

        with pytest.raises(SMTPResponseException) as err:
            await send(sink.port, "ada@example.com")

    assert err.value.code == 451  # a 4xx: the sender retries later
    assert sink.messages == []
