"""REST-channel turn latency and throughput, through the gateway vs directly against Rasa, and the stack's memory.

Both paths run the same messages against the same Rasa server (trained on training_data/) in the same run; the
figure is the ratio gateway / Rasa. Afterwards the resident memory of every process of the stack is printed.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import psutil

from bench.processes import bot_stack
from bench.stats import summary_ms, table
from gateway.settings import PROJECT_ROOT

MESSAGES = ["你好", "hello", "居住证怎么办理", "how do I pay my water bill", "谢谢", "thanks", "公积金怎么提取", "bye"]
SEQUENTIAL_TURNS = 120
CONCURRENT_SENDERS = 20
TURNS_PER_SENDER = 12


async def _sender(client: httpx.AsyncClient, url: str, sender: str, turns: int, latencies: list[float]) -> None:
    for i in range(turns):
        started = time.perf_counter()
        response = await client.post(url, json={"sender": sender, "message": MESSAGES[i % len(MESSAGES)]})
        response.raise_for_status()
        latencies.append(time.perf_counter() - started)


async def _run(url: str, senders: int, turns: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(
            *(_sender(client, url, f"bench-{uuid.uuid4().hex[:8]}", turns, latencies) for _ in range(senders))
        )
        elapsed = time.perf_counter() - started
    return latencies, len(latencies) / elapsed


def _rss_mb(process: psutil.Process) -> float:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def main() -> None:
    kb = PROJECT_ROOT.parent / "shared" / "kb" / "articles.jsonl"
    with bot_stack("rest", {"KB_PATH": str(kb)} if kb.exists() else None) as stack:
        paths = {
            "gateway": f"{stack.base}/channels/rest/webhook",
            "rasa": f"{stack.rasa_url}/webhooks/rest/webhook",
        }
        asyncio.run(_run(paths["gateway"], 2, 4))  # warm both paths (model, KB index, connections)
        asyncio.run(_run(paths["rasa"], 2, 4))
        rows = []
        results: dict[tuple[str, int], tuple[dict[str, float], float]] = {}
        for senders, turns in ((1, SEQUENTIAL_TURNS), (CONCURRENT_SENDERS, TURNS_PER_SENDER)):
            for name in ("rasa", "gateway"):
                latencies, throughput = asyncio.run(_run(paths[name], senders, turns))
                results[(name, senders)] = (summary_ms(latencies), throughput)
            for name in ("rasa", "gateway"):
                stats, throughput = results[(name, senders)]
                base_stats, base_throughput = results[("rasa", senders)]
                rows.append([
                    name, senders, f"{stats['p50']:.1f}", f"{stats['p99']:.1f}", f"{throughput:.1f}",
                    f"{stats['p50'] / base_stats['p50']:.2f}", f"{stats['p99'] / base_stats['p99']:.2f}",
                    f"{throughput / base_throughput:.2f}",
                ])
        print(table(
            ["path", "senders", "p50 ms", "p99 ms", "turns/s", "p50 ×rasa", "p99 ×rasa", "turns/s ×rasa"], rows
        ))
        memory = [
            ["rasa server", f"{_rss_mb(psutil.Process(stack.rasa.pid)):.0f}"],
            ["gateway (with KB model)", f"{_rss_mb(psutil.Process(stack.gateway.pid)):.0f}"],
        ]
        total = sum(float(m[1]) for m in memory)
        memory.append(["whole stack", f"{total:.0f}"])
        print()
        print(table(["process", "RSS MB"], memory))
        print(f"whole stack under 3 GB: {'yes' if total < 3072 else 'NO'}")
