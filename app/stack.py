"""`make run`: train the bot if its data changed, start the Rasa server and the gateway, print where to go, and stop
everything on Ctrl-C (or SIGTERM). Every setting comes from the environment; nothing prompts."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import structlog

from app.launch import start_gateway
from app.settings import Settings
from bot import server
from bot.training import ensure_model
from gateway.keys import installation_secret
from gateway.logs import configure_logging
from gateway.settings import PROJECT_ROOT

log = structlog.get_logger("stack")


def main() -> int:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = False

    def shutdown(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    try:
        env = dict(os.environ)
        # The two processes share the installation's secrets (DATA_DIR keys unless the settings name them).
        env["RASA_TOKEN"] = installation_secret(settings.data_dir, "rasa.key", settings.rasa_token)
        env["ACTIONS_TOKEN"] = installation_secret(settings.data_dir, "actions.key", settings.actions_token)
        if settings.rasa_managed:
            model = ensure_model(PROJECT_ROOT, settings.rasa_models_dir, server.RASA_BIN)
            rasa_port = int(settings.rasa_url.rsplit(":", 1)[1].split("/")[0])
            rasa_log = settings.data_dir / "rasa.log"
            action_url = f"http://127.0.0.1:{settings.gateway_port}/actions/webhook"
            log.info("stack.rasa_starting", model=model.name, port=rasa_port, log=str(rasa_log))
            processes.append(("rasa", server.start_rasa(
                model, rasa_port, action_url, rasa_log, tracker_db=settings.data_dir / "rasa-tracker.db",
                action_token=env["ACTIONS_TOKEN"], rasa_token=env["RASA_TOKEN"],
            )))
        first_admin = _first_admin(settings, env)
        processes.append(("gateway", start_gateway(env)))
        _announce(settings, first_admin)
        while not stopping:
            for name, process in processes:
                if process.poll() is not None:
                    log.error("stack.process_exited", process=name, code=process.returncode)
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        for name, process in reversed(processes):
            log.info("stack.stopping", process=name)
            server.stop(process)


def _first_admin(settings: Settings, env: dict[str, str]) -> Path | None:
    """Someone must be able to log in to the inbox and the studio on a fresh machine without being asked anything:
    when INBOX_ADMIN_EMAIL/PASSWORD are not set, an admin with a random password is made once and the password kept
    in DATA_DIR (readable by this user only), as Jenkins and Grafana do. Set the two settings to choose your own."""
    if settings.inbox_admin_email and settings.inbox_admin_password:
        return None
    secret_file = settings.data_dir / "initial-admin.txt"
    if secret_file.exists():
        email, password = secret_file.read_text(encoding="utf-8").split()[:2]
    else:
        email, password = "admin@localhost", secrets.token_urlsafe(12)
        secret_file.touch(mode=0o600)
        secret_file.write_text(f"{email} {password}\n", encoding="utf-8")
    env["INBOX_ADMIN_EMAIL"], env["INBOX_ADMIN_PASSWORD"] = email, password
    return secret_file


def _announce(settings: Settings, first_admin: Path | None) -> None:
    base = settings.base_url
    lines = [
        "",
        "  Binjiang citizen-service gateway is starting (the bot needs ~40 s to load; /readyz says when).",
        f"  Web chat:     {base}/",
        f"  Agent inbox:  {base}/inbox",
        f"  Studio:       {base}/studio",
        f"  Dashboard:    {base}/dashboard",
        f"  API docs:     {base}/docs",
        f"  Health:       {base}/readyz    Metrics: {base}/metrics",
        f"  Database:     {settings.effective_database_url.split('?')[0]}",
        f"  Rasa log:     {Path(settings.data_dir) / 'rasa.log'}",
        "  Stop with Ctrl-C.",
        "",
    ]
    if first_admin is not None:
        lines[-2:-2] = [f"  First login:  the admin e-mail and password in {first_admin} (set INBOX_ADMIN_EMAIL and "
                        "INBOX_ADMIN_PASSWORD to choose them)."]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
