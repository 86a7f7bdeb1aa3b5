"""knowledge-base articles and their versions

Revision ID: 0200
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0200"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("knowledge_base",)
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "kb_articles",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("title_zh", sa.Text, nullable=False),
        sa.Column("title_en", sa.Text, nullable=False),
        sa.Column("body_zh", sa.Text, nullable=False),
        sa.Column("body_en", sa.Text, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("questions", sa.JSON, nullable=False),
        sa.Column("published", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("source_hash", sa.String(64)),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(128)),
    )
    op.create_index("ix_kb_articles_department", "kb_articles", ["department"])
    op.create_table(
        "kb_article_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("article_id", sa.String(64), sa.ForeignKey("kb_articles.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("snapshot", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("author", sa.String(128)),
        sa.Column("note", sa.Text),
        sa.UniqueConstraint("article_id", "version", name="uq_kb_article_version"),
    )
    op.create_table(
        "kb_feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("article_id", sa.String(64), nullable=False),
        sa.Column("conversation_id", sa.String(32)),
        sa.Column("helpful", sa.Boolean, nullable=False),
        sa.Column("query", sa.Text),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_kb_feedback_article", "kb_feedback", ["article_id", "created_at"])


def downgrade() -> None:
    op.drop_table("kb_feedback")
    op.drop_table("kb_article_versions")
    op.drop_table("kb_articles")
