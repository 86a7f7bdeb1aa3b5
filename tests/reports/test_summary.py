"""The summary's figures from a known history, exact, on SQLite and PostgreSQL: the period's edges in the centre's
time zone, a conversation counted once however often it was handed over, repeat reports not counted twice, and
each department's rates as docs/metrics.md defines them (response within one office day of working time)."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from crm_adapter.models import Department, WorkOrder, WorkOrderStep
from gateway.calendar import WorkingCalendar
from gateway.storage import ChannelIdentity, Contact, Conversation, Database, Message
from handoff.models import Agent, ConversationEvent, CsatScore, Handoff
from reports.figures import Filters, Period, Reports
from tests.channels.support import StandInRasa, gateway_settings, running_gateway

ZONE = ZoneInfo("Asia/Shanghai")
PERIOD = Period(date(2026, 12, 1), date(2026, 12, 7), ZONE)
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=ZONE)
_ids = itertools.count(1)


def local(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=ZONE).astimezone(UTC)


class History:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def conversation(self, channel: str, contact: str, *citizen_at: datetime, bot_at: datetime | None = None,
                           handoffs: tuple[tuple[datetime, str], ...] = ()) -> None:
        async with self.db.sessions() as session, session.begin():
            if await session.get(Contact, contact) is None:
                session.add(Contact(id=contact))
                await session.flush()
            identity = ChannelIdentity(contact_id=contact, channel=channel, channel_account="default",
                                       external_user_id=f"user-{next(_ids)}")
            session.add(identity)
            await session.flush()
            conversation = Conversation(contact_id=contact, identity_id=identity.id, channel=channel)
            session.add(conversation)
            await session.flush()
            moments = [("in", "citizen", at) for at in citizen_at] + ([("out", "bot", bot_at)] if bot_at else [])
            for direction, sender, at in moments:
                session.add(Message(conversation_id=conversation.id, direction=direction, sender=sender,
                                    channel=channel, channel_account="default", external_id=f"m{next(_ids)}",
                                    text="路灯坏了", language="zh", payload={}, turn_state="done", created_at=at))
            for at, reason in handoffs:
                session.add(ConversationEvent(conversation_id=conversation.id, kind="status", from_status="bot",
                                              to_status="pending", actor="bot", reason=reason, data={},
                                              created_at=at))

    async def order(self, department: str, filed: datetime, due: datetime, status: str, *,
                    steps: tuple[tuple[datetime, str], ...] = (), resolved: datetime | None = None,
                    satisfaction: int | None = None, duplicate_of: int | None = None) -> int:
        async with self.db.sessions() as session, session.begin():
            if await session.get(Department, department) is None:
                session.add(Department(code=department, name_zh=department, name_en=department))
            if await session.get(Contact, "filer") is None:
                session.add(Contact(id="filer"))
            await session.flush()
            order = WorkOrder(number=f"BJ-{next(_ids):012d}", category="report", title="t", description="d",
                              contact_id="filer", channel="sms", department=department, due_at=due, status=status,
                              created_at=filed, updated_at=filed, resolved_at=resolved, satisfaction=satisfaction,
                              duplicate_of=duplicate_of, language="zh", priority="normal")
            session.add(order)
            await session.flush()
            for at, to_status in steps:
                session.add(WorkOrderStep(work_order_id=order.id, actor="dept", actor_role="department",
                                          action="status", to_status=to_status, created_at=at))
            return order.id


@pytest.fixture
async def history(database: Database) -> AsyncIterator[History]:
    built = History(database)
    # Conversations: inside the period by its local edges, outside by a minute, one never written in by a citizen.
    await built.conversation("sms", "c1", local(20, 10, month=11))  # an earlier visit: c1 is returning
    await built.conversation("sms", "c1", local(1, 0, 30), local(3, 9))
    await built.conversation("webchat", "c2", local(7, 23, 59), handoffs=(
        (local(7, 23, 59, 30), "the citizen asked for a person"), (local(7, 23, 59, 50), "not understood twice")))
    await built.conversation("rest", "c3", local(8, 0, 0, 30))  # after the period (UTC 16:00:30 on the 7th)
    await built.conversation("sms", "c3", local(30, 23, 59, month=11))  # before it
    await built.conversation("webchat", "c4", bot_at=local(4, 10))  # the bot wrote; no citizen did
    # Work orders.
    w1 = await built.order("transport", local(1, 9), local(4, 17, 30), "closed", resolved=local(3, 10),
                           steps=((local(1, 10), "in_progress"), (local(3, 10), "resolved")), satisfaction=5)
    await built.order("transport", local(2, 9), local(4, 17, 30), "resolved", resolved=local(5, 10),
                      steps=((local(4, 9), "in_progress"), (local(5, 10), "resolved")), satisfaction=2)
    await built.order("transport", local(3, 9), local(6, 17, 30), "assigned",
                      steps=((local(3, 11), "returned"), (local(3, 14), "assigned")))
    await built.order("transport", local(4, 9), local(10, 17, 30), "in_progress",
                      steps=((local(4, 10), "in_progress"),))
    await built.order("transport", local(4, 9), local(10, 17, 30), "new", duplicate_of=w1)  # a repeat report
    await built.order("transport", local(30, 9, month=11), local(3, 17, 30), "new")  # before the period
    await built.order("housing", local(7, 23), local(10, 17, 30), "assigned")  # late on the last day, local time
    yield built


async def test_a_known_history_gives_exact_figures(history: History) -> None:
    summary = await Reports(history.db, WorkingCalendar()).summary(PERIOD, now=NOW)
    assert summary.conversations == 2
    assert summary.by_channel == {"sms": 1, "webchat": 1}
    assert summary.messages == 3 and summary.messages_by_channel == {"sms": 2, "webchat": 1}
    assert (summary.citizens, summary.new_citizens) == (2, 1)
    assert summary.handed_off == 1  # twice handed over, one conversation
    assert summary.handoff_rate == 0.5 and summary.containment_rate == 0.5
    assert summary.handoff_reasons == {"the citizen asked for a person": 1}
    transport, housing = summary.departments
    assert transport.department == "transport" and transport.filed == 4
    # Accepted within 8 working hours: the 1st's (an hour later) and the 4th's; the 2nd's took two office days.
    assert transport.accepted_in_time == 2 and transport.response_rate == 0.5
    assert transport.resolved == 2 and transport.resolution_rate == 0.5
    assert transport.overdue == 1 and transport.on_time_rate == round(1 / 3, 4)
    assert (transport.rated, transport.satisfied, transport.satisfaction_rate) == (2, 1, 0.5)
    assert transport.returned == 1
    assert (housing.filed, housing.response_rate, housing.resolution_rate) == (1, 0.0, 0.0)
    assert housing.satisfaction_rate is None and housing.on_time_rate is None  # nothing to divide by


async def test_filters_narrow_every_figure(history: History) -> None:
    reports = Reports(history.db, WorkingCalendar())
    sms = await reports.summary(PERIOD, Filters(channel="sms"), now=NOW)
    assert sms.conversations == 1 and sms.by_channel == {"sms": 1} and sms.handed_off == 0
    housing = await reports.summary(PERIOD, Filters(department="housing"), now=NOW)
    assert [d.department for d in housing.departments] == ["housing"]
    one_day = await reports.summary(Period(date(2026, 12, 8), date(2026, 12, 8), ZONE), now=NOW)
    assert one_day.by_channel == {"rest": 1} and one_day.departments == []
    empty = await reports.summary(Period(date(2025, 1, 1), date(2025, 1, 31), ZONE), now=NOW)
    assert empty.conversations == 0 and empty.containment_rate is None and empty.handoff_rate is None


async def test_first_response_and_ratings_per_agent_and_queue(database: Database) -> None:
    history = History(database)
    await history.conversation("sms", "p1", local(2, 9))
    await history.conversation("sms", "p2", local(2, 10))
    await history.conversation("sms", "p3", local(2, 11))
    async with database.sessions() as session, session.begin():
        session.add_all([Agent(id=1, email="li@x", name="李娜", password_hash="x"),
                         Agent(id=2, email="wang@x", name="王芳", password_hash="x")])
        conversations = list((await session.execute(select(Conversation).order_by(Conversation.created_at))).scalars())
        waits = [(1, 60), (1, 180), (2, 600)]
        for conversation, (agent, seconds) in zip(conversations, waits, strict=True):
            since = local(2, 12)
            session.add(Handoff(conversation_id=conversation.id, department="hotline", agent_id=agent,
                                pending_since=since, first_response_at=since + timedelta(seconds=seconds)))
        await session.flush()
        for conversation, (agent, score) in zip(conversations, [(1, 5), (1, 4), (2, 2)], strict=True):
            session.add(CsatScore(conversation_id=conversation.id, agent_id=agent, score=score, created_at=local(3, 9)))
        # A rating after the period does not count.
        session.add(CsatScore(conversation_id=conversations[0].id, agent_id=1, score=1, created_at=local(9, 9)))
    summary = await Reports(database, WorkingCalendar()).summary(PERIOD, now=NOW)
    li, wang = summary.agents
    assert (li.key, li.answered) == ("李娜", 2)
    assert (li.first_response_p50_seconds, li.first_response_p90_seconds) == (60.0, 180.0)
    assert (li.csat_count, li.csat_average) == (2, 4.5)
    assert (wang.key, wang.answered, wang.csat_average) == ("王芳", 1, 2.0)
    [queue] = summary.queues
    assert (queue.key, queue.answered, queue.first_response_p50_seconds, queue.csat_count) == ("hotline", 3, 180.0, 3)


@pytest.fixture
async def rasa() -> AsyncIterator[StandInRasa]:
    server = await StandInRasa().start()
    yield server
    await server.stop()


async def test_the_summary_api_answers_staff_only_with_the_contract_shape(tmp_path: Path, rasa: StandInRasa) -> None:
    async with running_gateway(gateway_settings(tmp_path, rasa, admin_token="reports-admin-token")) as gw:
        for sender in ("a", "b"):
            turn = await gw.client.post("/channels/rest/webhook", json={"sender": sender, "message": "路灯坏了"})
            assert turn.status_code == 200
        today = datetime.now(ZONE).date().isoformat()
        url = f"/api/reports/summary?from={today}&to={today}"
        assert (await gw.client.get(url)).status_code == 401
        admin = {"Authorization": "Bearer reports-admin-token"}
        response = await gw.client.get(url, headers=admin)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["conversations"] == 2 and body["by_channel"] == {"rest": 2}
        assert body["containment_rate"] == 1.0 and body["handoff_rate"] == 0.0
        assert body["departments"] == [] and body["from"] == today and body["timezone"] == "Asia/Shanghai"
        assert body["agents"] == [] and body["queues"] == []
        for bad in ("from=2026-12-08&to=2026-12-01", "from=2026-13-01", "from=yesterday", "language=fr"):
            refused = await gw.client.get(f"/api/reports/summary?{bad}", headers=admin)
            assert refused.status_code == 422, (bad, refused.text)
        assert (await gw.client.get("/api/reports/summary", headers=admin)).status_code == 200  # this month
        assert "/api/reports/summary" in (await gw.client.get("/openapi.json")).json()["paths"]
        exported = await gw.client.get(f"/api/reports/summary.csv?from={today}&to={today}", headers=admin)
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
        assert ["conversations", "2"] in rows and ["channel:rest", "2"] in rows
        book = await gw.client.get(f"/api/reports/summary.xlsx?from={today}&to={today}", headers=admin)
        assert book.status_code == 200 and book.content[:2] == b"PK"  # a zip: the workbook
        from openpyxl import load_workbook

        sheet = load_workbook(io.BytesIO(book.content)).active
        assert ["conversations", 2] in [list(r)[:2] for r in sheet.iter_rows(values_only=True)]
        assert (await gw.client.get(f"/api/reports/summary.xlsx?from={today}")).status_code == 401
