"""What the index searches: each article cut into normalised passages (titles, body chunks, tags, sample questions).

An article's score is the best score of its passages, so a passage is the unit both retrievers index and rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kb_retrieval.articles import Article
from kb_retrieval.config import KBConfig
from kb_retrieval.text import chunk_body, detect_language, normalize


@dataclass(frozen=True)
class Passage:
    article_id: str
    field: str  # title | body | tags | question
    lang: str
    text: str


def article_passages(article: Article, config: KBConfig) -> list[Passage]:
    """Passages of one article: titles, body chunks, tags and each sample question (all normalised)."""
    out: list[Passage] = []
    for lang in ("zh", "en"):
        title = article.title_zh if lang == "zh" else article.title_en
        if title.strip():
            out.append(Passage(article.id, "title", lang, normalize(title)))
    for lang in ("zh", "en"):
        body = article.body_zh if lang == "zh" else article.body_en
        for chunk in chunk_body(body, lang, config.zh_chunk_chars, config.en_chunk_words):
            out.append(Passage(article.id, "body", lang, normalize(chunk)))
    if article.tags:
        out.append(Passage(article.id, "tags", "zh", normalize(" ".join(article.tags))))
    for q in article.questions:
        if q.strip():
            out.append(Passage(article.id, "question", detect_language(q), normalize(q)))
    return out


def english_rows(passages: Sequence[Passage]) -> np.ndarray:
    """Positions of the English passages (the ones the English model also embeds), in order."""
    return np.fromiter((i for i, p in enumerate(passages) if p.lang == "en"), dtype=np.int64)
