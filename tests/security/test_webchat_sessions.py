"""The web chat's identity is the server's to issue: a stranger presenting another visitor's session, a made-up
one or an altered one gets a new, empty session, never the visitor's history; pages of other origins cannot open
the socket; the session never travels in the URL. Against the real stack (uvicorn, the real Rasa)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import websockets

from tests.conftest import Stack

pytestmark = pytest.mark.rasa

SECRET_TEXT = "我的身份证号110101199003078515，电话13812345678"


async def _connect(stack: Stack, session: str | None, **headers: str) -> tuple[Any, str, list[dict[str, Any]]]:
    ws = await websockets.connect(stack.base_url.replace("http://", "ws://") + "/channels/webchat/ws",
                                  additional_headers=headers or None)
    await ws.send(json.dumps({"type": "hello", "session": session}))
    issued = json.loads(await ws.recv())
    assert issued["type"] == "session", issued
    history = json.loads(await ws.recv())
    assert history["type"] == "history", history
    return ws, issued["session"], history["messages"]


async def _say(ws: Any, text: str) -> None:
    client_id = uuid.uuid4().hex
    await ws.send(json.dumps({"type": "message", "text": text, "client_id": client_id}))
    while True:  # until the bot answered (the echo of our own message comes first)
        frame = json.loads(await ws.recv())
        if frame.get("type") == "message" and frame["message"]["from"] == "bot":
            return


async def test_a_stranger_never_gets_another_visitors_history(stack: Stack) -> None:
    visitor, session, history = await _connect(stack, None)
    assert history == []
    await _say(visitor, SECRET_TEXT)
    await visitor.close()

    again, same, history = await _connect(stack, session)  # the visitor comes back: their history
    assert same == session and any(m["text"] == SECRET_TEXT for m in history)
    await again.close()

    session_id, _, signature = session.partition(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for forged in (session_id, f"{session_id}.{flipped}", f"{session_id}x.{signature}", "x" * 30,
                   uuid.uuid4().hex, "", 42, {"id": session_id}):
        stranger, issued, history = await _connect(stack, forged)  # type: ignore[arg-type]
        assert issued != session and history == [], forged
        await stranger.close()


async def test_a_session_in_the_url_is_not_an_identity(stack: Stack) -> None:
    visitor, session, _ = await _connect(stack, None)
    await _say(visitor, SECRET_TEXT)
    await visitor.close()
    url = stack.base_url.replace("http://", "ws://") + f"/channels/webchat/ws?session_id={session}"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "hello"}))
        assert json.loads(await ws.recv())["session"] != session
        assert json.loads(await ws.recv())["messages"] == []


async def test_pages_of_other_origins_cannot_open_the_socket(stack: Stack) -> None:
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        await _connect(stack, None, Origin="https://evil.example")
    assert refused.value.response.status_code == 403
    ws, _, _ = await _connect(stack, None, Origin=stack.base_url)  # the gateway's own page
    await ws.close()
