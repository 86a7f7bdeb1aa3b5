"""The studio's tables: what staff decided about review-queue items, training jobs, and which model went live when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.clock import utc_now
from gateway.storage import Base


class ReviewDecision(Base):
    """One review-queue item handled: added as an example, turned into a KB article, or dismissed."""

    __tablename__ = "studio_review_decisions"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # m:<message id> or f:<kb feedback id>
    action: Mapped[str] = mapped_column(String(16))  # example, article, dismissed
    intent: Mapped[str | None] = mapped_column(String(64))
    article_id: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)  # masked, as staff saw it
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class TrainingJob(Base):
    """A `rasa train` of the studio's project, then its evaluation against the live model."""

    __tablename__ = "studio_training_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # queued → validating → training → evaluating → ready, or failed; "ready" models can be activated.
    state: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1, from Rasa's epoch progress bars
    log: Mapped[str] = mapped_column(Text, default="")  # the tail of Rasa's output
    model_path: Mapped[str | None] = mapped_column(Text)
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    started_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Activation(Base):
    """A model put live on the engine (activate or rollback); the newest row is the live one."""

    __tablename__ = "studio_activations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_path: Mapped[str] = mapped_column(Text)
    previous_model_path: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # activate, rollback
    activated_by: Mapped[str | None] = mapped_column(String(128))
    activated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
