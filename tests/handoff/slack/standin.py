"""A local stand-in of Slack's Web API (the methods the desk calls) and requests signed as Slack signs them.

The desk's real slack_sdk client talks to it; it records every call that reaches it (none while `down`, those
refused while `revoked` too). Requests to the gateway are signed with slack_sdk's own SignatureVerifier, so the
check under test is the real one.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from app.launch import free_port

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-0000000000-test-desk-token"
CHANNEL = "C0HANDOFF1"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
USERS = {
    "U0AGENT01": {"id": "U0AGENT01", "name": "wang.fang", "real_name": "王芳",
                  "profile": {"display_name": "王芳", "email": "wang.fang@binjiang.example"}},
}


@dataclass
class StandInSlack:
    url: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    down: bool = False  # answer 503 to everything (Slack unreachable)
    revoked: bool = False  # the bot token was revoked: every method answers ok=false, error=token_revoked
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None

    def sent(self, method: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == method]

    def thread_texts(self, thread_ts: str) -> list[str]:
        return [str(a.get("text")) for a in self.sent("chat.postMessage") if a.get("thread_ts") == thread_ts]

    async def _method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if self.down:
            return web.Response(status=503, text="unavailable")
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(dict(await request.post()))
        self.calls.append((method, args))
        if self.revoked:  # as Slack answers a revoked token: HTTP 200, ok=false
            return web.json_response({"ok": False, "error": "token_revoked"})
        if method == "auth.test":
            return web.json_response({"ok": True, "url": "https://binjiang-city.slack.com/", "team": "Binjiang",
                                      "user": "deskbot", "team_id": "T0BJ1CITY", "user_id": "U0BJBOT01",
                                      "bot_id": "B0BJBOT01"})
        if method == "chat.postMessage":
            ts = f"{1763900000 + next(self._ts)}.000100"
            return web.json_response({"ok": True, "channel": args.get("channel"), "ts": ts,
                                      "message": {"text": args.get("text"), "ts": ts}})
        if method == "chat.update":
            return web.json_response({"ok": True, "channel": args.get("channel"), "ts": args.get("ts")})
        if method == "users.info":
            user = USERS.get(str(args.get("user")))
            if user is None:
                return web.json_response({"ok": False, "error": "user_not_found"})
            return web.json_response({"ok": True, "user": user})
        return web.json_response({"ok": False, "error": "unknown_method"})

    async def start(self) -> StandInSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._method)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/api/"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def signed(body: str, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack sends with a request body, signed by slack_sdk's own code."""
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None  # None only without a timestamp
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}


def event_body(name: str, **event_changes: Any) -> str:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    if "event" in data:
        data["event"].update(event_changes)
    return json.dumps(data, ensure_ascii=False)


def interaction_body(name: str, conversation_id: str) -> str:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    for action in data["actions"]:
        action["value"] = conversation_id
    return urlencode({"payload": json.dumps(data, ensure_ascii=False)})
