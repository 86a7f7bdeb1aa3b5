"""Named cursors kept in our database (table crm_sync_cursors): where a reader of a feed stopped, so that after a
restart nothing is lost or read twice (Request Tracker's last transaction id, the citizens' notices' last step)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from crm_adapter.models import SyncCursor
from crm_adapter.rows import insert
from gateway.clock import utc_now
from gateway.storage import Database


class CursorStore:
    def __init__(self, db: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self.db = db
        self.clock = clock

    async def read(self, name: str) -> str | None:
        async with self.db.sessions() as session:
            row = await session.get(SyncCursor, name)
            return None if row is None else row.value

    async def write(self, name: str, value: str) -> None:
        async with self.db.sessions() as session, session.begin():
            stmt = insert(self.db, SyncCursor).values(name=name, value=value, updated_at=self.clock())
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name"],
                    set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
                )
            )
