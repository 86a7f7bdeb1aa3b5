"""WeChat webhook acks per second (safe mode: signatures checked, AES decrypted, stored) vs a bare FastAPI endpoint.

A gateway process (SQLite, in-process coordination) serves the WeChat channel with a stand-in Rasa and a stand-in of
api.weixin.qq.com (in this process); a bare FastAPI app that only answers 200 runs beside it under uvicorn. Pushes
are encrypted with wechatpy's WeChatCrypto, one citizen each, 50 concurrent senders. Two gateway runs: "ack" (the
passive-reply budget 0: stored, then "success" at once; the reply follows as a customer-service message) and
"passive" (budget 4 s: the bot's reply is encrypted into the webhook's answer). Figure: acks/s and the ratio to bare.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from app.launch import free_port, gateway_env, start_gateway
from bench.processes import start_bare, stop, wait_until_up
from bench.stats import summary_ms, table
from tests.channels.support import StandInRasa
from tests.channels.wechat.standin import AES_KEY, APP_ID, APP_SECRET, TOKEN, StandInWeChat, WeChatPush, fixture

SENDERS = 50
PER_SENDER = 20
Request = tuple[dict[str, str], bytes]


def _pushes(n: int, tag: str) -> list[Request]:
    push = WeChatPush()
    return [
        push.safe(fixture("text", content=f"[{tag}] 路灯坏了 {i}", openid=f"oBench{random.randrange(10**12):012d}"))
        for i in range(n)
    ]


async def _load(url: str, requests: list[Request], senders: int) -> tuple[list[float], float, int]:
    """Send every request; (latencies, requests per second, answers carrying a passive reply)."""
    latencies: list[float] = []
    queue = list(requests)
    passive = 0

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal passive
        while queue:
            query, body = queue.pop()
            started = time.perf_counter()
            response = await client.post(url, params=query, content=body, headers={"Content-Type": "text/xml"})
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text[:200]
            passive += "<Encrypt>" in response.text

    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(sender(client) for _ in range(senders)))
        elapsed = time.perf_counter() - started
    return latencies, len(latencies) / elapsed, passive


async def _gateway_run(data_dir: Path, rasa: StandInRasa, wechat: StandInWeChat, budget: float, tag: str
                       ) -> tuple[list[float], float, int, int]:
    port = free_port()
    run_dir = data_dir / tag
    run_dir.mkdir()
    env = gateway_env(
        port, rasa.url, run_dir, LOG_LEVEL="warning", KB_PATH=str(data_dir / "none.jsonl"),
        WECHAT_APP_ID=APP_ID, WECHAT_APP_SECRET=APP_SECRET, WECHAT_TOKEN=TOKEN, WECHAT_ENCODING_AES_KEY=AES_KEY,
        WECHAT_API_BASE_URL=wechat.url, WECHAT_PASSIVE_REPLY_SECONDS=str(budget),
    )
    gateway = start_gateway(env, run_dir / "gateway.log")
    try:
        await wait_until_up(f"http://127.0.0.1:{port}/healthz")
        url = f"http://127.0.0.1:{port}/channels/wechat/webhook"
        await _load(url, _pushes(50, f"warm {tag}"), 10)
        total = SENDERS * PER_SENDER
        latencies, rate, passive = await _load(url, _pushes(total, tag), SENDERS)
        # Every push is answered exactly once: passively, or by a customer-service message from the outbox.
        def answered() -> int:
            return passive + sum(1 for t in wechat.custom_texts() if t.startswith(f"echo:[{tag}]"))

        deadline = time.monotonic() + 120
        while answered() < total and time.monotonic() < deadline:  # noqa: ASYNC110 - polling the stand-in
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # a second reply would come now
        return latencies, rate, passive, answered()
    finally:
        stop(gateway)


async def _run(data_dir: Path) -> None:
    rasa, wechat = await StandInRasa().start(), await StandInWeChat().start()
    bare_port = free_port()
    bare = start_bare(data_dir, bare_port)
    try:
        await wait_until_up(f"http://127.0.0.1:{bare_port}/bare")
        bare_url = f"http://127.0.0.1:{bare_port}/bare"
        await _load(bare_url, _pushes(50, "warm"), 10)
        total = SENDERS * PER_SENDER
        latencies, bare_rate, _ = await _load(bare_url, _pushes(total, "bare"), SENDERS)
        s = summary_ms(latencies)
        rows: list[list[Any]] = [["bare FastAPI", total, f"{bare_rate:.0f}", f"{s['p50']:.1f}", f"{s['p99']:.1f}",
                                  "1.00", "-", "-"]]
        for name, budget, tag in (("WeChat safe mode, ack", 0.0, "ack"),
                                  ("WeChat safe mode, passive reply", 4.0, "passive")):
            latencies, rate, passive, answered = await _gateway_run(data_dir, rasa, wechat, budget, tag)
            s = summary_ms(latencies)
            rows.append([name, len(latencies), f"{rate:.0f}", f"{s['p50']:.1f}", f"{s['p99']:.1f}",
                         f"{rate / bare_rate:.2f}", f"{passive / len(latencies):.0%}", f"{answered}/{total}"])
        print(table(["endpoint", "requests", "acks/s", "p50 ms", "p99 ms", "ratio vs bare", "passive",
                     "answered once"], rows))
    finally:
        stop(bare)
        for server in (rasa, wechat):
            await server.stop()


def main() -> None:
    asyncio.run(_run(Path(tempfile.mkdtemp(prefix="bench-wechat-"))))


if __name__ == "__main__":
    main()
