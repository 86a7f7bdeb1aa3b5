"""`python -m app` (or `python -m gateway`): serve the gateway alone with uvicorn (`make run` starts it all)."""

from __future__ import annotations

import uvicorn

from app.factory import create_app
from app.settings import Settings


def main() -> None:
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        access_log=False,  # gateway/http_guard.py logs each request without its query string (signatures, ids)
        ws_max_size=64 * 1024,  # web chat and inbox frames are small; nothing larger is read
        ws_ping_interval=20,
        ws_ping_timeout=20,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
