"""The e-mail channel end to end: mail put into a real Dovecot mailbox with IMAP APPEND, read by the gateway's poller
(IDLE), answered by a stand-in Rasa, and replies sent through the outbox to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from channels.email.poller import EmailPoller, MailboxState
from gateway.media import MediaStore
from gateway.outbox import OutboxRow
from gateway.storage import Conversation, Message
from tests.channels.email.mailservers import PASSWORD, Dovecot, SmtpServer
from tests.channels.support import Gateway, StandInRasa, eventually, gateway_settings, running_gateway
from tests.conftest import temporary_postgres_database

US = "service@binjiang.example"
CITIZEN = "xiaoming.wang@example.cn"
CORPUS = Path(__file__).resolve().parent / "corpus"


def mail(subject: str, body: str, *, sender: str = CITIZEN, in_reply_to: str | None = None,
         references: tuple[str, ...] = (), headers: dict[str, str] | None = None) -> tuple[str, bytes]:
    """A citizen's mail as a client writes it; returns (Message-ID, bytes)."""
    message = EmailMessage()
    message["From"] = f"王小明 <{sender}>"
    message["To"] = f"滨江市民服务 <{US}>"
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain="mail.example.cn")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = " ".join((*references, in_reply_to))
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return str(message["Message-ID"]), message.as_bytes()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The gateway's database: its SQLite file in DATA_DIR (""), or a fresh PostgreSQL database."""
    if request.param == "postgres":
        async with temporary_postgres_database() as url:
            yield url
    else:
        yield ""


@asynccontextmanager
async def email_gateway(data_dir: Path, rasa: StandInRasa, dovecot: Dovecot, mailbox: str, smtp: SmtpServer,
                        **extra: Any) -> AsyncIterator[Gateway]:
    values: dict[str, Any] = {
        "email_imap_host": "127.0.0.1", "email_imap_port": dovecot.port, "email_imap_user": mailbox,
        "email_imap_password": PASSWORD, "email_imap_ssl": False, "email_smtp_host": "127.0.0.1",
        "email_smtp_port": smtp.port, "email_smtp_starttls": False, "email_from": f"滨江市民服务 <{US}>",
        "email_poll_seconds": 0.2,
    }
    settings = gateway_settings(data_dir, rasa, **{**values, **extra})
    async with running_gateway(settings) as gateway:
        yield gateway


async def count(gateway: Gateway, model: type, *where: object) -> int:
    async with gateway.db.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def settle(gateway: Gateway, inbound: int, timeout: float = 15.0) -> None:
    """Wait until `inbound` messages were stored, their turns ran and the outbox has nothing due."""
    assert await eventually(lambda: _inbound_at_least(gateway, inbound), timeout), "mail not taken from the mailbox"
    services = gateway.services
    for _ in range(50):
        busy = [t for t in services._tasks if t.get_name() == "email-turn"]
        if busy:
            await asyncio.wait(busy, timeout=timeout)
            continue
        await services.outbox.drain(timeout)
        if not [t for t in services._tasks if t.get_name() == "email-turn"]:
            return
    raise TimeoutError("the gateway did not settle")


async def _inbound_at_least(gateway: Gateway, n: int) -> bool:
    return await count(gateway, Message, Message.direction == "in") >= n


async def conversation_of(gateway: Gateway, message_id: str) -> str:
    async with gateway.db.sessions() as session:
        return str((await session.execute(
            select(Message.conversation_id).where(Message.external_id == message_id)
        )).scalar_one())


