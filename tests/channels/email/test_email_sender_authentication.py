"""Sender authentication end to end: mail put into a real Dovecot mailbox, read by the gateway's poller, its sender
checked (a DKIM signature made with a key generated in the run, or our receiving server's Authentication-Results),
then the opt-out hook, the stand-in Rasa and the outbox (a real SMTP server) act on the verdict. Also: what the
channel logs while taking mail names nobody."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select
from structlog.testing import capture_logs

from channels.email.authentication import SenderAuthenticator
from gateway.optouts import OPT_OUT_CONFIRM, OPT_UNVERIFIED, ChannelOptOut, may_send_proactive
from gateway.storage import Conversation, Message
from tests.channels.email.dkimkeys import MX_RECEIVED, DkimKeys, trace
from tests.channels.email.mailservers import Dovecot, SmtpServer
from tests.channels.email.test_email_channel import CITIZEN, CORPUS, email_gateway, mail, settle
from tests.channels.support import Gateway, StandInRasa

FIXTURES = Path(__file__).resolve().parent / "authentication"
OUR_MX = "mx.binjiang.example"


@asynccontextmanager
async def checked_gateway(tmp_path: Path, rasa: StandInRasa, dovecot: Dovecot, mailbox: str, smtp: SmtpServer,
                          keys: DkimKeys, **extra: Any) -> AsyncIterator[Gateway]:
    """The e-mail gateway whose sender check trusts our MX's headers and finds the test keys in its DNS function
    (the gateway's settings carry no DNS function: nothing may leave this machine)."""
    async with email_gateway(tmp_path, rasa, dovecot, mailbox, smtp, **extra) as gateway:
        connector = gateway.services.outbox.connectors["email"]
        connector.authenticator = SenderAuthenticator.from_setting(OUR_MX, dnsfunc=keys.dns)
        yield gateway


def spoofed(subject: str, body: str) -> bytes:
    """A stranger's mail with the citizen's From: sent from anywhere, unsigned (our MX's Received on top)."""
    _id, raw = mail(subject, body)
    return trace(raw, "Received: from localhost (unknown [203.0.113.66])\r\n\tby mx.binjiang.example (Postfix) "
                      "with SMTP id 4Xk2Lv8Zz2z9sVk; Mon, 23 Nov 2026 21:40:12 +0800")


def genuine(keys: DkimKeys, subject: str, body: str) -> bytes:
    """The citizen's own mail: signed by their provider (d=example.cn), then received by our MX."""
    _id, raw = mail(subject, body)
    return trace(keys.sign(raw, "example.cn"), MX_RECEIVED)


async def stored_in(gateway: Gateway) -> list[Message]:
    async with gateway.db.sessions() as session:
        return list((await session.execute(
            select(Message).where(Message.direction == "in").order_by(Message.id)
        )).scalars().all())


async def contact_of(gateway: Gateway, message: Message) -> str:
    async with gateway.db.sessions() as session:
        conversation = await session.get(Conversation, message.conversation_id)
    assert conversation is not None
    return conversation.contact_id


def bodies(smtp: SmtpServer) -> list[str]:
    return [m.get_body(("plain",)).get_content().strip() for m in smtp.recorder.messages]  # type: ignore[union-attr]


async def test_a_spoofed_stop_does_not_opt_the_citizen_out_a_genuine_one_does(
    tmp_path: Path, rasa: StandInRasa, dovecot: Dovecot, mailbox: str, smtp: SmtpServer, dkim_keys: DkimKeys
) -> None:
    async with checked_gateway(tmp_path, rasa, dovecot, mailbox, smtp, dkim_keys) as gateway:
        dovecot.append(mailbox, spoofed("STOP", "STOP"))
        await settle(gateway, 1)
        [first] = await stored_in(gateway)
        contact = await contact_of(gateway, first)
        assert first.payload["sender_verified"] is False
        assert first.payload["metadata"]["email"]["authentication"] == {
            "verified": False, "method": "none", "domain": None, "checked_by": "dkim_verify",
            "reason": "no DKIM signature"}
        assert await may_send_proactive(gateway.db, contact, "email")  # still subscribed
        [explained] = smtp.recorder.messages
        assert explained["To"] == CITIZEN  # the answer goes to the real mailbox, which did not write
        assert bodies(smtp)[0] in OPT_UNVERIFIED.values()

        # The same word from the citizen's own mailbox (a valid signature of their provider) counts.
        dovecot.append(mailbox, genuine(dkim_keys, "STOP", "STOP"))
        await settle(gateway, 2)
        second = (await stored_in(gateway))[1]
        assert await contact_of(gateway, second) == contact
        assert "sender_verified" not in second.payload  # the default: verified
        assert second.payload["metadata"]["email"]["authentication"]["method"] == "dkim"
        assert not await may_send_proactive(gateway.db, contact, "email")
        assert bodies(smtp)[1] in OPT_OUT_CONFIRM.values()

        # And a stranger cannot opt them back in either.
        dovecot.append(mailbox, spoofed("START", "START"))
        await settle(gateway, 3)
        assert not await may_send_proactive(gateway.db, contact, "email")
        assert bodies(smtp)[2] in OPT_UNVERIFIED.values()
        async with gateway.db.sessions() as session:
            [row] = (await session.execute(select(ChannelOptOut))).scalars().all()
        assert (row.contact_id, row.channel, row.opted_out, row.source) == (contact, "email", True, "keyword")
    assert rasa.calls == []  # keywords never reach the bot


async def test_the_bot_is_told_whether_the_sender_was_proven(
    tmp_path: Path, rasa: StandInRasa, dovecot: Dovecot, mailbox: str, smtp: SmtpServer, dkim_keys: DkimKeys
) -> None:
    async with checked_gateway(tmp_path, rasa, dovecot, mailbox, smtp, dkim_keys) as gateway:
        dovecot.append(mailbox, spoofed("我的工单", "我的工单处理得怎么样了？"))
        await settle(gateway, 1)
        dovecot.append(mailbox, genuine(dkim_keys, "路灯", "滨江路12号的路灯坏了"))
        await settle(gateway, 2)
        # Our MX's verdict in its Authentication-Results header (no DKIM check here: its signature is a stand-in).
        dovecot.append(mailbox, (FIXTURES / "trusted_spf_aligned.eml").read_bytes())
        await settle(gateway, 3)
        # A stranger's own "dmarc=pass" header, below our MX's: ignored.
        forged = (FIXTURES / "forged_ours_below_our_server.eml").read_bytes()
        dovecot.append(mailbox, forged.replace(b"Subject: STOP", b"Subject: rating").replace(
            b"charset=us-ascii\r\n\r\nSTOP", "charset=UTF-8\r\n\r\n评价 1".encode()))
        await settle(gateway, 4)
    assert rasa.texts() == ["我的工单处理得怎么样了？", "滨江路12号的路灯坏了",
                            "The street light at No. 12 is still broken.", "评价 1"]
    assert [call["metadata"]["sender_verified"] for call in rasa.calls] == [False, True, True, False]
    assert len(smtp.recorder.messages) == 4  # every one answered all the same (at the real address)


async def test_without_a_working_dns_nothing_is_verified_and_mail_still_flows(
    tmp_path: Path, rasa: StandInRasa, dovecot: Dovecot, mailbox: str, smtp: SmtpServer, dkim_keys: DkimKeys
) -> None:
    # The gateway as configured by its settings alone (no authserv-id; DKIM verified with the system resolver, which
    # reaches no DNS server here): a signed mail cannot be proven, and is taken and answered as before.
    async with email_gateway(tmp_path, rasa, dovecot, mailbox, smtp) as gateway:
        dovecot.append(mailbox, genuine(dkim_keys, "STOP", "STOP"))
        await settle(gateway, 1)
        [stored] = await stored_in(gateway)
        assert stored.payload["sender_verified"] is False
        assert stored.payload["metadata"]["email"]["authentication"]["checked_by"] == "dkim_verify"
        assert await may_send_proactive(gateway.db, await contact_of(gateway, stored), "email")
    assert bodies(smtp) and bodies(smtp)[0] in OPT_UNVERIFIED.values()


async def test_the_channels_logs_name_no_sender_and_no_file(
    tmp_path: Path, rasa: StandInRasa, dovecot: Dovecot, mailbox: str, smtp: SmtpServer, dkim_keys: DkimKeys
) -> None:
    # A mail with attachments (one refused: a .docx), and one whose file name, text and a type carry a phone number.
    with_files = (CORPUS / "multipart_attachments.eml").read_bytes()
    message = EmailMessage()
    message["From"] = "Wang Xiaoming <xiaoming.wang@example.cn>"
    message["To"] = "service@binjiang.example"
    message["Subject"] = "身份证复印件"
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain="mail.example.cn")
    message.set_content("身份证复印件见附件，电话 13800138000")
    message.add_attachment(b"PK\x03\x04" + b"\x00" * 64, maintype="application", subtype="zip",
                           filename="王小明-13800138000-身份证.zip")
    # A type is the sender's to write, too.
    message.add_attachment(b"\x00" * 16, maintype="application", subtype="x-13800138000@example.cn", filename="b.bin")
    secrets = ["xiaoming.wang@example.cn", "塌陷.jpg", "report.pdf", "说明.docx", "王小明-13800138000-身份证.zip",
               "13800138000", "attach-1@mail.example.cn", str(message["Message-ID"]).strip("<>"), mailbox]
    async with checked_gateway(tmp_path, rasa, dovecot, mailbox, smtp, dkim_keys, log_level="debug") as gateway:
        # Started (and its logging configured) first; now every event is captured, info and debug included.
        configured = structlog.get_config()
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(0))
        try:
            with capture_logs() as logs:
                dovecot.append(mailbox, with_files, trace(message.as_bytes(), MX_RECEIVED))
                await settle(gateway, 2)
        finally:
            structlog.configure(**configured)
        stored = await stored_in(gateway)
    assert len(stored) == 2 and [len(m.payload["metadata"]["attachments_refused"]) for m in stored] == [1, 2]
    events = {entry["event"] for entry in logs}
    assert {"email.polled", "email.sender_unverified", "media.rejected"} <= events, events
    written = json.dumps(logs, ensure_ascii=False, default=str)
    for secret in secrets:
        assert secret not in written, (secret, [e for e in logs if secret in json.dumps(e, ensure_ascii=False,
                                                                                         default=str)])
