"""The e-mail parser on the corpus (tests/channels/email/corpus/: real-shaped messages as clients send them) and the
renderer's headers: fast unit tests, no servers."""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from channels.email import EmailConnector, EmailSettings
from channels.email.parse import html_to_text, parse_mail, reply_subject, strip_quoted, subject_key
from gateway.message import Button, OutboundMessage
from gateway.rendering import match_reply

CORPUS = Path(__file__).resolve().parent / "corpus"
OURS = "service@binjiang.example"
BOT_MAIL = "<20261123093000.1.bot@binjiang.example>"

# What each corpus message must parse into (sender, subject, the new text exactly, machine?, attachments, HTML-only).
EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


def load(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def test_every_corpus_file_is_covered() -> None:
    assert {p.name for p in CORPUS.glob("*.eml")} == set(EXPECTED) | {"bounce_dsn.eml"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_message(name: str) -> None:
    expected = EXPECTED[name]
    sender, subject, text = expected["sender"], expected["subject"], expected["text"]
    machine, attachments, html_only = expected["machine"], expected["attachments"], expected["html_only"]
    mail = parse_mail(load(name), (OURS,))
    assert mail.sender == sender
    assert mail.subject == subject
    assert mail.text == text
    assert bool(mail.machine) is machine, mail.machine
    assert len(mail.attachments) == attachments
    assert mail.html_only is html_only
    assert mail.message_id.startswith("<") and mail.message_id.endswith(">")
    assert "\ufffd" not in mail.text + mail.subject  # nothing undecodable


def test_charsets_and_rfc2047_names() -> None:
    assert parse_mail(load("gb2312_with_gbk_chars_qp.eml")).sender_name == "张玥"  # GBK characters in "GB2312"
    assert parse_mail(load("gb18030_html_only_outlook_zh.eml")).sender_name == "𠮷先生"  # a four-byte GB18030 one
    assert parse_mail(load("reply_qq_foxmail.eml")).sender_name == "李雷"
    assert parse_mail(load("plain_utf8_zh.eml")).sender_name == "王小明"


def test_a_mail_without_message_id_gets_a_stable_one() -> None:
    first = parse_mail(load("no_message_id_8bit_gbk.eml")).message_id
    assert first == parse_mail(load("no_message_id_8bit_gbk.eml")).message_id
    assert first.endswith("@no-message-id>")


def test_full_text_keeps_the_quoted_history() -> None:
    mail = parse_mail(load("reply_qq_foxmail.eml"))
    assert "原始邮件" in mail.full_text and "办理居住证需要身份证和租房合同" in mail.full_text
    assert "原始邮件" not in mail.text


def test_threading_headers() -> None:
    mail = parse_mail(load("reply_gmail_en.eml"))
    assert mail.in_reply_to == (BOT_MAIL,)
    assert mail.references == ("<CAF00-first@mail.gmail.example>", BOT_MAIL)
    assert mail.thread_ids == (BOT_MAIL, "<CAF00-first@mail.gmail.example>")  # nearest first


def test_attachments_decoded_with_their_names() -> None:
    mail = parse_mail(load("multipart_attachments.eml"))
    photo, pdf, docx = mail.attachments
    assert (photo.mime, photo.filename) == ("image/jpeg", "塌陷.jpg") and photo.data.startswith(b"\xff\xd8\xff")
    assert (pdf.mime, pdf.filename) == ("application/pdf", "report.pdf") and pdf.data.startswith(b"%PDF-")
    assert docx.filename == "说明.docx"


def test_bounce_is_a_machine_message_without_its_report_parts() -> None:
    mail = parse_mail(load("bounce_dsn.eml"), (OURS,))
    assert mail.machine == "delivery report"
    assert mail.attachments == ()  # message/delivery-status and text/rfc822-headers are for machines
    assert "550 5.1.1 User unknown" in mail.text
    assert mail.report is not None and mail.report.action == "failed"
    assert mail.report.message_ids == (BOT_MAIL,) and "550 5.1.1" in mail.report.diagnostic


@pytest.mark.parametrize(("header", "value"), [
    ("Auto-Submitted", "auto-generated"), ("Precedence", "bulk"), ("Precedence", "junk"), ("X-Autoreply", "yes"),
    ("X-Autorespond", "vacation"), ("List-Id", "<x.lists.example>"), ("List-Unsubscribe", "<mailto:u@x.example>"),
    ("Return-Path", "<>"),
])
def test_machine_headers(header: str, value: str) -> None:
    raw = (f"From: a@example.cn\r\nTo: {OURS}\r\nSubject: hi\r\n{header}: {value}\r\n\r\nhello\r\n").encode()
    assert parse_mail(raw, (OURS,)).machine


def test_a_person_is_not_a_machine() -> None:
    raw = f"From: a@example.cn\r\nTo: {OURS}\r\nSubject: hi\r\nAuto-Submitted: no\r\n\r\nhello\r\n".encode()
    assert parse_mail(raw, (OURS,)).machine is None
    raw = b"From: postmaster@example.cn\r\nSubject: hi\r\n\r\nhello\r\n"
    assert parse_mail(raw, (OURS,)).machine == "mailer daemon"


def test_quote_stripping_keeps_ordinary_text() -> None:
    text = "我想问一下：\n他在信里写道我们要补材料，是真的吗？\n-- 不是签名\n谢谢"
    assert strip_quoted(text) == text
    assert strip_quoted("ok\n\n> quoted\n> more\n") == "ok"
    assert strip_quoted("first\n> inline quote\nanswer") == "first\nanswer"


def test_html_to_text() -> None:
    assert html_to_text("<p>a&nbsp;b</p><p>c<br>d</p><script>x</script>") == "a\xa0b\n\nc\nd"
    assert html_to_text("<blockquote>q</blockquote>new") == "> q\n\nnew"


def test_subjects() -> None:
    assert reply_subject("Re: RE: 回复：答复: 路灯", "x") == "Re: 路灯"
    assert reply_subject("", "滨江市民服务") == "Re: 滨江市民服务"
    assert subject_key("RE:  Pothole") == subject_key("pothole") == "pothole"


# ---- render ---------------------------------------------------------------------------------------------------------

CONNECTOR = EmailConnector(EmailSettings(imap_host="imap.example", imap_user="u", imap_password="p",
                                         smtp_host="smtp.example", from_address=f"滨江市民服务 <{OURS}>"))
BUTTONS = (Button("办理居住证", "/ask_residence_permit"), Button("路灯报修", "/report_streetlight"))


def test_a_reply_is_threaded_multipart_and_marked_automatic() -> None:
    thread = {"message_id": "<m2@example.cn>", "references": ["<m1@example.cn>"], "subject": "回复：路灯坏了",
              "sender": "bot"}
    [payload] = CONNECTOR.render_in_thread("a@example.cn", OutboundMessage(text="请选择", buttons=BUTTONS), "zh",
                                           thread)
    message = message_from_bytes(CONNECTOR.build(payload).as_bytes(), policy=policy.default)
    assert message["Subject"] == "Re: 路灯坏了"
    assert message["In-Reply-To"] == "<m2@example.cn>"
    assert message["References"] == "<m1@example.cn> <m2@example.cn>"
    assert message["Message-ID"].endswith("@binjiang.example>")
    assert message["Auto-Submitted"] == "auto-replied"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "1. 办理居住证" in text and "2. 路灯报修" in text and "2. 路灯报修" in html
    assert match_reply("2", BUTTONS) == "/report_streetlight"


def test_an_agent_reply_is_not_automatic_and_a_new_thread_has_a_subject() -> None:
    [payload] = CONNECTOR.render_in_thread("a@example.cn", OutboundMessage(text="您好"), "zh", {"sender": "agent"})
    message = CONNECTOR.build(payload)
    assert message["Auto-Submitted"] is None and message["In-Reply-To"] is None
    assert message["Subject"] == "滨江市民服务"
    assert CONNECTOR.render("a@example.cn", OutboundMessage(), "zh") == []  # nothing to say, nothing sent