async def test_a_new_mail_is_answered_once_even_polled_again_and_after_a_restart(
    tmp_path: Path, rasa: StandInRasa, dovecot: Dovecot, mailbox: str, smtp: SmtpServer, database_url: str
) -> None:
    message_id, raw = mail("请问居住证怎么办理？", "您好，请问居住证需要带哪些材料？\n\n-- \n王小明\n")
    async with email_gateway(tmp_path, rasa, dovecot, mailbox, smtp, database_url=database_url) as gateway:
        dovecot.append(mailbox, raw)
        await settle(gateway, 1)
        assert rasa.texts() == ["您好，请问居住证需要带哪些材料？"]  # the signature stripped
        [reply] = smtp.recorder.messages
        assert reply["To"] == CITIZEN and reply["From"] == f"滨江市民服务 <{US}>"
        assert reply["Subject"] == "Re: 请问居住证怎么办理？"
        assert reply["In-Reply-To"] == message_id and reply["References"] == message_id
        assert reply["Auto-Submitted"] == "auto-replied"
        assert reply["Message-ID"].endswith("@binjiang.example>")
        assert reply.get_content_type() == "multipart/alternative"
        assert reply.get_body(("plain",)).get_content().strip() == "echo:您好，请问居住证需要带哪些材料？"  # type: ignore[union-attr]
        assert "echo:" in reply.get_body(("html",)).get_content()  # type: ignore[union-attr]

        # A second poller (another worker) finds nothing new; one that lost its bookkeeping re-reads the
        # mailbox, and the Message-ID dedupe drops the repeat.
        services = gateway.services
        poller = EmailPoller(services.outbox.connectors["email"], services.db, services.pipeline,
                             MediaStore(tmp_path, 10_000_000), spawn=services.spawn)
        imap = await poller.connect()
        try:
            assert await poller.poll_once(imap) == 0
            async with services.db.sessions() as session, session.begin():
                await session.execute(delete(MailboxState))
            assert await poller.poll_once(imap) == 1
        finally:
            await imap.logout()
        await settle(gateway, 1)
    async with email_gateway(tmp_path, rasa, dovecot, mailbox, smtp, database_url=database_url) as gateway:  # restart
        await asyncio.sleep(0.5)
        await settle(gateway, 1)
        assert await count(gateway, Message, Message.direction == "in") == 1
    assert len(rasa.calls) == 1 and len(smtp.recorder.messages) == 1


async def test_a_reply_continues_its_conversation_and_a_new_subject_starts_one(
    tmp_path: Path, rasa: StandInRasa, dovecot: Dovecot, mailbox: str, smtp: SmtpServer, database_url: str
) -> None:
    async with email_gateway(tmp_path, rasa, dovecot, mailbox, smtp, database_url=database_url) as gateway:
        first_id, raw = mail("路灯坏了", "滨江路12号的路灯坏了")
        dovecot.append(mailbox, raw)
        await settle(gateway, 1)
        [ours] = smtp.recorder.messages
        # The citizen answers our reply (Outlook style, history quoted below).
        reply_id, raw = mail("RE: Re: 路灯坏了", "还是没修好\n\n-----Original Message-----\nFrom: 滨江市民服务\n"
                             "Sent: Monday\n\necho:滨江路12号的路灯坏了\n",
                             in_reply_to=str(ours["Message-ID"]), references=(first_id,))
        dovecot.append(mailbox, raw)
        await settle(gateway, 2)
        new_id, raw = mail("噪音投诉", "楼上装修太吵了")
        dovecot.append(mailbox, raw)
        await settle(gateway, 3)
        assert await conversation_of(gateway, reply_id) == await conversation_of(gateway, first_id)
        assert await conversation_of(gateway, new_id) != await conversation_of(gateway, first_id)
        assert await count(gateway, Conversation) == 2
        assert rasa.texts() == ["滨江路12号的路灯坏了", "还是没修好", "楼上装修太吵了"]
        second = smtp.recorder.messages[1]
        assert second["Subject"] == "Re: 路灯坏了"  # never "Re: Re:"
        assert second["In-Reply-To"] == reply_id
        assert second["References"].split() == [first_id, str(ours["Message-ID"]), reply_id]
        assert smtp.recorder.messages[2]["Subject"] == "Re: 噪音投诉"


