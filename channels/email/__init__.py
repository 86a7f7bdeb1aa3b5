"""E-mail: IMAP in (a poller, IDLE where the server has it), SMTP out (through the outbox).

The same four parts as every channel: verify (a message we can answer: a sender address, not our own), parse
(real mail decoded: MIME, charsets, HTML, quoted history and signatures stripped, attachments, machine mail marked),
render (a threaded multipart text + HTML reply, buttons as a numbered list), send (SMTP). `poller.py` replaces the
webhook: it takes each new message of the mailbox once, with UID bookkeeping kept in the database.
`authentication.py` decides whether a mail's From is proven (our receiving server's SPF/DKIM/DMARC verdict, else a
DKIM check of our own): a sender it cannot prove arrives with `sender_verified=False`.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.email.connector import EmailConnector, EmailSettings
from channels.email.poller import EmailPoller
from channels.email.settings import EmailChannelSettings
from gateway.connectors import BuiltChannel, ChannelParts, ChannelPlugin, PushConnector
from gateway.media import MediaStore


@dataclass(frozen=True)
class EmailChannel:
    name: str = "email"
    settings: type[EmailChannelSettings] = EmailChannelSettings

    def build(self, settings: EmailChannelSettings, parts: ChannelParts) -> BuiltChannel | None:
        if not (settings.email_imap_host and settings.email_imap_user and settings.email_smtp_host
                and settings.email_from):
            return None
        connector = EmailConnector(EmailSettings(
            imap_host=settings.email_imap_host, imap_user=settings.email_imap_user,
            imap_password=settings.email_imap_password, smtp_host=settings.email_smtp_host,
            from_address=settings.email_from, imap_port=settings.email_imap_port, imap_ssl=settings.email_imap_ssl,
            folder=settings.email_imap_folder, smtp_port=settings.email_smtp_port,
            smtp_user=settings.email_smtp_user, smtp_password=settings.email_smtp_password,
            smtp_starttls=settings.email_smtp_starttls, poll_seconds=settings.email_poll_seconds,
            authserv_id=settings.email_authserv_id, verify_dkim=settings.email_verify_dkim,
        ))
        _protocols: tuple[PushConnector] = (connector,)  # mypy holds it to the protocol
        # No webhook: a poller reads the mailbox (IDLE or polling); attachments kept under the media limits.
        poller = EmailPoller(
            connector, parts.db, parts.intake, MediaStore(parts.data_dir, parts.media_max_bytes),
            spawn=parts.intake.run_soon, receipt=parts.intake.receipt, coordination=parts.coordination,
        )
        return BuiltChannel(connector, workers=[("email-poller", poller.run)])


CHANNEL: ChannelPlugin = EmailChannel()

__all__ = ["CHANNEL", "EmailConnector", "EmailSettings"]
