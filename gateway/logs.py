"""Structured logging (structlog) for the gateway: one line per event, the conversation id bound where known."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

import structlog

from gateway.privacy import LogScrubber


def configure_logging(level: str = "info", json_lines: bool = False, secrets: Iterable[str] = ()) -> None:
    """Configure structlog and the stdlib root logger to render alike. Idempotent. No line leaves with a phone
    number, ID-card number, e-mail address or one of `secrets` in it (gateway/privacy.py)."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,  # before scrubbing: a traceback may quote what the citizen wrote
        LogScrubber(secrets),
    ]
    renderer: structlog.types.Processor
    if json_lines:
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer, foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared]
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for noisy in ("httpx", "httpcore", "sentence_transformers", "jieba", "faiss"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
