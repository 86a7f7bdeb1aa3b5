"""What every HTTP request passes before any route sees it (pure ASGI, so nothing is buffered on the way):

- a size limit on the body that fits the route's purpose, applied before the body is read: a declared
  Content-Length over the limit is refused with 413 at once, and a body sent without one is counted as it streams
  and cut off at the limit;
- security headers on every answer (no framing by other sites, no type sniffing, no referrer leaks), and a strict
  Content-Security-Policy on the staff pages;
- one access-log line per request with the path only: query strings carry signatures, openids and media tokens.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("gateway.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_BODY_LIMIT = 1_000_000

# The staff pages (inbox, studio) load only their own scripts and styles and may not be framed anywhere.
STAFF_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob: https:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# Every other answer: not frameable either (the web chat is embedded with a script tag, never a frame).
DEFAULT_CSP = "frame-ancestors 'none'; object-src 'none'; base-uri 'none'"


@dataclass(frozen=True)
class BodyLimit:
    pattern: re.Pattern[str]
    max_bytes: int


def body_limit(path_regex: str, max_bytes: int) -> BodyLimit:
    return BodyLimit(re.compile(path_regex), max_bytes)


class BodyTooLarge(Exception):
    pass


class HttpGuard:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, limits: Sequence[BodyLimit], default_limit: int = DEFAULT_BODY_LIMIT,
                 staff_pages: Sequence[str] = ("/inbox", "/studio")) -> None:
        self.app = app
        self.limits = list(limits)
        self.default_limit = default_limit
        self.staff_pages = tuple(staff_pages)

    def limit_for(self, path: str) -> int:
        for limit in self.limits:
            if limit.pattern.match(path):
                return limit.max_bytes
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        started = time.perf_counter()
        limit = self.limit_for(path)
        status = {"code": 0}
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await self._refuse(send, 400, "Content-Length is not a number")
                self._log(method, path, 400, started)
                return
            if length > limit:
                await self._refuse(send, 413, f"the body is larger than this route takes ({limit} bytes)")
                self._log(method, path, 413, started)
                return

        received = 0
        too_large = False
        refusal = f"the body is larger than this route takes ({limit} bytes)"

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise BodyTooLarge
            return message

        staff_page = any(path == p or path.startswith(p + "/") for p in self.staff_pages)

        async def guarded_send(message: Message) -> None:
            if too_large:
                # Whatever the route made of the cut-off body (FastAPI answers 400 to a body it could not read),
                # the client is told the truth once.
                if message["type"] == "http.response.start" and status["code"] == 0:
                    status["code"] = 413
                    await self._refuse(send, 413, refusal)
                return
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                out = list(message.get("headers", []))
                present = {k.lower() for k, _ in out}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"content-security-policy", (STAFF_PAGE_CSP if staff_page else DEFAULT_CSP).encode()),
                ]
                out += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": out}
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if status["code"] == 0:
                await self._refuse(send, 413, refusal)
                status["code"] = 413
        finally:
            self._log(method, path, status["code"] or 500, started)

    @staticmethod
    async def _refuse(send: Send, code: int, reason: str) -> None:
        body = json.dumps({"detail": reason}).encode()
        await send({"type": "http.response.start", "status": code, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"), (b"x-content-type-options", b"nosniff"),
        ]})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _log(method: str, path: str, status: int, started: float) -> None:
        # The path alone: never the query string (signatures, openids, media tokens) or the client's address.
        log.info("http.request", method=method, path=path, status=status,
                 ms=round((time.perf_counter() - started) * 1000, 1))
