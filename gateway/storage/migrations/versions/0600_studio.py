"""studio: review-queue decisions, training jobs, model activations

Revision ID: 0600
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0600"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("studio",)
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "studio_review_decisions",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("intent", sa.String(64)),
        sa.Column("article_id", sa.String(64)),
        sa.Column("text", sa.Text),
        sa.Column("decided_by", sa.String(128)),
        sa.Column("decided_at", TS, nullable=False),
    )
    op.create_table(
        "studio_training_jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("log", sa.Text, nullable=False),
        sa.Column("model_path", sa.Text),
        sa.Column("evaluation", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("started_by", sa.String(128)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS),
    )
    op.create_table(
        "studio_activations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_path", sa.Text, nullable=False),
        sa.Column("previous_model_path", sa.Text),
        sa.Column("job_id", sa.Integer),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("activated_by", sa.String(128)),
        sa.Column("activated_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("studio_activations")
    op.drop_table("studio_training_jobs")
    op.drop_table("studio_review_decisions")
