"""Logins under attack: /healthz while 32 wrong passwords arrive at once, against /healthz alone.

A stranger's burst of logins must not stall the event loop that serves citizens (argon2 runs in threads, two at a
time). Printed: /healthz latency idle and during the burst (p50, p99, max), as ratios to idle, and how long the burst
itself took (each account is slowed down after five failures, never locked out).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from app.launch import free_port, gateway_env, start_gateway, wait_http
from bench.processes import stop
from bench.stats import summary_ms, table

PROJECT = Path(__file__).resolve().parent.parent
BURST = 32
PROBES = 200


async def probe(client: httpx.AsyncClient, url: str, count: int, pause: float = 0.005) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.get(url)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200
        await asyncio.sleep(pause)
    return samples


async def measure(base: str) -> tuple[list[float], list[float], float]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        await probe(client, "/healthz", 20)  # warm
        idle = await probe(client, "/healthz", PROBES)

        async def wrong(i: int) -> None:
            await client.post("/api/inbox/login", json={"email": f"someone{i % 4}@bj.gov.cn", "password": "guess"})

        started = time.perf_counter()
        burst = asyncio.gather(*(wrong(i) for i in range(BURST)))
        during = await probe(client, "/healthz", PROBES // 4, pause=0.0)
        await burst
        return idle, during, time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-logins-") as tmp:
        data_dir = Path(tmp)
        port = free_port()
        env = gateway_env(port, f"http://127.0.0.1:{free_port()}", data_dir, LOG_LEVEL="warning",
                          KB_PATH=str(PROJECT / "kb" / "demo_articles.jsonl"), SERVICE_HOURS="24x7",
                          INBOX_ADMIN_EMAIL="admin@bj.gov.cn", INBOX_ADMIN_PASSWORD="a-long-admin-password")
        gateway = start_gateway(env, data_dir / "gateway.log")
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}/healthz", 120, gateway)
            idle, during, burst_seconds = asyncio.run(measure(base))
        finally:
            stop(gateway)
    quiet, loaded = summary_ms(idle), summary_ms(during)
    print(table(
        ["/healthz", "samples", "p50 ms", "p99 ms", "max ms", "p50 ratio", "p99 ratio"],
        [
            ["alone (baseline)", len(idle), f"{quiet['p50']:.2f}", f"{quiet['p99']:.2f}", f"{max(idle) * 1000:.1f}",
             "1.0", "1.0"],
            [f"while {BURST} wrong logins arrive at once", len(during), f"{loaded['p50']:.2f}",
             f"{loaded['p99']:.2f}", f"{max(during) * 1000:.1f}", f"{loaded['p50'] / quiet['p50']:.1f}",
             f"{loaded['p99'] / quiet['p99']:.1f}"],
        ],
    ))
    print(f"the burst of {BURST} wrong logins took {burst_seconds:.1f} s "
          "(argon2 one at a time on one lane, slowed accounts)")


if __name__ == "__main__":
    main()
