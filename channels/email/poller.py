"""The e-mail channel's inbound worker: takes each new message of an IMAP mailbox once, in place of a webhook.

- IMAP client: `aioimaplib` (asyncio, with IDLE), so the poller is one task in the gateway's loop, not a thread.
- New messages: `UID SEARCH UID <last+1>:*`, then `UID FETCH … BODY.PEEK[]` in chunks (PEEK: the mailbox's \\Seen
  flags stay the staff's). The last UID taken and the folder's UIDVALIDITY are stored in `email_mailboxes` after each
  chunk. Without that bookkeeping (the first start, or a changed UIDVALIDITY) only mail of the last day is taken: a
  mailbox the gateway is newly pointed at holds history, not a queue to answer. The Message-ID (the external id) lets
  the pipeline's dedupe drop what was taken before — as it does for a message fetched again after a crash mid-chunk.
  A message no parser can read is logged and passed over; a failure to store one stops the pass (it is retried).
- Waiting: IDLE where the server has it (woken by EXISTS, re-issued every few minutes), else every
  EMAIL_POLL_SECONDS. A lost connection is reopened with a growing pause.
- Threading: a mail answering a Message-ID we received or sent continues that conversation; otherwise a mail with the
  subject of the sender's latest conversation continues it; anything else starts a new conversation.
- A bounce (RFC 3464 report, "Action: failed") of a reply we sent marks that reply failed through the outbox's
  receipts, so agents see it did not arrive; the bounce itself is stored and never answered.
- Attachments are kept (gateway/media.py: same size and type limits as every channel) before the message is stored;
  refused ones are listed in the message's metadata with the reason.
- The sender is authenticated (channels/email/authentication.py) before the message is stored: a From: that did not
  pass SPF/DKIM/DMARC arrives with `sender_verified=False`.
- Logs name no person: no address (not even our mailbox login), no attachment name, no Message-ID (it often holds
  the sender's address); counts, kinds and a short hash of the Message-ID instead (`mail_ref`).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import aioimaplib
import structlog
from sqlalchemy import BigInteger, DateTime, String, func, select, union_all
from sqlalchemy.orm import Mapped, mapped_column

from channels.email.connector import EmailConnector
from channels.email.parse import ParsedMail, subject_key
from gateway.coordination import Coordination
from gateway.media import MediaRejected, MediaStore
from gateway.message import Attachment, InboundMessage
from gateway.outbox import OutboxRow
from gateway.pipeline import Received
from gateway.storage import ChannelIdentity, Conversation, Database, Message
from gateway.storage.models import Base

log = structlog.get_logger(__name__)

FETCH_CHUNK = 50
IDLE_REFRESH_SECONDS = 300.0  # servers drop an IDLE after 30 min; NATs sooner
MAX_BACKOFF_SECONDS = 300.0
FIRST_RUN_DAYS = 1  # without bookkeeping, mail older than this is not taken (see poll_once)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FETCH_HEAD = re.compile(rb"^\d+ FETCH \(.*\{(\d+)\}$")
_UID = re.compile(rb"UID (\d+)")
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_PLAIN_MIME = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,63}/[a-z0-9][a-z0-9.+-]{0,127}$")

Spawn = Callable[[Coroutine[Any, Any, Any], str], Any]
# The outbox's delivery receipts: (channel, external id, state, error) → whether the id was one of ours.
Receipt = Callable[[str, str, str, str | None], Awaitable[bool]]


class MailboxState(Base):
    """Where the poller is in one mailbox folder."""

    __tablename__ = "email_mailboxes"

    mailbox: Mapped[str] = mapped_column(String(400), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ImapError(Exception):
    """The IMAP server refused a command."""


def mail_ref(message_id: str) -> str:
    """What logs say instead of a Message-ID (which is often "<…sender's address…>"): a short hash of it, the same
    for the same mail, so log lines can be matched with the stored message by an operator who has it."""
    return hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _error_kind(exc: BaseException) -> str:
    """An exception for logs: its type only. Its text may quote the server's reply or the mail (addresses)."""
    return type(exc).__name__


