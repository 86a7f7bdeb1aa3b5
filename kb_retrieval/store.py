"""Articles in the gateway's database: imported from `KB_PATH`, edited there by staff afterwards, every change a
version that can be restored. The search index follows the store."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gateway.clock import utc_now
from gateway.storage import Base, Database
from kb_retrieval.articles import Article


class ArticleRow(Base):
    __tablename__ = "kb_articles"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    department: Mapped[str] = mapped_column(String(64), index=True)
    title_zh: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str] = mapped_column(Text)
    body_zh: Mapped[str] = mapped_column(Text)
    body_en: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    questions: Mapped[list[str]] = mapped_column(JSON, default=list)
    published: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    source: Mapped[str] = mapped_column(String(16), default="staff")  # "file" until staff edit it
    source_hash: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_by: Mapped[str | None] = mapped_column(String(128))

    def to_article(self) -> Article:
        return Article(
            id=self.id, department=self.department, title_zh=self.title_zh, title_en=self.title_en,
            body_zh=self.body_zh, body_en=self.body_en, tags=tuple(self.tags or ()),
            questions=tuple(self.questions or ()), published=self.published,
        )


class ArticleVersionRow(Base):
    __tablename__ = "kb_article_versions"
    __table_args__ = (UniqueConstraint("article_id", "version", name="uq_kb_article_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[str] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    author: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)


class FeedbackRow(Base):
    __tablename__ = "kb_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[str | None] = mapped_column(String(32))
    helpful: Mapped[bool] = mapped_column(Boolean)
    query: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


CONTENT_FIELDS = ("department", "title_zh", "title_en", "body_zh", "body_en", "tags", "questions", "published")


def content_hash(article: Article) -> str:
    data = {k: v for k, v in article.to_dict().items() if k != "id"}
    return hashlib.sha256(json.dumps(data, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    kept_staff_edits: int = 0
    unpublished: int = 0


class ArticleNotFound(LookupError):
    pass


class ArticleStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def import_file_articles(self, articles: list[Article]) -> ImportReport:
        """Bring the database in line with the KB file, without overwriting what staff edited."""
        report = ImportReport()
        by_id = {a.id: a for a in articles}
        async with self.db.sessions() as session, session.begin():
            existing = {row.id: row for row in (await session.execute(select(ArticleRow))).scalars()}
            for article in articles:
                digest = content_hash(article)
                row = existing.get(article.id)
                if row is None:
                    row = ArticleRow(id=article.id, source="file", source_hash=digest, version=0)
                    session.add(row)
                    self._apply(row, article)
                    await self._new_version(session, row, "import", "imported from the KB file")
                    report.added += 1
                elif row.source == "file" and row.source_hash != digest:
                    self._apply(row, article)
                    row.source_hash = digest
                    await self._new_version(session, row, "import", "the KB file changed")
                    report.updated += 1
                elif row.source != "file" and row.source_hash != digest:
                    report.kept_staff_edits += 1
            for row in existing.values():
                if row.source == "file" and row.id not in by_id and row.published:
                    row.published = False
                    await self._new_version(session, row, "import", "no longer in the KB file")
                    report.unpublished += 1
        return report

    async def all(self) -> list[Article]:
        async with self.db.sessions() as session:
            rows = (await session.execute(select(ArticleRow).order_by(ArticleRow.id))).scalars()
            return [row.to_article() for row in rows]

    async def listing(self) -> list[tuple[Article, int, datetime]]:
        """Every article with its version and last change, by id."""
        async with self.db.sessions() as session:
            rows = (await session.execute(select(ArticleRow).order_by(ArticleRow.id))).scalars()
            return [(row.to_article(), row.version, row.updated_at) for row in rows]

    async def get(self, article_id: str) -> tuple[Article, int, datetime]:
        async with self.db.sessions() as session:
            row = await session.get(ArticleRow, article_id)
            if row is None:
                raise ArticleNotFound(article_id)
            return row.to_article(), row.version, row.updated_at

    async def save(self, article: Article, author: str, note: str | None = None, create: bool = False) -> int:
        """Create or replace an article; returns its new version number."""
        async with self.db.sessions() as session, session.begin():
            row = await session.get(ArticleRow, article.id)
            if create and row is not None:
                raise FileExistsError(article.id)
            if not create and row is None:
                raise ArticleNotFound(article.id)
            if row is None:
                row = ArticleRow(id=article.id, version=0)
                session.add(row)
            self._apply(row, article)
            row.source = "staff"
            row.updated_by = author
            return await self._new_version(session, row, author, note)

    async def set_published(self, article_id: str, published: bool, author: str) -> int:
        article, _, _ = await self.get(article_id)
        data = article.to_dict() | {"published": published}
        return await self.save(Article.from_dict(data), author, "published" if published else "unpublished")

    async def versions(self, article_id: str) -> list[ArticleVersionRow]:
        async with self.db.sessions() as session:
            if await session.get(ArticleRow, article_id) is None:
                raise ArticleNotFound(article_id)
            rows = await session.execute(
                select(ArticleVersionRow)
                .where(ArticleVersionRow.article_id == article_id)
                .order_by(ArticleVersionRow.version.desc())
            )
            return list(rows.scalars())

    async def restore(self, article_id: str, version: int, author: str) -> tuple[Article, int]:
        async with self.db.sessions() as session:
            snapshot = (
                await session.execute(
                    select(ArticleVersionRow.snapshot).where(
                        ArticleVersionRow.article_id == article_id, ArticleVersionRow.version == version
                    )
                )
            ).scalar_one_or_none()
        if snapshot is None:
            raise ArticleNotFound(f"{article_id} v{version}")
        article = Article.from_dict({**snapshot, "id": article_id})
        new_version = await self.save(article, author, f"restored version {version}")
        return article, new_version

    async def record_feedback(self, article_id: str, helpful: bool, conversation_id: str | None,
                              query: str | None) -> None:
        async with self.db.sessions() as session, session.begin():
            session.add(FeedbackRow(article_id=article_id, helpful=helpful, conversation_id=conversation_id,
                                    query=query))

    @staticmethod
    def _apply(row: ArticleRow, article: Article) -> None:
        row.department = article.department
        row.title_zh, row.title_en = article.title_zh, article.title_en
        row.body_zh, row.body_en = article.body_zh, article.body_en
        row.tags, row.questions = list(article.tags), list(article.questions)
        row.published = article.published
        row.updated_at = utc_now()

    @staticmethod
    async def _new_version(session: AsyncSession, row: ArticleRow, author: str, note: str | None) -> int:
        row.version = (row.version or 0) + 1
        snapshot = {k: getattr(row, k) for k in CONTENT_FIELDS}
        snapshot["tags"], snapshot["questions"] = list(row.tags or ()), list(row.questions or ())
        session.add(ArticleVersionRow(article_id=row.id, version=row.version, snapshot=snapshot, author=author,
                                      note=note))
        await session.flush()
        return row.version
