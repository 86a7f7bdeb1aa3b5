"""SMS and Telegram webhook acks: throughput and p50/p99 latency at 50 concurrent senders vs a bare FastAPI endpoint.

A gateway process (SQLite, in-process coordination) serves the SMS and Telegram channels with a stand-in Rasa and
stand-ins of Twilio's and Telegram's APIs (in this process); a bare FastAPI app that only answers 200 runs beside it
under the same uvicorn. Every acked message is stored before the ack. The ratio channel / bare is the figure (aim:
at least 0.5). Then a replay storm: every delivery sent 5 times at once; the share of duplicates suppressed.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from app.launch import free_port, gateway_env, start_gateway
from bench.processes import start_bare, stop, wait_until_up
from bench.stats import summary_ms, table
from tests.channels.support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    BOT_TOKEN,
    FROM_NUMBER,
    PUBLIC_BASE,
    TG_SECRET,
    StandInRasa,
    StandInTelegram,
    StandInTwilio,
    signed_form,
    sms_form,
    telegram_update,
)

SENDERS = 50
PER_SENDER = 20
REPLAYS = 5


def _requests(kind: str, n: int) -> list[tuple[bytes, dict[str, str]]]:
    out = []
    for i in range(n):
        if kind == "sms":
            sender = f"+86139{random.randrange(10**8):08d}"
            out.append(signed_form("/channels/sms/webhook", sms_form(f"路灯坏了 {i}", sender=sender)))
        else:
            update = telegram_update("message_text", update_id=random.randrange(10**9), text=f"你好 {i}")
            chat = random.randrange(10**9)
            update["message"]["chat"]["id"] = update["message"]["from"]["id"] = chat
            out.append((json.dumps(update).encode(), {"Content-Type": "application/json",
                                                      "X-Telegram-Bot-Api-Secret-Token": TG_SECRET}))
    return out


async def _load(url: str, requests: list[tuple[bytes, dict[str, str]]], senders: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    queue = list(requests)

    async def sender(client: httpx.AsyncClient) -> None:
        while queue:
            body, headers = queue.pop()
            started = time.perf_counter()
            response = await client.post(url, content=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text[:200]

    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(sender(client) for _ in range(senders)))
        elapsed = time.perf_counter() - started
    return latencies, len(latencies) / elapsed


async def _until(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a stand-in's record
        await asyncio.sleep(0.2)


async def _run(data_dir: Path) -> None:
    rasa, twilio, telegram = await StandInRasa().start(), await StandInTwilio().start(), await StandInTelegram().start()
    port, bare_port = free_port(), free_port()
    env = gateway_env(
        port, rasa.url, data_dir, LOG_LEVEL="warning", KB_PATH=str(data_dir / "none.jsonl"),
        TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_FROM_NUMBER=FROM_NUMBER,
        TWILIO_API_BASE_URL=twilio.url, PUBLIC_BASE_URL=PUBLIC_BASE, TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_WEBHOOK_SECRET=TG_SECRET, TELEGRAM_API_BASE_URL=telegram.url,
    )
    gateway = start_gateway(env, data_dir / "gateway.log")
    bare = start_bare(data_dir, bare_port)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_up(f"{base}/healthz")
        await wait_until_up(f"http://127.0.0.1:{bare_port}/bare")
        total = SENDERS * PER_SENDER
        rows: list[list[Any]] = []
        rates: dict[str, float] = {}
        for name, url, kind in (
            ("bare FastAPI", f"http://127.0.0.1:{bare_port}/bare", "sms"),
            ("SMS webhook", f"{base}/channels/sms/webhook", "sms"),
            ("Telegram webhook", f"{base}/channels/telegram/webhook", "telegram"),
        ):
            await _load(url, _requests(kind, 50), 10)  # warm up
            latencies, rate = await _load(url, _requests(kind, total), SENDERS)
            rates[name] = rate
            s = summary_ms(latencies)
            rows.append([name, len(latencies), f"{rate:.0f}", f"{s['p50']:.1f}", f"{s['p99']:.1f}"])
        for row in rows:
            row.append(f"{rates[row[0]] / rates['bare FastAPI']:.2f}")
        print(table(["endpoint", "requests", "acks/s", "p50 ms", "p99 ms", "ratio vs bare"], rows))

        # Replay storm: 200 SMS deliveries, each sent 5 times concurrently in random order.
        unique = [sms_form(f"重放 {i}", sid=f"SM{uuid.uuid4().hex}", sender=f"+86137{i:08d}") for i in range(200)]
        storm = [signed_form("/channels/sms/webhook", form) for form in unique for _ in range(REPLAYS)]
        random.shuffle(storm)
        await _load(f"{base}/channels/sms/webhook", storm, SENDERS)
        await _until(lambda: len({m["To"] for m in twilio.sent if "重放" in m["Body"]}) >= len(unique), 60)
        with sqlite3.connect(data_dir / "gateway.db") as conn:
            sql = "SELECT count(*) FROM messages WHERE direction='in' AND text LIKE '重放%'"
            stored = conn.execute(sql).fetchone()[0]
        replies = sum(1 for m in twilio.sent if "重放" in m["Body"])
        duplicates = len(storm) - len(unique)
        suppressed = (len(storm) - stored) / duplicates
        print(table(["replay storm", "deliveries", "unique", "stored", "replies sent", "duplicates suppressed"],
                    [["SMS x5", len(storm), len(unique), stored, replies, f"{suppressed:.1%}"]]))
    finally:
        for process in (gateway, bare):
            stop(process)
        for server in (rasa, twilio, telegram):
            await server.stop()


def main() -> None:
    asyncio.run(_run(Path(tempfile.mkdtemp(prefix="bench-channels-"))))


if __name__ == "__main__":
    main()
