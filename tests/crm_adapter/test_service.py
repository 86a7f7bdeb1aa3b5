"""The work-order service on the embedded backend: filing with routing and deadlines, the duplicate link, numbers
under concurrency (SQLite and PostgreSQL), events, and SLA reminders and alarms driven by a controllable clock."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crm_adapter.backend import InvalidWorkOrder
from crm_adapter.embedded import EmbeddedBackend
from crm_adapter.events import WorkOrderEvent
from crm_adapter.service import FileRequest, WorkOrderService, build_work_orders
from crm_adapter.workflow import Actor, Role
from gateway.storage import Database
from tests.crm_adapter.conftest import FakeClock, add_contact

SH = ZoneInfo("Asia/Shanghai")
DEPT = Actor("dept:li", Role.DEPARTMENT)


class Recorder:
    def __init__(self) -> None:
        self.events: list[WorkOrderEvent] = []

    async def __call__(self, event: WorkOrderEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[tuple[str, str]]:
        return [(e.kind, e.number) for e in self.events]


async def service_for(db: Database, clock: FakeClock, recorder: Recorder | None = None) -> WorkOrderService:
    return await build_work_orders(object(), db, clock=clock, publish=recorder)


def street_light(contact: str, text: str = "人民路56号门口的路灯不亮了", **kw: object) -> FileRequest:
    fields: dict[str, object] = {
        "category": "report",
        "description": text,
        "contact_id": contact,
        "channel": "sms",
        "location": "滨江市人民路56号",
    }
    fields.update(kw)
    return FileRequest(**fields)  # type: ignore[arg-type]


async def test_filing_routes_and_sets_the_deadline(sqlite_db: Database, clock: FakeClock) -> None:
    recorder = Recorder()
    service = await service_for(sqlite_db, clock, recorder)
    contact = await add_contact(sqlite_db)
    result = await service.file(street_light(contact))
    order = result.order
    assert order.number == "BJ-20261123-0001"  # the day in Binjiang's time zone
    assert (order.department, order.status) == ("urban_management", "assigned")
    assert order.due_at == datetime(2026, 11, 26, 17, 30, tzinfo=SH)  # report/normal: 3 working days
    assert order.title == "人民路56号门口的路灯不亮了"
    assert order.steps[0].note == "routed to urban_management (keywords:路灯)"
    unclear = await service.file(street_light(contact, "我有个情况想反映一下", category="complaint"))
    assert (unclear.order.department, unclear.order.status) == ("dispatch", "new")
    assert recorder.kinds() == [("filed", order.number), ("filed", unclear.order.number)]
    with pytest.raises(InvalidWorkOrder):
        await service.file(street_light("nobody"))
    with pytest.raises(InvalidWorkOrder):
        await service.file(street_light(contact, "   "))


async def test_the_classifier_routes_by_the_story_and_a_failing_one_is_not_fatal(sqlite_db: Database,
                                                                                  clock: FakeClock) -> None:
    service = await service_for(sqlite_db, clock)
    contact = await add_contact(sqlite_db)
    heard: list[str] = []

    async def classifier(text: str) -> list[tuple[str, float]]:
        heard.append(text)
        return [("urban_management", 0.7), ("transport", 0.2)]

    service.classifier = classifier
    bus_stop = "公交站旁边的井盖翘起来了，电动车被颠倒"
    order = (await service.file(street_light(contact, bus_stop, location="和平路公交站"))).order
    assert heard == [bus_stop]  # what happened, not where (the place names another department's things)
    assert order.department == "urban_management"
    assert order.steps[0].note == "routed to urban_management (classifier:0.70)"

    async def broken(_text: str) -> list[tuple[str, float]]:
        raise RuntimeError("index not ready")

    service.classifier = broken
    order = (await service.file(street_light(contact, "红绿灯坏了好几天", location="江南大道"))).order
    assert order.department == "transport"  # the keyword rules still route it


async def test_the_same_report_within_a_day_is_linked(sqlite_db: Database, clock: FakeClock) -> None:
    recorder = Recorder()
    service = await service_for(sqlite_db, clock, recorder)
    contact, neighbour = await add_contact(sqlite_db), await add_contact(sqlite_db, "李四", "+8613800000002")
    first = await service.file(street_light(contact))
    clock.advance(hours=5)
    again = await service.file(street_light(contact, "人民路56号的路灯还是不亮"))
    assert again.duplicate and again.order.number == first.order.number
    assert again.order.report_count == 2 and again.order.steps[-1].action == "linked_report"
    assert recorder.events[-1].kind == "linked_report"
    # Not linked: another contact, another category, another thing, or more than a day later.
    assert not (await service.file(street_light(neighbour))).duplicate
    assert not (await service.file(street_light(contact, category="complaint"))).duplicate
    assert not (
        await service.file(street_light(contact, "中山路3号的井盖丢了", location="中山路3号"))
    ).duplicate
    clock.advance(hours=20)
    later = await service.file(street_light(contact))
    assert not later.duplicate and later.order.number != first.order.number


async def test_a_finished_order_is_not_linked(sqlite_db: Database, clock: FakeClock) -> None:
    service = await service_for(sqlite_db, clock)
    contact = await add_contact(sqlite_db)
    first = await service.file(street_light(contact))
    await service.update_status(first.order.number, "resolved", DEPT)
    assert not (await service.file(street_light(contact))).duplicate


async def test_numbers_are_unique_under_concurrency(database: Database, clock: FakeClock) -> None:
    service = await service_for(database, clock)
    contacts = [await add_contact(database, f"c{i}", f"+86138000001{i:02d}") for i in range(40)]
    results = await asyncio.gather(
        *(service.file(street_light(c, f"第{i}号路灯不亮 lamp {i}")) for i, c in enumerate(contacts))
    )
    numbers = sorted(r.order.number for r in results)
    assert numbers == [f"BJ-20261123-{i:04d}" for i in range(1, 41)]
    # A new day in Binjiang starts again at 0001 (16:00 UTC is midnight in Shanghai).
    clock.now = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
    assert (await service.file(street_light(contacts[0], "another lamp"))).order.number == "BJ-20261124-0001"


async def test_reopen_gets_a_fresh_deadline_and_events(sqlite_db: Database, clock: FakeClock) -> None:
    recorder = Recorder()
    service = await service_for(sqlite_db, clock, recorder)
    order = (await service.file(street_light(await add_contact(sqlite_db)))).order
    await service.update_status(order.number, "resolved", DEPT)
    clock.now = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # next Monday 10:00
    reopened = await service.update_status(order.number, "reopened", Actor("citizen", Role.CITIZEN), "又坏了")
    assert reopened.due_at == datetime(2026, 12, 3, 17, 30, tzinfo=SH)
    assert [(e.kind, e.from_status, e.status) for e in recorder.events[1:]] == [
        ("status_changed", "assigned", "resolved"),
        ("status_changed", "resolved", "reopened"),
    ]
    moved = await service.reassign(order.number, "utilities", "transfer", DEPT)
    assert recorder.events[-1].kind == "reassigned" and moved.department == "utilities"
    with pytest.raises(InvalidWorkOrder):
        await service.reassign(order.number, "utilities", "teleport", DEPT)
    latest = await service.latest_for_contact(order.contact_id)
    assert latest is not None and latest.number == order.number


async def test_sla_reminders_and_alarms_once_per_order_and_level(sqlite_db: Database) -> None:
    # Friday 13 Feb 2026, 09:00 in Binjiang; the next working day is the adjusted working Saturday 14 Feb.
    clock = FakeClock(datetime(2026, 2, 13, 9, 0, tzinfo=SH))
    recorder = Recorder()
    service = await service_for(sqlite_db, clock)
    contact = await add_contact(sqlite_db)
    urgent = (
        await service.file(
            street_light(contact, "人民路的路灯全部不亮，很危险", category="complaint", priority="urgent")
        )
    ).order
    normal = (
        await service.file(street_light(contact, "井盖丢了", category="report", location="中山路3号"))
    ).order
    assert urgent.due_at == datetime(
        2026, 2, 14, 9, 30, tzinfo=SH
    )  # 8 working hours: 7 on Fri, 1 on adj. Sat
    assert normal.due_at == datetime(2026, 2, 25, 17, 30, tzinfo=SH)  # 3 working days: Sat 14, Tue 24, Wed 25
    watcher = service.watcher(recorder)
    assert await watcher.tick() == []
    clock.now = datetime(2026, 2, 13, 14, 0, tzinfo=SH)  # 4.5 working hours before urgent's deadline
    assert await watcher.tick() == []
    clock.now = datetime(2026, 2, 13, 14, 45, tzinfo=SH)  # 3.75 working hours before it: inside the window
    assert [(e.kind, e.number) for e in await watcher.tick()] == [("sla_reminder", urgent.number)]
    assert await watcher.tick() == []  # once
    clock.now = datetime(2026, 2, 14, 9, 31, tzinfo=SH)
    events = await watcher.tick()
    assert [(e.kind, e.number) for e in events] == [("sla_overdue", urgent.number)]
    assert events[0].audience == ("department:urban_management", "supervisors")
    clock.now = datetime(2026, 2, 20, 12, 0, tzinfo=SH)  # Spring Festival: nothing new for the normal one
    assert await watcher.tick() == []
    clock.now = datetime(2026, 2, 25, 14, 0, tzinfo=SH)  # 3.5 working hours before 17:30
    assert [(e.kind, e.number) for e in await watcher.tick()] == [("sla_reminder", normal.number)]
    clock.now = datetime(2026, 2, 26, 8, 0, tzinfo=SH)
    assert [(e.kind, e.number) for e in await watcher.tick()] == [("sla_overdue", normal.number)]
    # Resolved orders are not watched; a reopened one gets a new deadline and is watched again.
    await service.update_status(urgent.number, "resolved", DEPT)
    assert await watcher.tick() == []
    await service.update_status(urgent.number, "reopened", Actor("agent", Role.AGENT))
    clock.now = datetime(2026, 3, 31, 8, 0, tzinfo=SH)
    assert [(e.kind, e.number) for e in await watcher.tick()] == [("sla_overdue", urgent.number)]
    steps = [s.action for s in (await service.get(urgent.number)).steps]
    assert steps.count("sla_reminder") == 1 and steps.count("sla_overdue") == 2
    assert [e.kind for e in recorder.events] == [
        "sla_reminder",
        "sla_overdue",
        "sla_reminder",
        "sla_overdue",
        "sla_overdue",
    ]


async def test_two_watchers_alert_once(sqlite_db: Database, clock: FakeClock) -> None:
    service = await service_for(sqlite_db, clock)
    contact = await add_contact(sqlite_db)
    for i in range(5):
        await service.file(street_light(contact, f"路灯{i}号 {i}" * 3, location=f"{i}号"))
    clock.advance(days=30)
    a, b = service.watcher(Recorder()), service.watcher(Recorder())
    first, second = await asyncio.gather(a.tick(), b.tick())
    assert len(first) + len(second) == 5
    assert re.match(r"BJ-\d{8}-\d{4}", first[0].number if first else second[0].number)


async def test_overdue_listing_uses_an_index(database: Database) -> None:
    """The query `find(overdue_at=...)` sends is answered from an index range, not a table scan."""
    from sqlalchemy.dialects import postgresql, sqlite

    from crm_adapter.backend import OrderFilter

    captured: list[str] = []
    backend = EmbeddedBackend(database)
    original = database.sessions

    # Capture the statement the backend builds, compiled with its literal values, and ask for its plan.
    def capturing() -> Any:
        session = original()
        execute = session.execute

        async def spy(statement: Any, *args: Any, **kwargs: Any) -> Any:
            dialect = sqlite.dialect() if database.is_sqlite else postgresql.dialect()
            captured.append(str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})))
            return await execute(statement, *args, **kwargs)

        session.execute = spy  # type: ignore[method-assign]
        return session

    database.sessions = capturing  # type: ignore[assignment]
    await backend.find(OrderFilter(overdue_at=datetime(2026, 11, 23, tzinfo=UTC), limit=100))
    database.sessions = original  # type: ignore[assignment]
    async with database.engine.connect() as conn:
        if database.is_sqlite:
            rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + captured[0])
            plan = " ".join(str(r[-1]) for r in rows)
            assert "USING INDEX ix_work_orders_" in plan and "SCAN work_orders" not in plan, plan
        else:
            await conn.exec_driver_sql("SET enable_seqscan = off")  # a tiny table would be scanned anyway
            plan = " ".join(str(r[0]) for r in await conn.exec_driver_sql("EXPLAIN " + captured[0]))
            assert "ix_work_orders_open_due" in plan or "ix_work_orders_status_due" in plan, plan
