"""What the custom actions need from the rest of the gateway, as Protocols: the knowledge-base search, the
work-order desk (file, read) and the store of answer feedback.

The actions depend on this port, not on `kb_retrieval`, so the gateway passes the real search in at start-up and
tests pass a fake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ArticleHit:
    """One knowledge-base article found for a query, in both languages."""

    id: str
    title_zh: str
    title_en: str
    body_zh: str
    body_en: str
    department: str
    score: float

    def title(self, lang: str) -> str:
        """The title in `lang` (en or zh), falling back to the other language when it is empty."""
        if lang == "en":
            return self.title_en or self.title_zh
        return self.title_zh or self.title_en

    def body(self, lang: str) -> str:
        """The body in `lang` (en or zh), falling back to the other language when it is empty."""
        if lang == "en":
            return self.body_en or self.body_zh
        return self.body_zh or self.body_en


@dataclass(frozen=True)
class KbAnswer:
    """The search's verdict: hits best first, and whether the best one is good enough to answer with."""

    hits: list[ArticleHit] = field(default_factory=list)
    answerable: bool = False
    confidence: float | None = None  # the calibrated probability behind `answerable`, when the search has one


class ArticleSearch(Protocol):
    """Searches the knowledge base (implemented by kb_retrieval, faked in tests)."""

    async def search(self, query: str, k: int, lang: str | None) -> KbAnswer: ...


# ---- work orders ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkOrderDraft:
    """A work order as the bot's form collected it, ready to file."""

    category: str  # consultation, complaint, report, suggestion, praise
    description: str
    location: str | None  # free text, kept whole
    phone: str | None
    contact_id: str
    conversation_id: str | None
    channel: str
    intent: str | None
    language: str
    photos: list[str] = field(default_factory=list)  # attachment refs or URLs from the message


@dataclass(frozen=True)
class FiledWorkOrder:
    """The outcome of filing: the order's number and expected date, or the open order a repeat was linked to."""

    number: str
    due_date: str  # YYYY-MM-DD on the city's calendar
    department: str  # code
    department_name_zh: str
    department_name_en: str
    duplicate: bool = False


@dataclass(frozen=True)
class WorkOrderSummary:
    """What the citizen may be told about an order (and the contact it belongs to, to check who asks)."""

    number: str
    contact_id: str
    status: str
    department: str
    department_name_zh: str
    department_name_en: str
    due_date: str
    last_step: str | None  # the last step's action (filed, assigned, note, ...)
    last_step_note: str | None
    last_step_at: str | None  # YYYY-MM-DD HH:MM on the city's clock


class WorkOrderDesk(Protocol):
    """Files and reads work orders (implemented on top of crm_adapter's WorkOrderService, faked in tests)."""

    async def file(self, draft: WorkOrderDraft) -> FiledWorkOrder: ...

    async def summary(self, number: str) -> WorkOrderSummary | None: ...

    async def latest_for_contact(self, contact_id: str) -> WorkOrderSummary | None: ...

    async def rate(self, number: str, contact_id: str, score: int) -> bool:
        """Store the filer's answer to the 回访 (1–5); False when the order is not theirs or not finished."""
        ...


# ---- knowledge-base feedback ----------------------------------------------------------------------------------------


class ArticleFeedback(Protocol):
    """Stores a citizen's 👍/👎 on an answer (implemented on the KB's article store, faked in tests)."""

    async def record(self, article_id: str, helpful: bool, conversation_id: str | None, query: str | None) -> None: ...
