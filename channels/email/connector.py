"""The e-mail channel's four parts.

verify: a message we can take (it has a sender address); whether its sender is proven (SPF/DKIM/DMARC, see
channels/email/authentication.py) is a separate verdict, `authenticate`. parse: RFC 5322 bytes into a `ParsedMail`
(channels/email/parse.py) and that into a normalized message: the Message-ID is the external id (so the pipeline's
dedupe catches a re-fetch), machine mail carries `no_reply` (stored, never answered), the thread decision (continue a
conversation, or start one) and the authentication verdict ride in the metadata; `sender_verified` is the verdict.
render: one reply per outbound message, multipart/alternative text + HTML, a fresh Message-ID of our domain,
In-Reply-To and References chained to the citizen's last mail, "Re: <subject>" (never "Re: Re:"),
Auto-Submitted: auto-replied on what the bot wrote, buttons as a numbered list.
send: SMTP (stdlib smtplib in a worker thread; a 4xx or a dropped connection is retried by the outbox, a 5xx is not).
"""

from __future__ import annotations

import asyncio
import html
import smtplib
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from typing import Any

from channels.email.authentication import DEFAULT_TIMEOUT_SECONDS, SenderAuthentication, SenderAuthenticator
from channels.email.parse import ParsedMail, parse_mail, reply_subject, subject_key
from gateway.connectors import RenderContext
from gateway.message import Attachment, Capabilities, DeliveryResult, InboundMessage, OutboundMessage
from gateway.rendering import plain_text

MEDIA_KINDS = {"image": "image", "audio": "audio", "video": "video"}
DEFAULT_SUBJECT = {"zh": "滨江市民服务", "en": "Binjiang citizen service"}
# The verdict of a mail nobody checked (a caller that did not ask `authenticate`): not verified.
UNCHECKED = SenderAuthentication(False, "none", None, "none", "not checked")
# How many earlier Message-IDs a reply's References keep (the first one, the thread's root, is always kept).
MAX_REFERENCES = 20


@dataclass(frozen=True)
class EmailSettings:
    imap_host: str
    imap_user: str
    imap_password: str
    smtp_host: str
    from_address: str  # "Name <address>" or a bare address
    imap_port: int = 993
    imap_ssl: bool = True
    folder: str = "INBOX"
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = True
    poll_seconds: float = 60.0
    smtp_timeout_seconds: float = 30.0
    # Sender authentication (channels/email/authentication.py). The authserv-id(s) of our receiving mail server, whose
    # Authentication-Results headers are trusted (comma-separated; empty: none is); then DKIM is verified here.
    authserv_id: str = ""
    verify_dkim: bool = True
    dkim_timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS


class RefusedAttachment(Exception):
    """An attachment that was not kept when the mail was read (its size or type); there is nothing to fetch."""


