"""E-mails ingested per second from a Dovecot mailbox of 1,000 messages vs a raw IMAP FETCH of the same messages.

A real Dovecot (Debian's dovecot-imapd, a temporary configuration, as the e-mail tests start it) holds 1,000 messages
made from the test corpus (Chinese charsets, HTML-only, replies with history, attachments, auto-replies, bounces),
each with its own Message-ID, from 100 senders. Baseline: the same UID SEARCH + UID FETCH BODY.PEEK[] chunks the
poller does, on the same aioimaplib client, with no processing. Ingest: the poller's `poll_once` — fetch, parse
(MIME, charsets, HTML, quote stripping), thread lookup, attachments kept, stored through the pipeline (dedupe,
contact, conversation) in SQLite — without the bot turns (those are the REST benchmark's subject). The ratio
ingest / fetch is the figure; parse alone and the pipeline's storing alone (the same messages, parsed beforehand) show
where the time goes. A second pass shows the cost of finding nothing new.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aioimaplib
import httpx

from bench.stats import table
from channels.email import EmailConnector, EmailSettings
from channels.email.parse import parse_mail
from channels.email.poller import EmailPoller, parse_fetch
from gateway.coordination import build_coordination
from gateway.engine import RasaClient
from gateway.language import LanguageTagger
from gateway.logs import configure_logging
from gateway.media import MediaStore
from gateway.metrics import build_metrics
from gateway.pipeline import Pipeline
from gateway.storage import Database
from tests.channels.email.mailservers import PASSWORD, Dovecot

MESSAGES = 1000
SENDERS = 100
CORPUS = Path(__file__).resolve().parent.parent / "tests" / "channels" / "email" / "corpus"
US = "service@binjiang.example"


def _mailbox_messages() -> list[bytes]:
    corpus = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
    out = []
    for i in range(MESSAGES):
        # Headers put first win over the corpus message's own (the parser reads the first occurrence).
        head = (f"Message-ID: <bench-{i}@mail.example.cn>\r\nFrom: Citizen {i % SENDERS} "
                f"<citizen{i % SENDERS}@example.cn>\r\n").encode()
        out.append(head + corpus[i % len(corpus)])
    return out


async def _raw_fetch(port: int, user: str) -> int:
    imap = aioimaplib.IMAP4(host="127.0.0.1", port=port, timeout=60)
    await imap.wait_hello_from_server()
    await imap.login(user, PASSWORD)
    await imap.select("INBOX")
    found = await imap.uid_search("UID 1:*")
    uids = [int(u) for line in found.lines[:-1] for u in bytes(line).split() if u.isdigit()]
    fetched = 0
    for start in range(0, len(uids), 50):
        response = await imap.uid("fetch", ",".join(map(str, uids[start : start + 50])), "(UID BODY.PEEK[])")
        fetched += len(parse_fetch(response.lines))
    await imap.logout()
    return fetched


def _connector(port: int, user: str) -> EmailConnector:
    return EmailConnector(EmailSettings(
        imap_host="127.0.0.1", imap_port=port, imap_ssl=False, imap_user=user, imap_password=PASSWORD,
        smtp_host="127.0.0.1", from_address=f"滨江市民服务 <{US}>",
    ))


async def _pipeline(db_path: Path) -> tuple[Database, httpx.AsyncClient, Pipeline]:
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    await db.migrate()
    http = httpx.AsyncClient()
    pipeline = Pipeline(db, build_coordination(""), RasaClient("http://127.0.0.1:9", http), LanguageTagger(),
                        build_metrics())
    return db, http, pipeline


async def _store_only(messages: list[bytes], data_dir: Path) -> float:
    """The pipeline's part alone: messages parsed beforehand, stored one by one (as the poller does)."""
    db, http, pipeline = await _pipeline(data_dir / "store-only.db")
    connector = _connector(0, "x")
    inbound = [connector.to_inbound(connector.parse(raw), thread="new") for raw in messages]
    try:
        started = time.perf_counter()
        for message in inbound:
            await pipeline.receive(message)
        return time.perf_counter() - started
    finally:
        await http.aclose()
        await db.dispose()


async def _ingest(port: int, user: str, data_dir: Path) -> tuple[float, int, float, int]:
    db, http, pipeline = await _pipeline(data_dir / "bench.db")
    connector = _connector(port, user)
    poller = EmailPoller(connector, db, pipeline, MediaStore(data_dir, 10_000_000), spawn=None)
    imap = await poller.connect()
    try:
        started = time.perf_counter()
        taken = await poller.poll_once(imap)
        ingest_seconds = time.perf_counter() - started
        started = time.perf_counter()
        again = await poller.poll_once(imap)
        idle_seconds = time.perf_counter() - started
    finally:
        await imap.logout()
        await http.aclose()
        await db.dispose()
    return ingest_seconds, taken, idle_seconds, again


def main() -> None:
    configure_logging("error", False)  # a line per message would time the terminal
    dovecot = Dovecot.start()
    try:
        user = dovecot.new_user()
        messages = _mailbox_messages()
        dovecot.append(user, *messages)
        started = time.perf_counter()
        fetched = asyncio.run(_raw_fetch(dovecot.port, user))
        fetch_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for raw in messages:
            parse_mail(raw, (US,))
        parse_seconds = time.perf_counter() - started
        with tempfile.TemporaryDirectory(prefix="bench-email-") as tmp:
            ingest_seconds, taken, idle_seconds, again = asyncio.run(_ingest(dovecot.port, user, Path(tmp)))
            store_seconds = asyncio.run(_store_only(messages, Path(tmp)))
    finally:
        dovecot.stop()
    fetch_rate = fetched / fetch_seconds
    ingest_rate = taken / ingest_seconds
    print(table(
        ["path", "messages", "seconds", "messages/s", "vs raw fetch"],
        [
            ["raw IMAP FETCH (baseline)", fetched, f"{fetch_seconds:.2f}", f"{fetch_rate:.0f}", "1.00"],
            ["parse only (no I/O)", len(messages), f"{parse_seconds:.2f}", f"{len(messages) / parse_seconds:.0f}",
             f"{len(messages) / parse_seconds / fetch_rate:.2f}"],
            ["store only (pipeline.receive, pre-parsed)", len(messages), f"{store_seconds:.2f}",
             f"{len(messages) / store_seconds:.0f}", f"{len(messages) / store_seconds / fetch_rate:.2f}"],
            ["ingest (poll_once: fetch+parse+store)", taken, f"{ingest_seconds:.2f}", f"{ingest_rate:.0f}",
             f"{ingest_rate / fetch_rate:.2f}"],
            ["second poll (nothing new)", again, f"{idle_seconds * 1000:.1f} ms", "-", "-"],
        ],
    ))


if __name__ == "__main__":
    main()
