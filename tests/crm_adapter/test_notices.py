"""Proactive notices and the 回访: a citizen is told on the channel they used when their order moves, respecting
opt-out and each channel's reply window; after closing they are asked whether they are satisfied, and the answer
is kept on the order. The pipeline, the outbox and the work-order service are the real ones on SQLite and
PostgreSQL; the channels are recording stand-ins (the real connectors' rendering is tested in tests/channels/)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.ports import WorkOrderPort
from bot.actions.ports import WorkOrderDraft
from crm_adapter.backend import InvalidWorkOrder, WorkOrderNotFound
from crm_adapter.notices import rating_payload
from crm_adapter.service import FileRequest, WorkOrderService, build_work_orders
from crm_adapter.workflow import Actor, Role
from gateway.coordination import InProcessCoordination
from gateway.engine import BotTurn
from gateway.language import LanguageTagger
from gateway.message import Capabilities, DeliveryResult, InboundMessage, OutboundMessage
from gateway.metrics import build_metrics
from gateway.numbered_replies import NumberedReplies
from gateway.optouts import OptOutHook, set_opt_out
from gateway.outbox import Outbox, RetryPolicy
from gateway.pipeline import Pipeline
from gateway.rendering import plain_text
from gateway.storage import Contact, Conversation, Database, Message
from tests.crm_adapter.conftest import FakeClock

DEPT = Actor("dept:li", Role.DEPARTMENT)
AGENT = Actor("agent:wang", Role.AGENT)
USER = "+8613800000001"


class Channel:
    """A pushing channel that records what it sends (SMS-like: no buttons, no window, unless told otherwise)."""

    channel_account = "acct"

    def __init__(self, name: str, window_hours: float | None = None, templates: bool = False) -> None:
        self.name = name
        # templates: what channels/wechat offers outside its window
        self.capabilities = Capabilities(buttons=False, images=False, reply_window_hours=window_hours, push=True,
                                         templates=templates)
        self.sent: list[dict[str, Any]] = []

    def render(self, recipient: str, outbound: OutboundMessage, language: str, context: Any = None
               ) -> list[dict[str, Any]]:
        if context is not None and context.template_kind:
            return self._render_template(recipient, outbound, language, context.template_kind)
        return [{"to": recipient, "body": plain_text(outbound, language)}]

    def _render_template(
        self, recipient: str, outbound: OutboundMessage, language: str, kind: str
    ) -> list[dict[str, Any]]:
        return [{"to": recipient, "template": kind, "body": outbound.text}]

    async def send(self, payload: dict[str, Any]) -> DeliveryResult:
        self.sent.append(payload)
        return DeliveryResult("sent", external_id=f"id-{len(self.sent)}")

    async def fetch_media(self, attachment: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class Bot:
    """Echoes what it was sent (a pressed survey button arrives as its payload)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.metadata: list[dict[str, Any]] = []

    async def turn(self, sender: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        self.texts.append(text)
        self.metadata.append(metadata)
        return BotTurn(messages=[{"text": f"re:{text}"}])


class World:
    def __init__(self, db: Database, clock: FakeClock, service: WorkOrderService, *channels: Channel) -> None:
        self.db, self.clock, self.service = db, clock, service
        self.bot = Bot()
        coordination = InProcessCoordination()
        metrics = build_metrics()
        self.pipeline = Pipeline(db, coordination, self.bot, LanguageTagger(), metrics)  # type: ignore[arg-type]
        self.outbox = Outbox(db, coordination, metrics, {c.name: c for c in channels},  # type: ignore[misc]
                             RetryPolicy(base_seconds=0.01), rng=random.Random(1),
                             stored_channels=frozenset({"webchat", "rest"}))  # served, cannot push  # fmt: skip
        capabilities = {c.name: c.capabilities for c in channels}
        self.pipeline.use(before=[OptOutHook(db, capabilities), NumberedReplies(db, capabilities)],
                          delivery=self.outbox)
        service.notify_citizens(self.outbox)

    async def say(self, channel: str, text: str, *, user: str = USER, age: timedelta = timedelta()) -> Conversation:
        inbound = InboundMessage(channel, "acct", user, None, text, timestamp=datetime.now(UTC) - age)
        received = await self.pipeline.receive(inbound)
        await self.pipeline.process(received.conversation_id)
        async with self.db.sessions() as session:
            conversation = await session.get(Conversation, received.conversation_id)
        assert conversation is not None
        return conversation

    async def file(self, conversation: Conversation, text: str = "人民路56号门口的路灯不亮了") -> str:
        result = await self.service.file(
            FileRequest("report", text, conversation.contact_id, conversation.channel,
                        location="人民路56号", conversation_id=conversation.id, phone="13812345678")
        )  # fmt: skip
        return result.order.number

    async def notify(self) -> None:
        assert self.service.notifier is not None
        await self.service.notifier.run_once()
        await self.outbox.drain()

    async def notices(self, conversation_id: str) -> list[Message]:
        async with self.db.sessions() as session:
            rows = (await session.execute(
                select(Message).where(Message.conversation_id == conversation_id, Message.sender == "system")
                .order_by(Message.id)
            )).scalars()  # fmt: skip
            return [m for m in rows if (m.payload or {}).get("proactive")]


async def world(db: Database, clock: FakeClock, *channels: Channel) -> World:
    return World(db, clock, await build_work_orders(object(), db, clock=clock), *channels)


async def test_the_citizen_is_told_on_sms_and_asked_for_the_survey_after_closing(
    database: Database, clock: FakeClock
) -> None:
    sms = Channel("sms")
    w = await world(database, clock, sms)
    conversation = await w.say("sms", "路灯坏了")
    number = await w.file(conversation)
    await w.notify()
    sms.sent.clear()  # the bot's reply; filing itself is not a move (the bot told the number already)
    await w.service.update_status(number, "in_progress", DEPT)
    await w.service.update_status(number, "resolved", DEPT, "已更换灯泡")
    await w.notify()
    assert [p["body"] for p in sms.sent] == [
        f"您的工单 {number} 正在由城市管理局处理中。",
        f"您的工单 {number} 已由城市管理局办结。处理说明：已更换灯泡。如问题仍未解决，请回复说明。",
    ]
    sms.sent.clear()
    await w.service.update_status(number, "closed", AGENT)
    await w.notify()
    survey = sms.sent[0]["body"]
    assert "是否满意" in survey and "1. 满意" in survey and "3. 不满意" in survey, survey  # buttons → a numbered list
    # "1" picks the first button: the bot gets its payload (action_rate_work_order stores it through the port).
    await w.say("sms", "1")
    assert w.bot.texts[-1] == rating_payload(number, 5)
    # Nothing is sent twice: a second round finds no new change.
    await w.outbox.drain()
    sms.sent.clear()
    await w.notify()
    assert sms.sent == []


async def test_opted_out_citizens_get_nothing_and_the_skip_is_kept(database: Database, clock: FakeClock) -> None:
    sms = Channel("sms")
    w = await world(database, clock, sms)
    conversation = await w.say("sms", "路灯坏了")
    number = await w.file(conversation)
    await set_opt_out(database, conversation.contact_id, "sms", True, "keyword")
    await w.notify()
    sms.sent.clear()
    await w.service.update_status(number, "resolved", DEPT)
    await w.notify()
    assert sms.sent == []
    [notice] = await w.notices(conversation.id)
    assert notice.delivery_state == "skipped"
    assert notice.payload["proactive"] == {"kind": "work_order_resolved", "template": False, "skipped": "opted_out"}


async def test_a_reply_window_is_respected_and_templates_are_used_outside_it(
    sqlite_db: Database, clock: FakeClock
) -> None:
    plain = Channel("wx", window_hours=48)
    templated = Channel("wxt", window_hours=48, templates=True)
    w = await world(sqlite_db, clock, plain, templated)
    inside = await w.say("wx", "路灯坏了", user="u-inside")
    outside = await w.say("wx", "路灯坏了", user="u-outside", age=timedelta(hours=49))
    template = await w.say("wxt", "路灯坏了", user="u-template", age=timedelta(hours=72))
    numbers = [await w.file(c) for c in (inside, outside, template)]
    await w.notify()
    plain.sent.clear()
    templated.sent.clear()
    for number in numbers:
        await w.service.update_status(number, "in_progress", DEPT)
    await w.notify()
    assert [p["to"] for p in plain.sent] == ["u-inside"]
    [skipped] = await w.notices(outside.id)
    assert (skipped.delivery_state, skipped.payload["proactive"]["skipped"]) == ("skipped", "outside_window")
    assert templated.sent == [
        {"to": "u-template", "template": "work_order_in_progress",
         "body": f"您的工单 {numbers[2]} 正在由城市管理局处理中。"}
    ]  # fmt: skip


async def test_web_chat_and_rest_keep_the_notice_in_the_conversation(sqlite_db: Database, clock: FakeClock) -> None:
    w = await world(sqlite_db, clock)
    conversation = await w.say("rest", "the street light is broken", user="rest-user")
    result = await w.service.file(
        FileRequest("report", "the street light is broken", conversation.contact_id, "rest",
                    conversation_id=conversation.id, language="en")
    )  # fmt: skip
    await w.notify()
    await w.service.update_status(result.order.number, "resolved", DEPT)
    await w.service.update_status(result.order.number, "closed", AGENT)
    await w.notify()
    resolved, closed = await w.notices(conversation.id)
    assert resolved.delivery_state == "sent" and "has been resolved by Urban Management Bureau" in (resolved.text or "")
    assert "Are you satisfied" in (closed.text or "")
    assert [b["title"] for b in closed.payload["buttons"]] == ["Satisfied", "So-so", "Not satisfied"]
    assert closed.payload["buttons"][2]["payload"] == rating_payload(result.order.number, 1)


async def test_no_notice_is_lost_or_repeated_across_a_restart(sqlite_db: Database, clock: FakeClock) -> None:
    sms = Channel("sms")
    w = await world(sqlite_db, clock, sms)
    conversation = await w.say("sms", "路灯坏了")
    number = await w.file(conversation)
    await w.notify()  # the notifier starts "now": the past is not notified
    sms.sent.clear()
    await w.service.update_status(number, "in_progress", DEPT)
    # The gateway stops before notifying; another one starts on the same database.
    again = await world(sqlite_db, clock, sms)
    await again.service.update_status(number, "resolved", DEPT)
    await again.notify()
    assert [p["body"][:30] for p in sms.sent] == [
        f"您的工单 {number} 正在由城市管理局处理中。"[:30], f"您的工单 {number} 已由城市管理局办结。"[:30]
    ]
    await w.notify()  # the first worker comes back: nothing twice
    assert len(sms.sent) == 2


async def test_the_filer_rates_a_finished_order(sqlite_db: Database, clock: FakeClock) -> None:
    w = await world(sqlite_db, clock)
    conversation = await w.say("rest", "路灯坏了", user="filer")
    stranger = await w.say("rest", "你好", user="stranger")
    number = await w.file(conversation)
    with pytest.raises(InvalidWorkOrder, match="resolved or closed"):
        await w.service.rate(number, conversation.contact_id, 5)
    await w.service.update_status(number, "resolved", DEPT)
    with pytest.raises(WorkOrderNotFound):
        await w.service.rate(number, stranger.contact_id, 1)
    await w.service.rate(number, conversation.contact_id, 3)
    order = await w.service.rate(number, conversation.contact_id, 5)
    assert order.satisfaction == 5
    assert [(s.action, s.note, s.actor_role) for s in order.steps if s.action == "satisfaction"] == [
        ("satisfaction", "satisfaction 3/5", "citizen"),
        ("satisfaction", "satisfaction 5/5", "citizen"),
    ]
    assert order.phone == "13812345678"
    with pytest.raises(InvalidWorkOrder):
        await w.service.rate(number, conversation.contact_id, 9)
    # 不满意 (1) → 重办: the order goes back to work with a fresh commitment; it is rated again once finished.
    clock.advance(days=2)
    reopened = await w.service.rate(number, conversation.contact_id, 1)
    assert reopened.status == "reopened" and reopened.satisfaction == 1
    assert reopened.due_at > order.due_at
    again = await w.service.get(number)
    assert any("not satisfied (1/5)" in (s.note or "") for s in again.steps)
    with pytest.raises(InvalidWorkOrder, match="resolved or closed"):
        await w.service.rate(number, conversation.contact_id, 5)


async def test_a_phone_the_channel_vouched_for_reaches_the_bot(sqlite_db: Database, clock: FakeClock) -> None:
    w = await world(sqlite_db, clock, Channel("sms"))
    conversation = await w.say("sms", "你好")
    assert "phone" not in w.bot.metadata[-1]
    async with sqlite_db.sessions() as session, session.begin():
        contact = await session.get(Contact, conversation.contact_id)
        assert contact is not None
        contact.phone = USER  # what ContactMergeHook records for an SMS sender or a shared Telegram contact
    await w.say("sms", "路灯坏了")
    assert w.bot.metadata[-1]["phone"] == USER  # the work-order form takes it instead of asking


async def test_the_bot_port_keeps_phone_and_photos_on_the_order(sqlite_db: Database, clock: FakeClock) -> None:
    w = await world(sqlite_db, clock)
    conversation = await w.say("rest", "路灯坏了", user="photo-user")
    port = WorkOrderPort(w.service)
    draft = WorkOrderDraft(
        category="report", description="人民路56号门口的路灯不亮了", location="人民路56号", phone="13812345678",
        contact_id=conversation.contact_id, conversation_id=conversation.id, channel="rest", intent="report_problem",
        language="zh", photos=["media/ab/abc.jpg", "https://example.invalid/p.png"],
    )  # fmt: skip
    filed = await port.file(draft)
    order = await w.service.get(filed.number)
    assert (order.phone, order.photos) == ("13812345678", ("media/ab/abc.jpg", "https://example.invalid/p.png"))
    assert [s.action for s in order.steps] == ["created"]  # kept as fields, not as notes
    summary = await port.summary(filed.number)
    assert summary is not None and summary.last_step == "created"
    assert not await port.rate(filed.number, conversation.contact_id, 5)  # not finished yet
    await w.service.update_status(filed.number, "resolved", DEPT)
    assert await port.rate(filed.number, conversation.contact_id, 5)
    summary = await port.summary(filed.number)
    assert summary is not None and summary.last_step == "status"  # the rating is not "progress"