class EmailConnector:
    name = "email"
    # Attachments arrive inside the mail (the poller keeps them): nothing to fetch later.
    capabilities = Capabilities(buttons=False, images=False, push=True, threads=True)

    def __init__(self, settings: EmailSettings, authenticator: SenderAuthenticator | None = None) -> None:
        self.settings = settings
        # Replaceable (tests give it a DNS function that knows their signing key; nothing leaves the machine there).
        self.authenticator = authenticator or SenderAuthenticator.from_setting(
            settings.authserv_id, settings.verify_dkim, settings.dkim_timeout_seconds
        )
        self.from_name, address = parseaddr(settings.from_address)
        self.from_address = address.strip()
        self.channel_account = self.from_address.lower()
        self.domain = self.channel_account.rpartition("@")[2] or "localhost"

    # -- verify -------------------------------------------------------------------------------------------------------

    def verify(self, mail: ParsedMail) -> str | None:
        """Why this message cannot be taken at all (None: take it). Mail from machines is taken, not answered."""
        if not mail.sender or "@" not in mail.sender:
            return "no sender address"
        return None

    async def authenticate(self, raw: bytes, mail: ParsedMail) -> SenderAuthentication:
        """Whether the mail's From is proven (our receiving server's SPF/DKIM/DMARC verdict, else our DKIM check).
        Never raises: what cannot be checked is not verified."""
        return await self.authenticator.check(raw, mail.sender)

    # -- parse --------------------------------------------------------------------------------------------------------

    def parse(self, raw: bytes) -> ParsedMail:
        return parse_mail(raw, own_addresses=(self.channel_account,))

    def to_inbound(self, mail: ParsedMail, attachments: Sequence[Attachment] = (), thread: str | None = None,
                   refused: Sequence[dict[str, str]] = (),
                   authentication: SenderAuthentication | None = None) -> InboundMessage:
        """The normalized message. `thread`: the id of the conversation this mail continues, or "new".
        `authentication`: the verdict of `authenticate`; without one the sender is not verified."""
        metadata: dict[str, Any] = {
            "email": {
                "message_id": mail.message_id,
                "subject": mail.subject,
                "subject_key": subject_key(mail.subject),
                "references": list(mail.references[-MAX_REFERENCES:]),
                "in_reply_to": list(mail.in_reply_to),
                # Shown to agents: how (and whether) the sender was proven; never the raw headers of the check.
                "authentication": (authentication or UNCHECKED).metadata(),
            },
        }
        if mail.sender_name:
            metadata["display_name"] = mail.sender_name
        if thread:
            metadata["thread"] = thread
        if mail.machine:
            metadata["no_reply"] = mail.machine  # stored and shown, never answered: no mail loop can start
        if refused:
            metadata["attachments_refused"] = list(refused)
        # The bot sees what is new; a first mail that says everything in its subject still says something.
        text = mail.text or ("" if mail.thread_ids or attachments else mail.subject)
        return InboundMessage(
            channel=self.name,
            channel_account=self.channel_account,
            external_user_id=mail.sender,
            external_message_id=mail.message_id,
            text=text,
            timestamp=mail.date.astimezone(UTC) if mail.date and mail.date.tzinfo else datetime.now(UTC),
            attachments=tuple(attachments),
            metadata=metadata,
            # A From: that did not pass SPF/DKIM/DMARC identifies nobody (DESIGN.md, "Trust").
            sender_verified=authentication is not None and authentication.verified,
            raw={"headers": mail.headers, "text": mail.full_text, "html_only": mail.html_only,
                 "attachments": [{"name": a.filename, "mime": a.mime, "size": len(a.data)} for a in mail.attachments]},
        )

    @staticmethod
    def attachment_kind(mime: str) -> str:
        return MEDIA_KINDS.get(mime.split("/", 1)[0], "file")

    # -- render -------------------------------------------------------------------------------------------------------

    def render(self, recipient: str, outbound: OutboundMessage, language: str,
               context: RenderContext | None = None) -> list[dict[str, Any]]:
        """A reply in the thread of the citizen's last mail (the context's thread), else one that starts its own."""
        return self.render_in_thread(recipient, outbound, language, dict(context.thread) if context else {})

    def render_in_thread(self, recipient: str, outbound: OutboundMessage, language: str,
                         thread: dict[str, Any]) -> list[dict[str, Any]]:
        """A reply in the thread of the citizen's last mail: `thread` is that mail's `email` metadata plus the
        `sender` of this message (bot, agent, system)."""
        text = plain_text(outbound, language, buttons=False, images=False)
        if not text:
            return []
        lang = language if language in DEFAULT_SUBJECT else "zh"
        answered = str(thread.get("message_id") or "")
        references = [str(r) for r in thread.get("references") or []]
        if answered and answered not in references:
            references.append(answered)
        if len(references) > MAX_REFERENCES:
            references = references[:1] + references[-(MAX_REFERENCES - 1):]
        subject = thread.get("subject") or ""
        sender = thread.get("sender") or "bot"
        return [{
            "to": recipient,
            "subject": reply_subject(subject, DEFAULT_SUBJECT[lang]) if answered or subject else DEFAULT_SUBJECT[lang],
            "message_id": make_msgid(domain=self.domain),
            "in_reply_to": answered or None,
            "references": references,
            "text": text,
            "html": _html_body(text, lang),
            "language": lang,
            # RFC 3834: what the bot (or the system) wrote is automatic; a person's answer is not.
            "auto_submitted": "auto-replied" if sender == "bot" else ("auto-generated" if sender == "system" else None),
        }]

    def build(self, payload: dict[str, Any]) -> EmailMessage:
        """The RFC 5322 message of a rendered payload."""
        message = EmailMessage()
        message["From"] = formataddr((self.from_name, self.from_address)) if self.from_name else self.from_address
        message["To"] = payload["to"]
        message["Subject"] = payload["subject"]
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = payload["message_id"]
        if payload.get("in_reply_to"):
            message["In-Reply-To"] = payload["in_reply_to"]
        if payload.get("references"):
            message["References"] = " ".join(payload["references"])
        if payload.get("auto_submitted"):
            message["Auto-Submitted"] = payload["auto_submitted"]
            message["X-Auto-Response-Suppress"] = "All"  # asks Exchange not to answer us with its own auto-reply
        message["Content-Language"] = "zh-CN" if payload.get("language") == "zh" else "en"
        message.set_content(payload["text"], charset="utf-8")
        message.add_alternative(payload["html"], subtype="html", charset="utf-8")
        return message

    # -- send ---------------------------------------------------------------------------------------------------------

    async def send(self, payload: dict[str, Any]) -> DeliveryResult:
        message = self.build(payload)
        try:
            await asyncio.to_thread(self._smtp_send, message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            state = "failed" if codes and all(c >= 500 for c in codes) else "retry"
            return DeliveryResult(state, error=f"recipient refused: {exc.recipients}"[:500])  # type: ignore[arg-type]
        except smtplib.SMTPAuthenticationError as exc:  # an operator must fix the credentials; keep the mail
            return DeliveryResult("retry", error=f"SMTP authentication: {exc.smtp_code} {exc.smtp_error!r}"[:500])
        except smtplib.SMTPResponseException as exc:
            state = "failed" if exc.smtp_code >= 500 else "retry"
            return DeliveryResult(state, error=f"SMTP {exc.smtp_code} {exc.smtp_error!r}"[:500])  # type: ignore[arg-type]
        except (smtplib.SMTPException, OSError) as exc:  # connection refused, dropped, timed out
            return DeliveryResult("retry", error=repr(exc)[:500])
        return DeliveryResult("sent", external_id=payload["message_id"])

    def _smtp_send(self, message: EmailMessage) -> None:
        s = self.settings
        timeout = s.smtp_timeout_seconds
        if s.smtp_port == 465:  # implicit TLS (SMTPS)
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=timeout,
                                                  context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=timeout)
        with smtp:
            smtp.ehlo()
            if s.smtp_starttls and s.smtp_port != 465:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password)
            smtp.send_message(message)

    # -- media --------------------------------------------------------------------------------------------------------

    async def fetch_media(self, attachment: dict[str, Any]) -> tuple[str | None, AsyncIterator[bytes]]:
        """Attachments are kept when the mail is read (their bytes are in the mail); one without a reference was
        refused then (size or type: see the message's `attachments_refused`)."""
        raise RefusedAttachment(f"not kept when the mail was read: {attachment.get('name') or 'attachment'}")

    async def close(self) -> None:
        return None


def _html_body(text: str, language: str) -> str:
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    body = "\n".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
    lang = "zh-CN" if language == "zh" else "en"
    return (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"></head>'
            f'<body style="font-family: sans-serif; line-height: 1.5">\n{body}\n</body></html>')
