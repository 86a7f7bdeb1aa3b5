"""Work orders: orders filed per second through the service, the HTTP API and the bot (vs their baselines), and
finding overdue orders among 1,000,000 with the index vs a full scan.

    .venv/bin/python -m bench bench_work_orders          (or: .venv/bin/python bench/bench_work_orders.py)
    BENCH_WO_ROWS=200000 BENCH_WO_POSTGRES=0 ...         (smaller table; skip PostgreSQL)
    BENCH_WO_BOT=0 ...                                   (skip filing through the bot: no Rasa started)

Filing goes through `WorkOrderService.file` on the embedded backend with SQLite (routing, deadline on the working
calendar, duplicate check, per-day number, the order and its first step, one transaction); the baseline is one bare
INSERT of a work_orders row per transaction through the same engine, in the same run. Through the API: POST
/api/work-orders on the app's router in-process (validation, auth, JSON both ways), against the service's own rate.
Through the bot: the real gateway and Rasa, each order a three-turn dialogue on the REST channel (everything in one
message, the phone, "是"), against three plain turns ("你好") per citizen through the same stack. The overdue query
is the one the API and the SLA watcher use (status IN open statuses AND due_at < now); its baseline is the same
query forced to scan the table (SQLite: NOT INDEXED; PostgreSQL: index scans off). The rows are bulk-inserted
(executemany / COPY).
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

Row = tuple[Any, ...]
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench.stats import table  # noqa: E402
from crm_adapter.models import OPEN_STATUSES  # noqa: E402
from crm_adapter.service import FileRequest, build_work_orders  # noqa: E402
from gateway.storage import Contact, Database  # noqa: E402

FILED = int(os.environ.get("BENCH_WO_FILED", "400"))
CONCURRENCY = 8
ROWS = int(os.environ.get("BENCH_WO_ROWS", "1000000"))
POSTGRES = os.environ.get("BENCH_WO_POSTGRES", "1") == "1"
BOT = os.environ.get("BENCH_WO_BOT", "1") == "1"
BOT_ORDERS = int(os.environ.get("BENCH_WO_BOT_ORDERS", "40"))
BOT_CONCURRENCY = 4
API_TOKEN = "bench-admin-token"
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
TEXTS = [
    "{n}号路灯不亮了",
    "滨江路{n}号工地夜间施工噪音太大",
    "中山路{n}号井盖丢了",
    "{n}路公交车司机拒载",
    "The street light outside {n} Renmin Road is out",
    "小区{n}栋停水两天了",
]
OVERDUE_SQL = (
    "SELECT id, number, due_at FROM work_orders {hint} WHERE status IN ({statuses}) AND due_at < {now} "
    "ORDER BY due_at LIMIT 100"
)
COUNT_SQL = "SELECT count(*) FROM work_orders {hint} WHERE status IN ({statuses}) AND due_at < {now}"
STATUSES = ",".join(f"'{s}'" for s in OPEN_STATUSES)


def _sqlite_ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite DATETIME format


async def _contacts(db: Database, n: int) -> list[str]:
    ids = [uuid.uuid4().hex for _ in range(n)]
    async with db.sessions() as session, session.begin():
        session.add_all([Contact(id=i, display_name=f"c{i[:4]}", phone=None, language="zh") for i in ids])
    return ids


# ---- filing
# ----------------------------------------------------------------------------------------------------


async def bench_filing(directory: Path) -> list[list[object]]:
    db = Database(f"sqlite+aiosqlite:///{directory / 'filing.db'}")
    await db.migrate()
    clock_now = [NOW]
    service = await build_work_orders(object(), db, clock=lambda: clock_now[0])
    contacts = await _contacts(db, 200)
    requests = [
        FileRequest(
            category="report",
            description=TEXTS[i % len(TEXTS)].format(n=i),
            location=f"{i}号",
            contact_id=contacts[i % len(contacts)],
            channel="sms",
        )
        for i in range(FILED)
    ]
    started = time.perf_counter()
    for request in requests:
        await service.file(request)
    sequential = FILED / (time.perf_counter() - started)

    clock_now[0] = NOW + timedelta(days=1)  # a fresh day (and no duplicates with the first round)
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(request: FileRequest) -> None:
        async with semaphore:
            await service.file(request)

    started = time.perf_counter()
    await asyncio.gather(*(one(r) for r in requests))
    concurrent = FILED / (time.perf_counter() - started)

    insert = text(
        "INSERT INTO work_orders (number, category, title, description, location, contact_id, channel, "
        "language, department, priority, status, due_at, created_at, updated_at, report_count) "
        "VALUES (:number, 'report', :title, :title, :title, :contact, 'sms', 'zh', 'urban_management', "
        "'normal', 'assigned', :due, :now, :now, 1)"
    )
    started = time.perf_counter()
    for i in range(FILED):
        async with db.engine.begin() as conn:
            await conn.execute(
                insert,
                {
                    "number": f"BARE-{i}",
                    "title": TEXTS[i % len(TEXTS)].format(n=i),
                    "contact": contacts[i % len(contacts)],
                    "due": NOW,
                    "now": NOW,
                },
            )
    bare = FILED / (time.perf_counter() - started)
    await db.dispose()
    return [
        ["filed through the service, one at a time", f"{sequential:.0f}/s", f"{sequential / bare:.2f}"],
        [
            f"filed through the service, {CONCURRENCY} at a time",
            f"{concurrent:.0f}/s",
            f"{concurrent / bare:.2f}",
        ],
        ["baseline: bare INSERT, one per transaction", f"{bare:.0f}/s", "1.00"],
    ]


async def bench_api(directory: Path, service_rate: float) -> list[list[object]]:
    """POST /api/work-orders in-process (the router as the gateway mounts it), one at a time and concurrently."""
    from types import SimpleNamespace

    import httpx
    from fastapi import FastAPI

    from crm_adapter.api import router

    db = Database(f"sqlite+aiosqlite:///{directory / 'api.db'}")
    await db.migrate()
    settings = SimpleNamespace(admin_token=API_TOKEN)
    clock_now = [NOW]
    app = FastAPI()
    app.state.services = SimpleNamespace(
        settings=settings, work_orders=await build_work_orders(settings, db, clock=lambda: clock_now[0])
    )
    app.include_router(router)
    contacts = await _contacts(db, 200)
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    bodies = [
        {"category": "report", "description": TEXTS[i % len(TEXTS)].format(n=i), "location": f"{i}号",
         "contact_id": contacts[i % len(contacts)], "channel": "sms"}
        for i in range(FILED)
    ]  # fmt: skip
    rates = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        for day, concurrency in enumerate((1, CONCURRENCY)):
            clock_now[0] = NOW + timedelta(days=day)  # a fresh day: no report is linked to the first round's
            gate = asyncio.Semaphore(concurrency)

            async def one(body: dict[str, Any], gate: asyncio.Semaphore = gate) -> None:
                async with gate:
                    response = await client.post("/api/work-orders", json=body, headers=headers)
                    assert response.status_code in (200, 201), response.text

            started = time.perf_counter()
            await asyncio.gather(*(one(b) for b in bodies))
            rates.append((concurrency, FILED / (time.perf_counter() - started)))
    await db.dispose()
    return [
        [f"filed through POST /api/work-orders, {c} at a time", f"{rate:.0f}/s", f"{rate / service_rate:.2f}"]
        for c, rate in rates
    ]


async def bench_bot() -> list[list[object]]:
    """Orders filed through the bot (real gateway + Rasa, REST channel) vs plain turns through the same stack."""
    import httpx

    from bench.processes import bot_stack

    async def citizen(client: httpx.AsyncClient, texts: list[str], check: str | None) -> None:
        sender = f"bench-{uuid.uuid4().hex[:10]}"
        for text_ in texts:
            response = await client.post(url, json={"sender": sender, "message": text_})
            response.raise_for_status()
        if check is not None:
            assert response.json()[-1]["meta"][check], response.text

    async def run(dialogues: list[list[str]], check: str | None) -> float:
        gate = asyncio.Semaphore(BOT_CONCURRENCY)

        async def one(texts: list[str]) -> None:
            async with gate:
                await citizen(client, texts, check)

        async with httpx.AsyncClient(timeout=60) as client:
            started = time.perf_counter()
            await asyncio.gather(*(one(d) for d in dialogues))
            return len(dialogues) / (time.perf_counter() - started)

    reports = [[f"解放路{i}号门口的路灯坏了三天了", "13812345678", "是"] for i in range(BOT_ORDERS)]
    plain = [["你好", "你好", "你好"] for _ in range(BOT_ORDERS)]
    with bot_stack("wo-bot") as stack:
        url = f"{stack.base}/channels/rest/webhook"
        await run(reports[:2] + plain[:2], None)  # warm the model, the actions, the connections
        filed = await run(reports, "work_order_id")
        baseline = await run(plain, None)
    return [
        [f"filed through the bot (3 turns each, {BOT_CONCURRENCY} citizens at a time)", f"{filed:.1f}/s",
         f"{filed / baseline:.2f}"],
        ["baseline: 3 plain turns (你好) per citizen, same stack", f"{baseline:.1f}/s", "1.00"],
    ]  # fmt: skip


# ---- 1,000,000 rows
# --------------------------------------------------------------------------------------------


def _rows(contacts: list[str]) -> list[Row]:
    """A city's two years of orders: 95% finished, the open ones spread around now (so ~1/3 of them
    overdue)."""
    rng = random.Random(7)
    finished = ("resolved", "closed")
    rows = []
    for i in range(ROWS):
        created = NOW - timedelta(minutes=rng.randrange(0, 2 * 365 * 24 * 60))
        if rng.random() < 0.05:
            status = rng.choice(OPEN_STATUSES)
            due = NOW + timedelta(hours=rng.uniform(-24 * 10, 24 * 20))
        else:
            status = rng.choice(finished)
            due = created + timedelta(days=3)
        rows.append(
            (
                f"BJ-{created:%Y%m%d}-{i:07d}",
                "report",
                "路灯不亮",
                "人民路路灯不亮",
                None,
                contacts[i % len(contacts)],
                "sms",
                "zh",
                "urban_management",
                "normal",
                status,
                due,
                created,
                created,
                1,
            )
        )
    return rows


COLUMNS = (
    "number",
    "category",
    "title",
    "description",
    "location",
    "contact_id",
    "channel",
    "language",
    "department",
    "priority",
    "status",
    "due_at",
    "created_at",
    "updated_at",
    "report_count",
)


def _time(run: object, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


async def bench_overdue_sqlite(directory: Path, rows: list[Row], contacts: list[str]) -> list[list[object]]:
    path = directory / "million.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    service = await build_work_orders(object(), db)  # seeds the departments
    await service.close()
    async with db.sessions() as session, session.begin():
        session.add_all([Contact(id=i, language="zh") for i in contacts])
    await db.dispose()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")  # a throw-away bench file
    placeholders = ",".join("?" * len(COLUMNS))
    # Bulk load the usual way: drop the secondary indexes, insert, build them again (timed separately).
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='work_orders' "
        "AND sql IS NOT NULL"
    ).fetchall()
    for name, _sql in indexes:
        conn.execute(f"DROP INDEX {name}")
    started = time.perf_counter()
    conn.executemany(
        f"INSERT INTO work_orders ({','.join(COLUMNS)}) VALUES ({placeholders})",
        ((*r[:11], _sqlite_ts(r[11]), _sqlite_ts(r[12]), _sqlite_ts(r[13]), r[14]) for r in rows),
    )
    conn.commit()
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    for _name, sql in indexes:
        conn.execute(sql)
    conn.execute("ANALYZE")
    conn.commit()
    indexed_in = time.perf_counter() - started
    now = f"'{_sqlite_ts(NOW)}'"
    indexed_sql = OVERDUE_SQL.format(hint="", statuses=STATUSES, now=now)
    scan_sql = OVERDUE_SQL.format(hint="NOT INDEXED", statuses=STATUSES, now=now)
    plan = [r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + indexed_sql)]
    scan_plan = [r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + scan_sql)]
    overdue = conn.execute(COUNT_SQL.format(hint="", statuses=STATUSES, now=now)).fetchone()[0]
    indexed = _time(lambda: conn.execute(indexed_sql).fetchall())
    counted = _time(lambda: conn.execute(COUNT_SQL.format(hint="", statuses=STATUSES, now=now)).fetchone())
    scanned = _time(lambda: conn.execute(scan_sql).fetchall(), repeat=3)
    conn.close()
    print(
        f"SQLite: {ROWS:,} rows bulk-inserted in {loaded:.1f} s, indexes built in {indexed_in:.1f} s; "
        f"{overdue:,} overdue"
    )
    print("  plan (index):", " | ".join(plan))
    print("  plan (baseline):", " | ".join(scan_plan))
    return [
        [
            "SQLite",
            "first page of overdue (100, by due date)",
            f"{indexed * 1000:.2f} ms",
            f"{scanned * 1000:.1f} ms",
            f"{scanned / indexed:.0f}x",
        ],
        ["SQLite", f"count all {overdue:,} overdue", f"{counted * 1000:.1f} ms", "", ""],
    ]


async def bench_overdue_postgres(rows: list[Row], contacts: list[str]) -> list[list[object]]:
    import asyncpg

    name = f"gw_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        db = Database(f"postgresql+asyncpg://{base.split('://', 1)[1]}/{name}")
        await db.migrate()
        service = await build_work_orders(object(), db)
        await service.close()
        async with db.sessions() as session, session.begin():
            session.add_all([Contact(id=i, language="zh", created_at=NOW) for i in contacts])
        await db.dispose()
        conn = await asyncpg.connect(f"{base}/{name}")
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'work_orders' "
            "AND indexname LIKE 'ix_%'"
        )
        for index in indexes:
            await conn.execute(f"DROP INDEX {index['indexname']}")
        started = time.perf_counter()
        # Foreign-key triggers off for the load (the rows are generated valid), then COPY.
        await conn.execute("ALTER TABLE work_orders DISABLE TRIGGER ALL")
        await conn.copy_records_to_table("work_orders", records=rows, columns=COLUMNS)
        await conn.execute("ALTER TABLE work_orders ENABLE TRIGGER ALL")
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        for index in indexes:
            await conn.execute(index["indexdef"])
        await conn.execute("ANALYZE work_orders")
        indexed_in = time.perf_counter() - started
        now = "'2026-11-23T02:00:00+00:00'::timestamptz"
        sql = OVERDUE_SQL.format(hint="", statuses=STATUSES, now=now)
        count_sql = COUNT_SQL.format(hint="", statuses=STATUSES, now=now)
        plan = [r[0] for r in await conn.fetch("EXPLAIN " + sql)]
        overdue = await conn.fetchval(count_sql)

        async def best(query: str, repeat: int = 5) -> float:
            result = float("inf")
            for _ in range(repeat):
                started = time.perf_counter()
                await conn.fetch(query)
                result = min(result, time.perf_counter() - started)
            return result

        indexed, counted = await best(sql), await best(count_sql)
        await conn.execute(
            "SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off"
        )
        scan_sql = "/* baseline */ " + sql  # new text: asyncpg would reuse the cached (index) plan otherwise
        scan_plan = [r[0] for r in await conn.fetch("EXPLAIN " + scan_sql)]
        scanned = await best(scan_sql, repeat=3)
        await conn.close()
        print(
            f"PostgreSQL: {ROWS:,} rows copied in {loaded:.1f} s, indexes built in {indexed_in:.1f} s; "
            f"{overdue:,} overdue"
        )
        print("  plan (index):", " | ".join(p.strip() for p in plan))
        print("  plan (baseline):", " | ".join(p.strip() for p in scan_plan))
        return [
            [
                "PostgreSQL",
                "first page of overdue (100, by due date)",
                f"{indexed * 1000:.2f} ms",
                f"{scanned * 1000:.1f} ms",
                f"{scanned / indexed:.0f}x",
            ],
            ["PostgreSQL", f"count all {overdue:,} overdue", f"{counted * 1000:.1f} ms", "", ""],
        ]
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-wo-") as tmp:
        directory = Path(tmp)
        filing = await bench_filing(directory)
        print(table(["work orders filed (embedded, SQLite)", "rate", "ratio to bare INSERT"], filing))
        service_rate = float(str(filing[0][1]).removesuffix("/s"))
        api = await bench_api(directory, service_rate)
        api.append(["baseline: the service, one at a time", f"{service_rate:.0f}/s", "1.00"])
        print(table(["work orders filed through the API", "rate", "ratio to the service"], api))
        if BOT:
            print(table(["work orders filed through the bot", "citizens/s", "ratio to plain turns"], await bench_bot()))
        contacts = [uuid.uuid4().hex for _ in range(1000)]
        started = time.perf_counter()
        rows = _rows(contacts)
        print(f"\ngenerated {ROWS:,} rows in {time.perf_counter() - started:.1f} s")
        overdue = await bench_overdue_sqlite(directory, rows, contacts)
        if POSTGRES:
            overdue += await bench_overdue_postgres(rows, contacts)
        print(table(["database", f"overdue among {ROWS:,}", "with index", "full scan", "speed-up"], overdue))


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
