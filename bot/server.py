"""Starting and stopping the Rasa server process (its own Python 3.10 environment) from the gateway's side.

Used by `make run` (the stack launcher) and by the test fixtures, so both run the engine the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RASA_BIN = PROJECT_ROOT / ".venv-rasa" / "bin" / "rasa"


def rasa_command(model: Path, port: int, host: str = "127.0.0.1", rasa_bin: Path = RASA_BIN, rasa_token: str = ""
                 ) -> list[str]:
    command = [
        str(rasa_bin), "run", "--enable-api",
        "--model", str(model),
        "--endpoints", str(PROJECT_ROOT / "bot" / "endpoints.yml"),
        "--credentials", str(PROJECT_ROOT / "bot" / "credentials.yml"),
        "--interface", host, "--port", str(port),
    ]
    if rasa_token:  # the HTTP API (replace the model, rewrite trackers) answers only the gateway
        command += ["--auth-token", rasa_token]
    return command


def rasa_environment(action_endpoint_url: str, tracker_db: Path | None = None, action_token: str = "",
                     rasa_token: str = "") -> dict[str, str]:
    """The engine's environment; tracker_db is needed by `rasa run` (endpoints.yml), not by train or validate.
    action_token: what Rasa sends to the gateway's action endpoint; rasa_token: what the gateway input channel
    requires of its caller (both per-installation secrets, see gateway/keys.py)."""
    env = dict(os.environ)
    if tracker_db is not None:
        env["RASA_TRACKER_DB"] = str(tracker_db)
    env.update(
        PYTHONPATH=str(PROJECT_ROOT / "bot" / "engine"),
        ACTION_ENDPOINT_URL=action_endpoint_url,
        ACTION_ENDPOINT_TOKEN=action_token,
        RASA_TOKEN=rasa_token,
        SANIC_HOST="127.0.0.1",
        TF_CPP_MIN_LOG_LEVEL="2",
        RASA_TELEMETRY_ENABLED="false",
        LANG="C.UTF-8",
    )
    return env


def start_rasa(model: Path, port: int, action_endpoint_url: str, log_path: Path | None = None,
               host: str = "127.0.0.1", tracker_db: Path | None = None, *, action_token: str = "",
               rasa_token: str = "") -> subprocess.Popen[bytes]:
    """Start the engine in its own session (so stopping it stops its children too). Dialogues are kept in the
    SQLite file tracker_db (default: rasa-tracker.db beside the log, else in a new temporary directory)."""
    if tracker_db is None:
        tracker_db = (log_path.parent if log_path else Path(tempfile.mkdtemp(prefix="rasa-"))) / "rasa-tracker.db"
    tracker_db.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115 - the child owns the handle
    return subprocess.Popen(
        rasa_command(model, port, host, rasa_token=rasa_token),
        cwd=PROJECT_ROOT,
        env=rasa_environment(action_endpoint_url, tracker_db, action_token, rasa_token),
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        start_new_session=True,
    )


def wait_until_ready(base_url: str, timeout_seconds: float = 180.0, process: subprocess.Popen[bytes] | None = None,
                     token: str = "") -> None:
    """Block until the server has a model loaded; raise if it dies or the time runs out."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the Rasa server exited with code {process.returncode}")
        try:
            response = httpx.get(f"{base_url}/status", params={"token": token} if token else None, timeout=2)
            if response.status_code == 200 and response.json().get("model_file"):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the Rasa server at {base_url} was not ready after {timeout_seconds:.0f} s")


def stop(process: subprocess.Popen[bytes], timeout_seconds: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout_seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
