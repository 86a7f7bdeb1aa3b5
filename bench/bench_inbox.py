"""Inbox live latency: a citizen's web-chat message to the agents' screens (the inbox WebSocket), 50 open
conversations and 20 connected agents, p50/p99, against a bare WebSocket echo measured in the same run.

A gateway process (SQLite, in-process coordination; Rasa is not needed: a person has every conversation) is seeded
with 20 online agents and 50 conversations already open. Each sample is one citizen message: the time from sending
it on the citizen's socket to each agent's socket receiving its "activity" event (20 samples per message). The
baseline is a round trip through a bare `websockets` echo server in this process, the floor of any socket hop;
the citizen's own message coming back on the web chat socket (published right beside the inbox event, after the
message is stored) is shown too.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets
from sqlalchemy import select

from app.launch import free_port, gateway_env, start_gateway, wait_http
from bench.stats import summary_ms, table
from channels.webchat import WebchatConnector
from gateway.keys import installation_secret
from gateway.storage import ChannelIdentity, Contact, Conversation, Database, Message
from handoff.agents import AgentStore
from handoff.models import Agent, Handoff

AGENTS = 20
CONVERSATIONS = 50
MESSAGES = 150
PASSWORD = "bench-password"


async def seed(data_dir: Path) -> list[tuple[str, str]]:
    """Agents and open conversations; returns (web chat session id, conversation id) pairs."""
    db = Database(f"sqlite+aiosqlite:///{data_dir / 'gateway.db'}")
    await db.migrate()
    await AgentStore(db).create("agent0@bench.local", PASSWORD, "agent 0", departments=["hotline"], capacity=10)
    pairs = []
    now = datetime.now(UTC)
    async with db.sessions() as session, session.begin():
        first = (await session.execute(select(Agent))).scalar_one()
        for i in range(1, AGENTS):  # the same password: one argon2 hash (slow on purpose) serves them all
            session.add(Agent(email=f"agent{i}@bench.local", name=f"agent {i}", password_hash=first.password_hash,
                              role="agent", departments=["hotline"], capacity=10, online=True, language="zh",
                              active=True))
        for i in range(CONVERSATIONS):
            session_id = f"bench-citizen-{i:03d}"
            contact = Contact(display_name=f"citizen {i}")
            session.add(contact)
            await session.flush()
            identity = ChannelIdentity(contact_id=contact.id, channel="webchat", channel_account="default",
                                       external_user_id=session_id)
            session.add(identity)
            await session.flush()
            conversation = Conversation(contact_id=contact.id, identity_id=identity.id, channel="webchat",
                                        status="open", created_at=now, last_activity_at=now)
            session.add(conversation)
            await session.flush()
            session.add(Message(conversation_id=conversation.id, direction="in", sender="citizen", channel="webchat",
                                channel_account="default", text="转人工", language="zh", payload={},
                                turn_state="done", created_at=now))
            session.add(Handoff(conversation_id=conversation.id, department="hotline", agent_id=1 + i % AGENTS,
                                last_status="open", pending_since=now, claimed_at=now, unread=0, updated_at=now))
            pairs.append((session_id, conversation.id))
    await db.dispose()
    return pairs


async def echo_baseline(rounds: int) -> list[float]:
    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    port = free_port()
    async with websockets.serve(echo, "127.0.0.1", port):
        async with websockets.connect(f"ws://127.0.0.1:{port}") as ws:
            samples = []
            for i in range(rounds):
                frame = json.dumps({"type": "message", "text": f"echo {i}", "client_id": uuid.uuid4().hex})
                started = time.perf_counter()
                await ws.send(frame)
                await ws.recv()
                samples.append(time.perf_counter() - started)
    return samples


async def measure(base_url: str, pairs: list[tuple[str, str]], data_dir: Path) -> tuple[list[float], list[float]]:
    ws_base = base_url.replace("http://", "ws://")
    agents = []
    async with httpx.AsyncClient(base_url=base_url) as client:
        for i in range(AGENTS):
            response = await client.post("/api/inbox/login", json={"email": f"agent{i}@bench.local",
                                                                     "password": PASSWORD})
            response.raise_for_status()
            cookie = response.cookies.get("bj_inbox_session")
            agents.append(await websockets.connect(
                f"{ws_base}/api/inbox/ws", additional_headers={"Cookie": f"bj_inbox_session={cookie}",
                                                               "Origin": base_url}))
    citizens = []
    # The seeded visitors' sessions, signed with the gateway's key as the server would have issued them.
    sessions = WebchatConnector(installation_secret(data_dir, "webchat-session.key").encode())
    for session_id, _ in pairs:
        ws = await websockets.connect(f"{ws_base}/channels/webchat/ws")
        await ws.send(json.dumps({"type": "hello", "session": sessions.issue(session_id)}))
        await ws.recv()  # the session frame
        await ws.recv()  # the history frame
        citizens.append(ws)

    waiting: dict[str, tuple[float, set[int]]] = {}
    samples: list[float] = []
    own_echo: list[float] = []
    sent_at: dict[str, float] = {}
    done = asyncio.Event()

    async def listen(index: int, ws: Any) -> None:
        async for raw in ws:
            event = json.loads(raw)
            if event.get("type") != "activity":
                continue
            entry = waiting.get(event.get("conversation_id"))
            if entry is None or index in entry[1]:
                continue
            samples.append(time.perf_counter() - entry[0])
            entry[1].add(index)
            if len(entry[1]) == AGENTS:
                done.set()

    async def drain(ws: Any) -> None:
        async for raw in ws:
            event = json.loads(raw)
            client_id = (event.get("message") or {}).get("client_id") if event.get("type") == "message" else None
            if client_id in sent_at:
                own_echo.append(time.perf_counter() - sent_at.pop(client_id))

    listeners = [asyncio.create_task(listen(i, ws)) for i, ws in enumerate(agents)]
    drainers = [asyncio.create_task(drain(ws)) for ws in citizens]
    try:
        for n in range(MESSAGES):
            index = n % CONVERSATIONS
            conversation_id = pairs[index][1]
            done.clear()
            client_id = uuid.uuid4().hex
            started = time.perf_counter()
            waiting[conversation_id] = (started, set())
            sent_at[client_id] = started
            await citizens[index].send(json.dumps({"type": "message", "text": f"第{n}条消息",
                                                   "client_id": client_id}))
            await asyncio.wait_for(done.wait(), 10)
            del waiting[conversation_id]
            await asyncio.sleep(0.005)
    finally:
        for task in listeners + drainers:
            task.cancel()
        for ws in agents + citizens:
            await ws.close()
    return samples, own_echo


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        pairs = asyncio.run(seed(data_dir))
        port = free_port()
        env = gateway_env(port, f"http://127.0.0.1:{free_port()}", data_dir, SERVICE_HOURS="24x7",
                          LOG_LEVEL="warning", KB_PATH=str(Path(__file__).resolve().parent.parent / "kb"
                                                              / "demo_articles.jsonl"))
        gateway = start_gateway(env, data_dir / "gateway.log")
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base_url}/healthz", 60, gateway)
            baseline = asyncio.run(echo_baseline(MESSAGES))
            inbox, own = asyncio.run(measure(base_url, pairs, data_dir))
        finally:
            gateway.terminate()
            gateway.wait(10)
    base, live, echo = summary_ms(baseline), summary_ms(inbox), summary_ms(own)
    print(table(
        ["path", "samples", "p50 ms", "p99 ms", "p50 ratio", "p99 ratio"],
        [
            ["bare WebSocket echo (baseline)", len(baseline), f"{base['p50']:.2f}", f"{base['p99']:.2f}", "1.0",
             "1.0"],
            ["citizen's own message echoed on the web chat socket (stored first)", len(own), f"{echo['p50']:.2f}",
             f"{echo['p99']:.2f}", f"{echo['p50'] / base['p50']:.1f}", f"{echo['p99'] / base['p99']:.1f}"],
            [f"citizen → {AGENTS} agents' inbox sockets ({CONVERSATIONS} open)", len(inbox), f"{live['p50']:.2f}",
             f"{live['p99']:.2f}", f"{live['p50'] / base['p50']:.1f}", f"{live['p99'] / base['p99']:.1f}"],
        ],
    ))


if __name__ == "__main__":
    main()
