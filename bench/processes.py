"""Processes the benchmarks run: the bare FastAPI endpoint webhook figures are a ratio against, the whole stack
(a trained Rasa server and the gateway wired to it), waiting for a server to answer, and stopping a process group."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Stack:
    """A running Rasa server and the gateway wired to it, both on free ports."""

    base: str
    rasa_url: str
    rasa_token: str
    data_dir: Path
    gateway: subprocess.Popen[bytes]
    rasa: subprocess.Popen[bytes]


@contextmanager
def bot_stack(name: str, settings: dict[str, str] | None = None, ready_timeout: float = 300) -> Iterator[Stack]:
    """Train (if needed) and start Rasa and the gateway the way `make run` does, wait until both are ready, and
    stop both afterwards. `settings` are extra environment settings for the gateway."""
    from app.launch import free_port, gateway_env, start_gateway, wait_http
    from bot import server
    from bot.training import ensure_model
    from gateway.keys import installation_secret
    from gateway.settings import PROJECT_ROOT

    model = ensure_model(PROJECT_ROOT, PROJECT_ROOT / "models", server.RASA_BIN)
    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    gateway_port, rasa_port = free_port(), free_port()
    base, rasa_url = f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{rasa_port}"
    # The gateway reads the same installation secrets from data_dir (gateway/keys.py).
    action_token = installation_secret(data_dir, "actions.key")
    rasa_token = installation_secret(data_dir, "rasa.key")
    rasa = server.start_rasa(model, rasa_port, f"{base}/actions/webhook", data_dir / "rasa.log",
                             action_token=action_token, rasa_token=rasa_token)  # fmt: skip
    env = gateway_env(gateway_port, rasa_url, data_dir, LOG_LEVEL="warning", REST_CHANNEL_RATE_PER_MINUTE="0",
                      **(settings or {}))  # fmt: skip
    gateway = start_gateway(env, data_dir / "gateway.log")
    try:
        server.wait_until_ready(rasa_url, ready_timeout, rasa, token=rasa_token)
        wait_http(f"{base}/readyz", ready_timeout, gateway)
        yield Stack(base, rasa_url, rasa_token, data_dir, gateway, rasa)
    finally:
        server.stop(gateway)
        server.stop(rasa)