async def test_machine_mail_is_stored_but_never_answered(
    tmp_path: Path, rasa: StandInRasa, dovecot: Dovecot, mailbox: str, smtp: SmtpServer
) -> None:
    names = ["auto_reply_out_of_office.eml", "auto_reply_subject_only.eml", "bounce_dsn.eml", "mailing_list.eml",
             "own_address.eml"]
    async with email_gateway(tmp_path, rasa, dovecot, mailbox, smtp) as gateway:
        dovecot.append(mailbox, *((CORPUS / n).read_bytes() for n in names))
        await settle(gateway, len(names))
        await asyncio.sleep(0.3)
        async with gateway.db.sessions() as session:
            stored = (await session.execute(select(Message).where(Message.direction == "in"))).scalars().all()
        assert len(stored) == len(names)
        assert all(m.turn_state == "done" and m.payload["metadata"]["no_reply"] for m in stored)
        assert await count(gateway, Message, Message.direction == "out") == 0
    assert rasa.calls == [] and smtp.recorder.messages == []


async def test_buttons_become_a_numbered_list_and_2_picks_the_second(
    tmp_path: Path, rasa: StandInRasa, dovecot: Dovecot, mailbox: str, smtp: SmtpServer
) -> None:
    async with email_gateway(tmp_path, rasa, dovecot, mailbox, smtp) as gateway:
        _first, raw = mail("咨询", "选项")
        dovecot.append(mailbox, raw)
        await settle(gateway, 1)
        [ours] = smtp.recorder.messages
        text = ours.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "1. 办理居住证" in text and "2. 路灯报修" in text
        # Gmail style: "2" on top, the attribution and our mail quoted below.
        quoted = "\n".join("> " + line for line in text.splitlines())
        attribution = f"On Mon, Nov 23, 2026 at 10:05 AM 滨江市民服务 <{US}> wrote:"
        _reply, raw = mail("Re: 咨询", f"2\n\n{attribution}\n\n{quoted}\n", in_reply_to=str(ours["Message-ID"]))
        dovecot.append(mailbox, raw)
        await settle(gateway, 2)
    assert rasa.texts() == ["选项", "/report_streetlight"]


async def test_a_refused_send_is_retried_by_the_outbox(
    tmp_path: Path, rasa: StandInRasa, dovecot: Dovecot, mailbox: str, smtp: SmtpServer
) -> None:
    smtp.recorder.refuse_next = 2  # 451 twice, then accepted
    async with email_gateway(tmp_path, rasa, dovecot, mailbox, smtp) as gateway:
        _id, raw = mail("你好", "你好")
        dovecot.append(mailbox, raw)
        await settle(gateway, 1)
        assert await eventually(lambda: len(smtp.recorder.messages) == 1)
        async with gateway.db.sessions() as session:
            row = (await session.execute(select(OutboxRow))).scalar_one()
        assert row.state == "sent" and row.attempts == 3
        assert smtp.recorder.attempts == 3
        assert row.external_id == smtp.recorder.messages[0]["Message-ID"]  # the same Message-ID on every try


async def test_attachments_are_kept_within_the_media_limits(
    tmp_path: Path, rasa: StandInRasa, dovecot: Dovecot, mailbox: str, smtp: SmtpServer
) -> None:
    async with email_gateway(tmp_path, rasa, dovecot, mailbox, smtp) as gateway:
        dovecot.append(mailbox, (CORPUS / "multipart_attachments.eml").read_bytes())
        await settle(gateway, 1)
        async with gateway.db.sessions() as session:
            stored = (await session.execute(select(Message).where(Message.direction == "in"))).scalar_one()
        photo, pdf = stored.payload["attachments"]
        assert (photo["kind"], photo["mime"], photo["name"]) == ("image", "image/jpeg", "塌陷.jpg")
        assert (pdf["kind"], pdf["mime"]) == ("file", "application/pdf")
        assert (tmp_path / photo["ref"]).read_bytes().startswith(b"\xff\xd8\xff")
        [refused] = stored.payload["metadata"]["attachments_refused"]
        assert refused["name"] == "说明.docx" and "not allowed" in refused["reason"]
        assert [a["ref"] for a in rasa.calls[0]["metadata"]["attachments"]] == [photo["ref"], pdf["ref"]]


