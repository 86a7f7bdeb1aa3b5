"""The e-mail channel's settings (IMAP in, SMTP out; environment variables, combined into the app's Settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class EmailChannelSettings(BaseSettings):
    """The e-mail channel runs when the IMAP host and user, the SMTP host and EMAIL_FROM are set."""

    email_imap_host: str = Field(
        "", description="IMAP server; the e-mail channel runs when it, the user, SMTP and EMAIL_FROM are set."
    )
    email_imap_port: int = Field(993, description="IMAP port (993 with SSL, 143 without).")
    email_imap_user: str = Field("", description="IMAP login of the mailbox citizens write to.")
    email_imap_password: str = Field("", description="IMAP password.")
    email_imap_ssl: bool = Field(True, description="IMAP over TLS (IMAPS); false = plain IMAP (a local server).")
    email_imap_folder: str = Field("INBOX", description="The mailbox folder that is read.")
    email_smtp_host: str = Field("", description="SMTP server replies are sent through.")
    email_smtp_port: int = Field(587, description="SMTP port (587 submission with STARTTLS, 465 implicit TLS).")
    email_smtp_user: str = Field("", description="SMTP login; empty = no authentication.")
    email_smtp_password: str = Field("", description="SMTP password.")
    email_smtp_starttls: bool = Field(True, description="Upgrade the SMTP connection with STARTTLS.")
    email_from: str = Field(
        "", description="The address replies come from (Name <address>); mail from it is never answered."
    )
    email_poll_seconds: float = Field(
        60.0, gt=0, description="How often the mailbox is polled when the server has no IDLE."
    )
    email_authserv_id: str = Field(
        "", description="Authserv-id(s) of our receiving mail server (comma-separated) whose topmost "
        "Authentication-Results headers are trusted; empty = none is, DKIM is verified by the gateway."
    )
    email_verify_dkim: bool = Field(
        True, description="Verify DKIM signatures ourselves when no trusted Authentication-Results header is present."
    )
