"""The outbox worker on SQLite and the real PostgreSQL: order per recipient, retries with backoff, one sender per row
across workers, leases after a crash, receipts. The connector here is a recording stand-in (the real SDKs are
exercised in tests/channels/)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from gateway.coordination import InProcessCoordination
from gateway.language import LanguageTagger
from gateway.message import Capabilities, DeliveryResult, InboundMessage, OutboundMessage
from gateway.metrics import build_metrics
from gateway.numbered_replies import NumberedReplies
from gateway.optouts import OptOutHook, opt_keyword
from gateway.outbox import Outbox, OutboxRow, RetryPolicy
from gateway.pipeline import Pipeline
from gateway.storage import Database, Message


class RecordingConnector:
    name = "sms"
    channel_account = "+10000000000"
    capabilities = Capabilities(buttons=False, images=False, max_text_length=1600, push=True)

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.results: list[DeliveryResult] = []
        self.by_recipient: dict[str, list[DeliveryResult]] = {}
        self.slow = 0.0

    def render(self, recipient: str, outbound: OutboundMessage, language: str, context: Any = None
               ) -> list[dict[str, Any]]:
        return [{"to": recipient, "body": part} for part in (outbound.text or "").split("|")]

    async def send(self, payload: dict[str, Any]) -> DeliveryResult:
        await asyncio.sleep(self.slow)
        failing = self.by_recipient.get(payload["to"]) or self.results
        if failing:
            return failing.pop(0)
        self.sent.append(payload)
        return DeliveryResult("sent", external_id=f"id-{len(self.sent)}")

    async def fetch_media(self, attachment: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class Bot:
    async def turn(self, sender: str, text: str, metadata: dict[str, Any]) -> Any:
        from gateway.engine import BotTurn

        return BotTurn(messages=[{"text": f"re:{text}"}])

    async def is_ready(self) -> bool:
        return True


def make(db: Database, connector: RecordingConnector, **policy: Any) -> tuple[Pipeline, Outbox]:
    metrics = build_metrics()
    coordination = InProcessCoordination()
    pipeline = Pipeline(db, coordination, Bot(), LanguageTagger(), metrics)  # type: ignore[arg-type]
    outbox = Outbox(db, coordination, metrics, {"sms": connector},  # type: ignore[dict-item]
                    RetryPolicy(**{"base_seconds": 0.01, "max_seconds": 0.05, **policy}), rng=random.Random(1))
    capabilities = {"sms": connector.capabilities}
    pipeline.use(before=[OptOutHook(db, capabilities), NumberedReplies(db, capabilities)], delivery=outbox)
    return pipeline, outbox


async def turn(pipeline: Pipeline, text: str, user: str = "+8613800000001") -> None:
    received = await pipeline.receive(InboundMessage("sms", "+10000000000", user, None, text))
    await pipeline.process(received.conversation_id)


async def test_replies_leave_in_order_behind_a_retrying_head(database: Database) -> None:
    connector = RecordingConnector()
    pipeline, outbox = make(database, connector)
    connector.by_recipient["+8613800000001"] = [
        DeliveryResult("retry", error="500"), DeliveryResult("retry", retry_after_seconds=0.1)
    ]
    await turn(pipeline, "a|b")  # one reply, two parts
    await turn(pipeline, "c")
    await turn(pipeline, "other", user="+8613800000002")
    await outbox.drain()
    mine = [p["body"] for p in connector.sent if p["to"] == "+8613800000001"]
    assert mine == ["re:a", "b", "re:c"]
    assert connector.sent[0]["body"] == "re:other"  # another recipient is not held up by the retrying head
    async with database.sessions() as session:
        states = list((await session.execute(select(Message.delivery_state).where(Message.direction == "out")))
                      .scalars())
    assert states == ["sent", "sent", "sent"]


async def test_two_workers_send_each_row_once(database: Database) -> None:
    connector = RecordingConnector()
    connector.slow = 0.01
    pipeline, first = make(database, connector)
    _, second = make(database, connector)
    for i in range(5):
        await turn(pipeline, f"m{i}", user=f"+86138000000{i:02d}")
    await asyncio.gather(first.drain(), second.drain())
    assert sorted(p["body"] for p in connector.sent) == [f"re:m{i}" for i in range(5)]


async def test_a_row_left_sending_by_a_dead_worker_is_sent_after_its_lease(database: Database) -> None:
    connector = RecordingConnector()
    pipeline, outbox = make(database, connector)
    await turn(pipeline, "x")
    await outbox.expand()
    async with database.sessions() as session, session.begin():  # a worker claimed it, then died
        await session.execute(update(OutboxRow).values(state="sending", claimed_until=datetime(2000, 1, 1, tzinfo=UTC)))
    await outbox.drain()
    assert [p["body"] for p in connector.sent] == ["re:x"]


async def test_last_try_fails_and_receipts_move_state(database: Database) -> None:
    connector = RecordingConnector()
    pipeline, outbox = make(database, connector, max_attempts=2)
    connector.results = [DeliveryResult("retry", error="500"), DeliveryResult("retry", error="500")]
    await turn(pipeline, "lost")
    await turn(pipeline, "found")
    await outbox.drain()
    async with database.sessions() as session:
        rows = list((await session.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars())
    assert [(r.state, r.attempts) for r in rows] == [("failed", 2), ("sent", 1)]
    assert await outbox.receipt("sms", "id-1", "delivered")
    assert not await outbox.receipt("sms", "unknown", "delivered")
    async with database.sessions() as session:
        states = list((await session.execute(
            select(Message.delivery_state).where(Message.direction == "out").order_by(Message.id))).scalars())
    assert states == ["failed", "delivered"]


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    policy, rng = RetryPolicy(base_seconds=2, max_seconds=60), random.Random(7)
    delays = [policy.delay(n, None, rng) for n in range(1, 8)]
    assert all(2 ** (n - 1) <= d <= 2**n for n, d in enumerate(delays[:5], start=1))
    assert max(delays) <= 60
    assert 30 <= policy.delay(1, 30, rng) <= 33


def test_opt_keywords() -> None:
    assert opt_keyword("STOP") is True and opt_keyword(" 退订 ") is True and opt_keyword("stop.") is True
    assert opt_keyword("START") is False and opt_keyword("订阅") is False
    assert opt_keyword("please stop the noise") is None