async def test_idle_wakes_the_poller_long_before_the_poll_interval(
    tmp_path: Path, rasa: StandInRasa, dovecot: Dovecot, mailbox: str, smtp: SmtpServer
) -> None:
    async with email_gateway(tmp_path, rasa, dovecot, mailbox, smtp, email_poll_seconds=600) as gateway:
        _id, raw = mail("你好", "第一封")
        dovecot.append(mailbox, raw)
        await settle(gateway, 1)  # the first poll, at start
        await asyncio.sleep(0.3)  # the poller is in IDLE now
        _id, raw = mail("另一件事", "第二封")
        dovecot.append(mailbox, raw)
        await settle(gateway, 2, timeout=10)  # woken by the server's EXISTS, not by the 600 s interval
        assert rasa.texts() == ["第一封", "第二封"]


async def test_a_reply_to_a_mail_we_never_saw_continues_by_subject_and_the_uidvalidity_is_kept(
    tmp_path: Path, rasa: StandInRasa, dovecot: Dovecot, mailbox: str, smtp: SmtpServer
) -> None:
    async with email_gateway(tmp_path, rasa, dovecot, mailbox, smtp) as gateway:
        first_id, raw = mail("居住证", "怎么办理居住证")
        dovecot.append(mailbox, raw)
        await settle(gateway, 1)
        # A client that dropped In-Reply-To, answering with the same subject: the same conversation.
        again_id, raw = mail("回复：居住证", "需要照片吗", in_reply_to="<unknown@elsewhere.example>")
        dovecot.append(mailbox, raw)
        await settle(gateway, 2)
        assert await conversation_of(gateway, again_id) == await conversation_of(gateway, first_id)
        async with gateway.db.sessions() as session:
            state = (await session.execute(select(MailboxState))).scalar_one()
        assert state.last_uid == 2 and state.uidvalidity > 0


async def test_a_bounce_of_our_reply_marks_it_failed(
    tmp_path: Path, rasa: StandInRasa, dovecot: Dovecot, mailbox: str, smtp: SmtpServer
) -> None:
    async with email_gateway(tmp_path, rasa, dovecot, mailbox, smtp) as gateway:
        _id, raw = mail("你好", "你好", sender="nobody@example.cn")
        dovecot.append(mailbox, raw)
        await settle(gateway, 1)
        [ours] = smtp.recorder.messages
        bounce = (CORPUS / "bounce_dsn.eml").read_bytes().replace(
            b"<20261123093000.1.bot@binjiang.example>", str(ours["Message-ID"]).encode()
        )
        dovecot.append(mailbox, bounce)
        await settle(gateway, 2)
        async with gateway.db.sessions() as session:
            reply = (await session.execute(select(Message).where(Message.direction == "out"))).scalar_one()
        assert reply.delivery_state == "failed"
        assert "550 5.1.1 User unknown" in reply.payload["delivery_error"]
    assert len(rasa.calls) == 1 and len(smtp.recorder.messages) == 1  # the bounce itself was not answered


async def test_the_first_start_leaves_last_weeks_mail_alone(
    tmp_path: Path, rasa: StandInRasa, dovecot: Dovecot, mailbox: str, smtp: SmtpServer
) -> None:
    _old, raw = mail("旧邮件", "上周的邮件")
    dovecot.append(mailbox, raw, received=time.time() - 7 * 24 * 3600)
    _new, raw = mail("新邮件", "今天的邮件")
    dovecot.append(mailbox, raw)
    async with email_gateway(tmp_path, rasa, dovecot, mailbox, smtp) as gateway:
        await settle(gateway, 1)
        await asyncio.sleep(0.3)
        assert await count(gateway, Message, Message.direction == "in") == 1
    assert rasa.texts() == ["今天的邮件"]
