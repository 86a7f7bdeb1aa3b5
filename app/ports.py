"""The bot's ports (bot/actions/ports.py) on top of the features: the work-order desk on crm_adapter's
`WorkOrderService`, the article search and the answer-feedback store on the knowledge base.

The actions know nothing of crm_adapter or kb_retrieval; these adapters translate between the two vocabularies.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog

from bot.actions.ports import ArticleHit, FiledWorkOrder, KbAnswer, WorkOrderDraft, WorkOrderSummary
from crm_adapter.backend import InvalidWorkOrder, StepRecord, WorkOrderNotFound, WorkOrderRecord
from crm_adapter.service import FileRequest, WorkOrderService
from kb_retrieval.service import KnowledgeLoading, KnowledgeService

log = structlog.get_logger(__name__)

# Notes the bot added itself on older orders (the contact phone, photos; now fields of the order) are history, not
# progress: "the last step" skips them, and the 回访 answer too.
CONTACT_NOTE_PREFIX = "[contact] "


_DRAFT_FIELDS = ({f.name for f in fields(WorkOrderDraft)} & {f.name for f in fields(FileRequest)}) - {"photos"}


class WorkOrdersUnavailable(RuntimeError):
    """The gateway runs without a work-order service."""


class WorkOrderPort:
    """Files and reads work orders for the bot through the work-order service (routing, deadlines, duplicates)."""

    def __init__(self, service: WorkOrderService | None) -> None:
        self._service = service

    def _require(self) -> WorkOrderService:
        if self._service is None:
            raise WorkOrdersUnavailable("no work-order service is configured")
        return self._service

    def _tz(self, service: WorkOrderService) -> ZoneInfo:
        return ZoneInfo(service.sla.calendar.config.timezone)

    def _names(self, service: WorkOrderService, code: str) -> tuple[str, str]:
        info = service.router.departments.get(code)
        return (info.name_zh, info.name_en) if info else (code, code)

    async def file(self, draft: WorkOrderDraft) -> FiledWorkOrder:
        service = self._require()
        # The bot's draft and the service's request name the same things alike: carried over by name.
        carried = {name: getattr(draft, name) for name in _DRAFT_FIELDS}
        result = await service.file(FileRequest(**carried, photos=tuple(draft.photos)))
        order = result.order
        zh, en = self._names(service, order.department)
        return FiledWorkOrder(
            number=order.number,
            due_date=order.due_at.astimezone(self._tz(service)).date().isoformat(),
            department=order.department,
            department_name_zh=zh,
            department_name_en=en,
            duplicate=result.duplicate,
        )

    async def rate(self, number: str, contact_id: str, score: int) -> bool:
        """The filer's 回访 answer; False when the order is not theirs, unknown, or not finished yet."""
        service = self._require()
        try:
            await service.rate(number, contact_id, score)
        except (WorkOrderNotFound, InvalidWorkOrder) as exc:
            log.info("work_order.rating_refused", number=number, reason=type(exc).__name__)
            return False
        return True

    async def summary(self, number: str) -> WorkOrderSummary | None:
        service = self._require()
        try:
            order = await service.get(number)
        except WorkOrderNotFound:
            return None
        return self._summary(service, order)

    async def latest_for_contact(self, contact_id: str) -> WorkOrderSummary | None:
        service = self._require()
        latest = await service.latest_for_contact(contact_id)
        if latest is None:
            return None
        return self._summary(service, await service.get(latest.number))  # with its steps

    def _summary(self, service: WorkOrderService, order: WorkOrderRecord) -> WorkOrderSummary:
        tz = self._tz(service)
        progress = [
            s for s in order.steps
            if not (s.note or "").startswith(CONTACT_NOTE_PREFIX) and s.action not in ("satisfaction", "pushed")
        ]  # fmt: skip
        last: StepRecord | None = progress[-1] if progress else None
        zh, en = self._names(service, order.department)
        return WorkOrderSummary(
            number=order.number,
            contact_id=order.contact_id,
            status=order.status,
            department=order.department,
            department_name_zh=zh,
            department_name_en=en,
            due_date=order.due_at.astimezone(tz).date().isoformat(),
            last_step=last.action if last else None,
            last_step_note=last.note if last else None,
            last_step_at=_local_minute(last.created_at, tz) if last else None,
        )


def _local_minute(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


class KbFeedbackPort:
    """Stores 👍/👎 on knowledge-base answers in the article store."""

    def __init__(self, knowledge: KnowledgeService | None) -> None:
        self._knowledge = knowledge

    async def record(self, article_id: str, helpful: bool, conversation_id: str | None, query: str | None) -> None:
        if self._knowledge is None:
            log.warning("kb.feedback_dropped", article_id=article_id, reason="no knowledge service")
            return
        await self._knowledge.store.record_feedback(article_id, helpful, conversation_id, query)


class ActionSearch:
    """The bot actions' `ArticleSearch` port, served by the knowledge service."""

    def __init__(self, knowledge: KnowledgeService) -> None:
        self.knowledge = knowledge

    async def search(self, query: str, k: int, lang: str | None) -> KbAnswer:
        # A turn may arrive while the index is still being built at start-up: wait for it a little.
        try:
            result = await self.knowledge.search(query, k=k, lang=lang, wait_seconds=20.0)
        except KnowledgeLoading:
            log.warning("kb.not_ready_for_turn")
            return KbAnswer(hits=[], answerable=False)
        hits = [
            ArticleHit(
                id=h.article.id, title_zh=h.article.title_zh, title_en=h.article.title_en,
                body_zh=h.article.body_zh, body_en=h.article.body_en, department=h.article.department,
                score=float(h.score),
            )
            for h in result.hits
        ]
        return KbAnswer(hits=hits, answerable=bool(result.answerable), confidence=result.confidence)

