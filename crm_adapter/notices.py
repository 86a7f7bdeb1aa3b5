"""Proactive notices to the citizen when their work order moves (assigned, in progress, resolved, closed), and the
回访 after closing: "are you satisfied?" with buttons whose payloads the bot's `rate_work_order` intent takes.

Durable: the notifier reads our database's change feed (`crm_adapter.change_feed`, which includes the changes that
flowed back from Request Tracker) after a cursor kept in the database, so a notice is neither lost across a restart
nor sent twice (each is enqueued with a key made of the order and the change). Where and whether it may be sent
(opt-out, the channel's reply window, a channel that cannot push) is the sink's business:
`gateway.outbox.Outbox.enqueue_proactive`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog

from crm_adapter.backend import Change, WorkOrderBackend, WorkOrderNotFound, WorkOrderRecord
from crm_adapter.change_feed import ChangeFeed
from crm_adapter.cursors import CursorStore
from crm_adapter.routing import DepartmentInfo
from gateway.message import Button, OutboundMessage

log = structlog.get_logger(__name__)

CURSOR_NAME = "notices:citizen"
# The statuses the citizen is told about; "created" (the bot already said where it went) is not a move.
NOTIFY = ("assigned", "in_progress", "resolved", "closed")
RATE_INTENT = "rate_work_order"  # the bot's payload-only intent (training_data/domain/domain.yml)
SURVEY_SCORES = ((5, "满意", "Satisfied"), (3, "一般", "So-so"), (1, "不满意", "Not satisfied"))

_TEXT = {
    "zh": {
        "assigned": "您的工单 {number} 已转交{department}办理，预计 {due} 前办结。",
        "in_progress": "您的工单 {number} 正在由{department}处理中。",
        "resolved": "您的工单 {number} 已由{department}办结。{note}如问题仍未解决，请回复说明。",
        "closed": "您的工单 {number} 已办结关闭。",
        "survey": "请问您对本次办理结果是否满意？",
        "note": "处理说明：{note}。",
    },
    "en": {
        "assigned": "Your work order {number} has been passed to {department}; expected to be resolved by {due}.",
        "in_progress": "{department} is now working on your work order {number}.",
        "resolved": "Your work order {number} has been resolved by {department}. {note}If the problem is still "
        "there, reply and tell us.",
        "closed": "Your work order {number} has been closed.",
        "survey": "Are you satisfied with how it was handled?",
        "note": "Note: {note}. ",
    },
}


def rating_payload(number: str, score: int) -> str:
    """The quick-reply payload of one answer to the 回访."""
    return "/" + RATE_INTENT + json.dumps({"work_order_number": number, "score": score}, separators=(",", ":"))


def survey_buttons(number: str, language: str) -> tuple[Button, ...]:
    return tuple(
        Button(en if language == "en" else zh, rating_payload(number, score)) for score, zh, en in SURVEY_SCORES
    )


def notice_for(
    order: WorkOrderRecord,
    status: str,
    department: DepartmentInfo | None,
    timezone: ZoneInfo,
    note: str | None = None,
) -> OutboundMessage:
    """What the citizen is told when their order reaches `status` (closed: with the 回访 question and buttons)."""
    lang = "en" if order.language == "en" else "zh"
    text = _TEXT[lang]
    name = (department.name_en if lang == "en" else department.name_zh) if department else order.department
    words = text[status].format(
        number=order.number,
        department=name,
        due=order.due_at.astimezone(timezone).date().isoformat(),
        note=text["note"].format(note=note) if note else "",
    )
    if status == "closed":
        return OutboundMessage(text=f"{words}\n{text['survey']}", buttons=survey_buttons(order.number, lang))
    return OutboundMessage(text=words)


class NoticeSink(Protocol):
    """Where notices go (the gateway's outbox: opt-out, reply windows, stored for channels that cannot push)."""

    async def enqueue_proactive(
        self,
        contact_id: str,
        channel: str,
        outbound: OutboundMessage,
        kind: str,
        *,
        conversation_id: str | None = None,
        key: str | None = None,
        language: str | None = None,
    ) -> Any: ...


Lock = Callable[[], Any]  # an async context manager: one notifier at a time across workers


@dataclass
class CitizenNotifier:
    """Turns status changes into notices, after a persisted cursor (see the module docstring)."""

    backend: WorkOrderBackend
    feed: ChangeFeed  # our database's feed, not RtBackend.changes_since (which polls RT first: the RT sync does that)
    cursors: CursorStore
    sink: NoticeSink
    departments: dict[str, DepartmentInfo]
    timezone: ZoneInfo
    lock: Lock | None = None
    batch: int = 200
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self._wake.set()

    async def start_cursor(self) -> str | None:
        """Where to start: the stored cursor, else "now" (a new installation does not notify its past)."""
        cursor = await self.cursors.read(CURSOR_NAME)
        if cursor is not None:
            return cursor
        latest = await self.feed.latest_cursor()
        await self.cursors.write(CURSOR_NAME, latest)
        return latest

    async def run_once(self) -> int:
        """Send the notices of every change after the cursor; returns how many notices were enqueued."""
        if self.lock is not None:
            async with self.lock():
                return await self._run_once()
        return await self._run_once()

    async def _run_once(self) -> int:
        cursor = await self.start_cursor()
        sent = 0
        while True:
            batch = await self.feed.since(cursor, self.batch)
            for change in batch.changes:
                try:
                    sent += await self._notify(change)
                except Exception as exc:
                    # The cursor stays before this change: the next round tries it again (its key keeps a notice
                    # that did get through from going twice), so no citizen misses a notice.
                    log.error("notice.failed", number=change.number, status=change.to_status, error=repr(exc))
                    return sent
                cursor = change.cursor
                # After each change: a crash re-reads at most this one, and its key keeps it from going twice.
                await self.cursors.write(CURSOR_NAME, cursor)
            if len(batch.changes) < self.batch:
                return sent

    async def _notify(self, change: Change) -> int:
        if change.to_status not in NOTIFY or change.action == "created" or change.to_status == change.from_status:
            return 0
        try:
            order = await self.backend.get(change.number, with_steps=False)
        except WorkOrderNotFound:
            return 0
        note = None
        if change.to_status == "resolved":
            note = await self._step_note(change)
        outbound = notice_for(order, change.to_status, self.departments.get(change.department), self.timezone, note)
        kind = "work_order_survey" if change.to_status == "closed" else f"work_order_{change.to_status}"
        await self.sink.enqueue_proactive(
            order.contact_id, order.channel, outbound, kind,
            conversation_id=order.conversation_id, key=f"notice:{order.number}:{change.cursor}",
            language=order.language,
        )  # fmt: skip
        return 1

    async def _step_note(self, change: Change) -> str | None:
        order = await self.backend.get(change.number)
        step = next((s for s in order.steps if str(s.id) == change.cursor), None)
        if step is None or not step.note or step.note.startswith("Request Tracker transaction"):
            return None
        return step.note

    async def run(self, poll_seconds: float) -> None:
        """Forever: notify, then sleep until woken (a change was made here) or the poll interval passes."""
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("notices.round_failed", error=repr(exc))
            try:
                await asyncio.wait_for(self._wake.wait(), poll_seconds)
            except TimeoutError:
                pass

