"""The review queue: what citizens said where the bot was unsure, grouped by similarity, for staff to act on.

An item is a citizen's message whose turn had low intent confidence, ended in nlu_fallback or out_of_scope, was
followed by a request for a person, or a question whose KB answer got a 👎. Items are masked (`gateway.privacy`),
grouped by character-bigram Jaccard similarity (cheap, language-neutral: Chinese has no spaces), and handled once:
added as an example, turned into a KB article, or dismissed (`ReviewDecision`, keyed per message).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select

from gateway.clock import utc, utc_now
from gateway.privacy import mask_personal_data
from gateway.storage import Database, Message
from kb_retrieval.store import FeedbackRow
from studio.models import ReviewDecision

FALLBACK_INTENTS = ("nlu_fallback", "out_of_scope")
HANDOFF_INTENT = "request_human"
SIMILARITY = 0.5  # bigram Jaccard from which two messages are "the same question"
SCAN_LIMIT = 50_000  # newest unsure turns looked at; older ones have had their chance
_PUNCTUATION = re.compile(r"[\W_]+", re.UNICODE)


@dataclass
class QueueItem:
    key: str  # m:<message id> or f:<feedback id>
    text: str  # masked
    created_at: datetime
    reasons: set[str]
    intent: str | None = None
    confidence: float | None = None
    language: str | None = None


@dataclass
class Group:
    text: str  # the newest member's text stands for the group
    items: list[QueueItem] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def latest(self) -> datetime:
        return max(item.created_at for item in self.items)

    def as_dict(self) -> dict[str, Any]:
        reasons = sorted({r for item in self.items for r in item.reasons})
        newest = max(self.items, key=lambda item: item.created_at)
        return {
            "text": self.text,
            "count": self.count,
            "latest": self.latest.isoformat(),
            "reasons": reasons,
            "intent": newest.intent,
            "confidence": newest.confidence,
            "language": newest.language,
            "keys": [item.key for item in self.items],
            "examples": sorted({item.text for item in self.items})[:5],
        }


def normalise(text: str) -> str:
    """Compare form: NFKC, lower case, no punctuation or spaces."""
    return _PUNCTUATION.sub("", unicodedata.normalize("NFKC", text).lower())


def bigrams(text: str) -> frozenset[str]:
    if len(text) < 2:
        return frozenset({text}) if text else frozenset()
    return frozenset(text[i : i + 2] for i in range(len(text) - 1))


def group_items(items: list[QueueItem], threshold: float = SIMILARITY) -> list[Group]:
    """Greedy single pass, newest first: an item joins the most similar group at `threshold` or more.

    Candidates come from an inverted index on bigrams, so the cost grows with the number of similar groups,
    not with all groups (100,000 turns stay well under a second).
    """
    groups: list[Group] = []
    grams_of: list[frozenset[str]] = []
    exact: dict[str, int] = {}
    index: dict[str, list[int]] = defaultdict(list)
    for item in sorted(items, key=lambda i: i.created_at, reverse=True):
        norm = normalise(item.text)
        if norm in exact:
            groups[exact[norm]].items.append(item)
            continue
        grams = bigrams(norm)
        shared: dict[int, int] = defaultdict(int)
        for gram in grams:
            for group_index in index.get(gram, ()):
                shared[group_index] += 1
        best, best_score = -1, 0.0
        for group_index, overlap in shared.items():
            score = overlap / (len(grams) + len(grams_of[group_index]) - overlap)
            if score > best_score:
                best, best_score = group_index, score
        if best >= 0 and best_score >= threshold:
            groups[best].items.append(item)
            exact[norm] = best
            continue
        exact[norm] = len(groups)
        for gram in grams:
            index[gram].append(len(groups))
        groups.append(Group(item.text, [item]))
        grams_of.append(grams)
    return groups


def order_groups(groups: list[Group], sort: str = "frequent") -> list[Group]:
    """"frequent": most members first, newest breaking ties; "newest": latest message first."""
    if sort == "newest":
        return sorted(groups, key=lambda g: (g.latest, g.count), reverse=True)
    return sorted(groups, key=lambda g: (g.count, g.latest), reverse=True)


class ReviewQueue:
    def __init__(self, db: Database, confidence_threshold: float) -> None:
        self.db = db
        self.threshold = confidence_threshold

    async def items(self) -> list[QueueItem]:
        """Every unsure turn not yet handled, masked."""
        intent, confidence = _intent(), _confidence()
        unsure = or_(confidence < self.threshold, intent.in_(FALLBACK_INTENTS), intent == HANDOFF_INTENT)
        query = (
            select(Message.id, Message.conversation_id, Message.text, Message.created_at, Message.language,
                   intent, confidence, _status())
            .where(Message.direction == "in", Message.turn_state == "done", unsure)
            .order_by(Message.id.desc())
            .limit(SCAN_LIMIT)
        )  # fmt: skip
        async with self.db.sessions() as session:
            rows = (await session.execute(query)).all()
            decided = set((await session.execute(select(ReviewDecision.key))).scalars())
            feedback = (
                await session.execute(
                    select(FeedbackRow.id, FeedbackRow.query, FeedbackRow.created_at, FeedbackRow.article_id)
                    .where(FeedbackRow.helpful.is_(False), FeedbackRow.query.is_not(None))
                    .order_by(FeedbackRow.id.desc())
                    .limit(SCAN_LIMIT)
                )
            ).all()
            handoffs = [row for row in rows if row.intent == HANDOFF_INTENT]
            before_handoff = await self._messages_before(session, handoffs)
        items: dict[str, QueueItem] = {}
        for row in rows:
            if row.intent == HANDOFF_INTENT and (row.confidence is None or row.confidence >= self.threshold):
                continue  # a clear request for a person is not a misunderstanding; the message before it may be
            reasons = set()
            if row.intent in FALLBACK_INTENTS:
                reasons.add("fallback")
            if row.confidence is not None and row.confidence < self.threshold:
                reasons.add("low_confidence")
            if row.status == "pending":
                reasons.add("handoff")  # not understood again: the conversation went to a person at this turn
            items[f"m:{row.id}"] = _item(f"m:{row.id}", row.text, row.created_at, reasons, row.intent,
                                         row.confidence, row.language)
        for row in before_handoff:
            key = f"m:{row.id}"
            if key in items:
                items[key].reasons.add("handoff")
            else:
                items[key] = _item(key, row.text, row.created_at, {"handoff"}, row.intent, row.confidence,
                                   row.language)
        for fb in feedback:
            key = f"f:{fb.id}"
            items[key] = _item(key, fb.query, fb.created_at, {"kb_thumbs_down"}, None, None, None)
            items[key].intent = fb.article_id  # which article was not good enough (shown to staff)
        return [item for key, item in items.items() if key not in decided and item.text]

    async def groups(self, sort: str = "frequent", limit: int = 100) -> tuple[list[dict[str, Any]], int]:
        """The queue as staff see it: (the first `limit` groups, how many unsure messages are waiting)."""
        items = await self.items()
        groups = order_groups(group_items(items), sort)
        return [g.as_dict() for g in groups[:limit]], len(items)

    async def decide(self, keys: list[str], action: str, by: str, text: str | None = None,
                     intent: str | None = None, article_id: str | None = None) -> int:
        """Record the decision for every key of a group; returns how many were new."""
        async with self.db.sessions() as session, session.begin():
            existing = set(
                (await session.execute(select(ReviewDecision.key).where(ReviewDecision.key.in_(keys)))).scalars()
            )
            fresh = [k for k in dict.fromkeys(keys) if k not in existing]
            session.add_all(
                ReviewDecision(key=k, action=action, intent=intent, article_id=article_id, text=text, decided_by=by)
                for k in fresh
            )
        return len(fresh)

    async def labelled(self) -> list[tuple[str, str]]:
        """(text, intent) of every queue item staff added as an example: real citizen wording for evaluation."""
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(ReviewDecision.text, ReviewDecision.intent).where(ReviewDecision.action == "example")
            )
            return sorted({(t, i) for t, i in rows.all() if t and i})

    @staticmethod
    async def _messages_before(session: Any, handoffs: list[Any]) -> list[Any]:
        """For each handoff request, the citizen's message just before it in the same conversation."""
        found = []
        for handoff in handoffs[:2000]:
            row = (
                await session.execute(
                    select(Message.id, Message.text, Message.created_at, Message.language,
                           _intent(), _confidence())
                    .where(Message.conversation_id == handoff.conversation_id, Message.direction == "in",
                           Message.id < handoff.id)
                    .order_by(Message.id.desc())
                    .limit(1)
                )
            ).first()  # fmt: skip
            if row is not None and row.intent != HANDOFF_INTENT:
                found.append(row)
        return found


def _intent() -> ColumnElement[str]:
    return Message.payload[("meta", "intent")].as_string().label("intent")


def _confidence() -> ColumnElement[float]:
    return Message.payload[("meta", "confidence")].as_float().label("confidence")


def _status() -> ColumnElement[str]:
    return Message.payload[("meta", "conversation_status")].as_string().label("status")


def _item(key: str, text: str | None, created_at: datetime | None, reasons: set[str], intent: str | None,
          confidence: float | None, language: str | None) -> QueueItem:
    return QueueItem(key, mask_personal_data(text or ""), utc(created_at or utc_now()), reasons, intent,
                     round(confidence, 3) if confidence is not None else None, language)
