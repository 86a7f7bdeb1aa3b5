"""E-mail: IMAP in (a poller, IDLE where the server has it), SMTP out (through the outbox).

The same four parts as every channel: verify (a message we can answer: a sender address, not our own), parse
(real mail decoded: MIME, charsets, HTML, quoted history and signatures stripped, attachments, machine mail marked),
render (a threaded multipart text + HTML reply, buttons as a numbered list), send (SMTP). `poller.py` replaces the
webhook: it takes each new message of the mailbox once, with UID bookkeeping kept in the database.
`authentication.py` decides whether a mail's From is proven (our receiving server's SPF/DKIM/DMARC verdict, else a
DKIM check of our own): a sender it cannot prove arrives with `sender_verified=False`.
"""

from channels.email.connector import EmailConnector, EmailSettings

__all__ = ["EmailConnector", "EmailSettings"]