def parse_fetch(lines: Sequence[bytes | bytearray]) -> list[tuple[int, bytes]]:
    """(uid, message bytes) from an aioimaplib `UID FETCH … BODY.PEEK[]` response."""
    found: list[tuple[int, bytes]] = []
    i = 0
    while i < len(lines):
        line = bytes(lines[i])
        head = _FETCH_HEAD.match(line)
        if head and i + 1 < len(lines) and isinstance(lines[i + 1], bytearray | bytes):
            literal = bytes(lines[i + 1])
            uid = _UID.search(line) or (_UID.search(bytes(lines[i + 2])) if i + 2 < len(lines) else None)
            if uid is not None:
                found.append((int(uid.group(1)), literal))
            i += 2
            continue
        i += 1
    return found


class Receiver(Protocol):
    """Where mail goes: the gateway's intake (or the pipeline itself, in the benchmark)."""

    async def receive(self, inbound: InboundMessage) -> Received: ...

    async def process(self, conversation_id: str) -> None: ...


@dataclass
class EmailPoller:
    connector: EmailConnector
    db: Database
    pipeline: Receiver
    media: MediaStore
    spawn: Spawn | None = None  # runs the turns; None = the caller processes them (the benchmark)
    receipt: Receipt | None = None  # a bounce of a reply we sent marks that reply failed
    coordination: Coordination | None = None  # several workers: one takes the mailbox's new mail at a time

    @property
    def mailbox(self) -> str:
        s = self.connector.settings
        return f"{s.imap_user}@{s.imap_host}:{s.imap_port}/{s.folder}"

    @property
    def mailbox_ref(self) -> str:
        """The mailbox in logs: the login (an e-mail address) hashed."""
        s = self.connector.settings
        login = hashlib.sha256(s.imap_user.encode()).hexdigest()[:8]
        return f"{s.imap_host}:{s.imap_port}/{s.folder}#{login}"

    # -- the loop -----------------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Forever: take what is new, then wait (IDLE or the poll interval); reconnect after failures."""
        backoff = 1.0
        while True:
            imap: aioimaplib.IMAP4 | None = None
            try:
                imap = await self.connect()
                backoff = 1.0
                while True:
                    await self._poll_exclusively(imap)
                    await self.wait(imap)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server went away, refused us, or a message broke us: try again later
                log.error("email.poll_failed", mailbox=self.mailbox_ref, error=_error_kind(exc), retry_in=backoff)
            finally:
                if imap is not None:
                    await _quietly_logout(imap)
            await asyncio.sleep(backoff)
            backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)

    async def _poll_exclusively(self, imap: aioimaplib.IMAP4) -> int:
        """With several workers each watches the mailbox, but one at a time takes what is new (the UID bookkeeping
        then tells the next one there is nothing left), so no message is fetched and parsed twice."""
        if self.coordination is None:
            return await self.poll_once(imap)
        async with self.coordination.lock(f"email:poll:{self.mailbox}", hold_seconds=300, wait_seconds=300):
            return await self.poll_once(imap)

    async def connect(self) -> aioimaplib.IMAP4:
        s = self.connector.settings
        imap: aioimaplib.IMAP4
        if s.imap_ssl:
            imap = aioimaplib.IMAP4_SSL(host=s.imap_host, port=s.imap_port, timeout=60)
        else:
            imap = aioimaplib.IMAP4(host=s.imap_host, port=s.imap_port, timeout=60)
        await imap.wait_hello_from_server()
        _ok(await imap.login(s.imap_user, s.imap_password), "LOGIN")
        return imap

    async def wait(self, imap: aioimaplib.IMAP4) -> None:
        """Until the server says something arrived (IDLE) or the poll interval passed."""
        seconds = self.connector.settings.poll_seconds
        if not imap.has_capability("IDLE"):
            await asyncio.sleep(seconds)
            return
        idle = await imap.idle_start(timeout=IDLE_REFRESH_SECONDS + 30)
        try:
            while True:
                pushed = await imap.wait_server_push(timeout=IDLE_REFRESH_SECONDS)
                if any(b"EXISTS" in bytes(line) for line in (pushed if isinstance(pushed, list) else [pushed])):
                    return
        except TimeoutError:
            return  # re-issue the IDLE (and poll once) now and then
        finally:
            if imap.has_pending_idle():
                imap.idle_done()
            await asyncio.wait_for(idle, 30)

    # -- one pass -----------------------------------------------------------------------------------------------------

    async def poll_once(self, imap: aioimaplib.IMAP4) -> int:
        """Take every message after the last UID taken; returns how many were taken (stored or duplicates)."""
        selected = await imap.select(self.connector.settings.folder)
        _ok(selected, "SELECT")
        validity = next((int(m.group(1)) for line in selected.lines if (m := _UIDVALIDITY.search(bytes(line)))), 0)
        known = await self._last_uid(validity)
        if known is None:
            # No bookkeeping for this folder (first start, or its UIDVALIDITY changed): what is older than a day is
            # history, not a queue to answer; from here on every message counts.
            since = datetime.now(UTC) - timedelta(days=FIRST_RUN_DAYS)
            found = await imap.uid_search(f"SINCE {since.day}-{_MONTHS[since.month - 1]}-{since.year}")
        else:
            found = await imap.uid_search(f"UID {known + 1}:*")
        _ok(found, "UID SEARCH")
        last = known or 0
        uids = sorted(int(u) for line in found.lines[:-1] for u in bytes(line).split() if u.isdigit())
        uids = [u for u in uids if u > last]  # "n:*" names the highest UID even when it is below n
        taken = 0
        for start in range(0, len(uids), FETCH_CHUNK):
            chunk = uids[start : start + FETCH_CHUNK]
            fetched = await imap.uid("fetch", ",".join(map(str, chunk)), "(UID BODY.PEEK[])")
            _ok(fetched, "UID FETCH")
            for uid, raw in parse_fetch(fetched.lines):
                await self.take(raw, uid)
                taken += 1
            await self._save(validity, chunk[-1])
        if taken:
            log.info("email.polled", mailbox=self.mailbox_ref, taken=taken, last_uid=uids[-1])
        return taken

    async def take(self, raw: bytes, uid: int | None = None) -> str | None:
        """Store one message (and start its turn); returns its conversation id, or None when it was skipped."""
        try:
            mail = self.connector.parse(raw)
        except Exception as exc:  # a message no parser can read must not block the mailbox behind it
            log.error("email.unreadable", uid=uid, size=len(raw), error=_error_kind(exc))
            return None
        ref = mail_ref(mail.message_id)
        problem = self.connector.verify(mail)
        if problem is not None:
            log.warning("email.skipped", uid=uid, mail_ref=ref, reason=problem)
            return None
        authentication = await self.connector.authenticate(raw, mail)
        if not authentication.verified:
            # The reason is a fixed phrase (never a header value); the mail is taken all the same.
            log.info("email.sender_unverified", mail_ref=ref, checked_by=authentication.checked_by,
                     reason=authentication.reason)
        thread = await self.thread_of(mail)
        attachments, refused = await self._keep_attachments(mail, ref)
        received = await self.pipeline.receive(
            self.connector.to_inbound(mail, attachments, thread, refused, authentication)
        )
        if mail.machine:
            # The kind only ("auto-submitted", "precedence" …): the header value after it is the sender's to choose.
            log.info("email.machine", mail_ref=ref, kind=mail.machine.split(":", 1)[0])
        report = mail.report
        if report is not None and report.action == "failed" and self.receipt is not None:
            for reported in report.message_ids:  # our reply did not reach the citizen: agents see it failed
                if await self.receipt(self.connector.name, reported, "failed", f"bounced: {report.diagnostic}"):
                    # The diagnostic names the recipient ("550 5.1.1 <citizen@…>"): it is on the reply, not here.
                    log.warning("email.bounced", reply_ref=mail_ref(reported), mail_ref=ref)
        if not received.duplicate and self.spawn is not None:
            self.spawn(self.pipeline.process(received.conversation_id), "email-turn")
        return received.conversation_id

    # -- threading ----------------------------------------------------------------------------------------------------

    async def thread_of(self, mail: ParsedMail) -> str:
        """The conversation this mail continues, or "new"."""
        account = self.connector.channel_account
        async with self.db.sessions() as session:
            if mail.thread_ids:
                ids = list(mail.thread_ids)
                received = select(Message.external_id, Message.conversation_id).where(
                    Message.channel == self.connector.name, Message.channel_account == account,
                    Message.direction == "in", Message.external_id.in_(ids),
                )
                sent = (
                    select(OutboxRow.external_id, Message.conversation_id)
                    .join(Message, Message.id == OutboxRow.message_id)
                    .where(OutboxRow.channel == self.connector.name, OutboxRow.external_id.in_(ids))
                )
                known = {str(mid): str(c) for mid, c in (await session.execute(union_all(received, sent))).all()}
                for mid in ids:  # the nearest ancestor we know
                    if mid in known:
                        return known[mid]
            key = subject_key(mail.subject)
            if not key:
                return "new"
            # The latest inbound mail of the sender's latest conversation (each step on an index).
            conversation = (
                select(Conversation.id)
                .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
                .where(ChannelIdentity.channel == self.connector.name, ChannelIdentity.channel_account == account,
                       ChannelIdentity.external_user_id == mail.sender)
                .order_by(Conversation.last_activity_at.desc())
                .limit(1)
                .scalar_subquery()
            )
            last_in = (
                select(func.max(Message.id))
                .where(Message.conversation_id == conversation, Message.direction == "in")
                .scalar_subquery()
            )
            latest = (await session.execute(
                select(Message.conversation_id, Message.payload).where(Message.id == last_in)
            )).first()
        if latest is None:
            return "new"
        earlier = ((latest.payload or {}).get("metadata") or {}).get("email") or {}
        return str(latest.conversation_id) if earlier.get("subject_key") == key else "new"

    # -- attachments and bookkeeping ----------------------------------------------------------------------------------

    async def _keep_attachments(self, mail: ParsedMail, ref: str) -> tuple[list[Attachment], list[dict[str, str]]]:
        kept: list[Attachment] = []
        refused: list[dict[str, str]] = []
        for item in mail.attachments:
            try:
                stored = await self.media.keep_bytes(item.mime, item.data)
            except MediaRejected as exc:
                refused.append({"name": item.filename or "", "mime": item.mime, "reason": str(exc)})
                # The file's name is the citizen's (it may name them): the type and size say enough here. The type
                # is the sender's to write ("image/someone@…" parses): only a plain one is logged.
                mime = item.mime if _PLAIN_MIME.match(item.mime) else "(not a plain type)"
                log.warning("media.rejected", mail_ref=ref, mime=mime, size=len(item.data),
                            reason=str(exc).replace(item.mime, mime))
                continue
            kept.append(Attachment(kind=self.connector.attachment_kind(stored.mime),  # type: ignore[arg-type]
                                   ref=stored.ref, mime=stored.mime, name=item.filename))
        return kept, refused

    async def _last_uid(self, validity: int) -> int | None:
        """The last UID taken, or None when there is no bookkeeping valid for this folder."""
        async with self.db.sessions() as session:
            state = await session.get(MailboxState, self.mailbox)
        if state is None:
            return None
        if state.uidvalidity != validity:
            # The folder was rebuilt: its UIDs mean other messages now. Start over; Message-IDs catch repeats.
            log.warning("email.uidvalidity_changed", mailbox=self.mailbox_ref, before=state.uidvalidity,
                        now=validity)
            return None
        return int(state.last_uid)

    async def _save(self, validity: int, last_uid: int) -> None:
        async with self.db.sessions() as session, session.begin():
            state = await session.get(MailboxState, self.mailbox)
            now = datetime.now(UTC)
            if state is None:
                session.add(MailboxState(mailbox=self.mailbox, uidvalidity=validity, last_uid=last_uid,
                                         updated_at=now))
            elif state.uidvalidity != validity or last_uid > state.last_uid:
                state.uidvalidity, state.last_uid, state.updated_at = validity, last_uid, now


def _ok(response: Any, command: str) -> None:
    if getattr(response, "result", None) != "OK":
        lines = b" ".join(bytes(x) for x in getattr(response, "lines", [])[-1:])
        raise ImapError(f"{command}: {getattr(response, 'result', '?')} {lines[:200]!r}")


async def _quietly_logout(imap: aioimaplib.IMAP4) -> None:
    try:
        await asyncio.wait_for(imap.logout(), 5)
    except Exception:  # already gone
        pass
