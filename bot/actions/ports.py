"""What the custom actions need from the rest of the gateway: the knowledge-base search, as a Protocol.

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


class ArticleSearch(Protocol):
    """Searches the knowledge base (implemented by kb_retrieval, faked in tests)."""

    async def search(self, query: str, k: int, lang: str | None) -> KbAnswer: ...
