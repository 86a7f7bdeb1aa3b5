"""Processes the webhook benchmarks run beside the gateway: the bare FastAPI endpoint every figure is a ratio
against, waiting for a server to answer, and stopping a process group."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

BARE_APP = """
from fastapi import FastAPI, Request, Response
app = FastAPI()
@app.post("/bare")
async def bare(request: Request) -> Response:
    await request.body()
    return Response(status_code=200)
"""


def start_bare(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """The baseline: a FastAPI app that reads the body and answers 200, under the same uvicorn (POST /bare)."""
    (data_dir / "bare_app.py").write_text(BARE_APP)
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port), "--log-level", "warning"],
        cwd=data_dir, start_new_session=True,
    )


async def wait_until_up(url: str, timeout: float = 120) -> None:
    """Until `url` answers at all (a route that only takes POST answers GET with 405: up is up)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url, timeout=2)).status_code in (200, 404, 405):
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(url)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
