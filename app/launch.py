"""Starting the gateway as a process and waiting for it: shared by `make run`, the test fixtures and the benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.settings import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_env(port: int, rasa_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """An environment for a gateway on embedded defaults (SQLite in `data_dir`, in-process coordination)."""
    env = dict(os.environ)
    env.update(
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(port),
        DATA_DIR=str(data_dir),
        DATABASE_URL="",
        REDIS_URL="",
        RASA_URL=rasa_url,
    )
    env.update(extra)
    return env


def start_gateway(env: dict[str, str] | None = None, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115 - the child owns the handle
    return subprocess.Popen(
        [sys.executable, "-m", "app"], cwd=PROJECT_ROOT, env=env,
        stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True,
    )


def wait_http(url: str, timeout_seconds: float, process: subprocess.Popen[bytes] | None = None,
              ok: tuple[int, ...] = (200,)) -> None:
    deadline = time.monotonic() + timeout_seconds
    last = ""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} while waiting for {url}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code in ok:
                return
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout_seconds} s: {last}")
