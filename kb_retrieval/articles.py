"""KB articles: the dataclass the index works on and the JSON Lines loader (the format of the shared test KB)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_REQUIRED = ("id", "department", "title_zh", "title_en", "body_zh", "body_en")


@dataclass(frozen=True)
class Article:
    id: str
    department: str
    title_zh: str
    title_en: str
    body_zh: str
    body_en: str
    tags: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()
    published: bool = True

    def title(self, lang: str) -> str:
        return self.title_en if lang == "en" and self.title_en else self.title_zh or self.title_en

    def has_language(self, lang: str) -> bool:
        return bool(self.title_en or self.body_en) if lang == "en" else bool(self.title_zh or self.body_zh)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tags"] = list(self.tags)
        d["questions"] = list(self.questions)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Article:
        missing = [k for k in _REQUIRED if not isinstance(data.get(k), str)]
        if missing:
            raise ValueError(f"missing or non-string fields: {', '.join(missing)}")
        if not data["id"].strip():
            raise ValueError("empty id")
        tags = data.get("tags") or []
        questions = data.get("questions") or []
        if not all(isinstance(t, str) for t in tags) or not all(isinstance(q, str) for q in questions):
            raise ValueError("tags and questions must be lists of strings")
        return cls(
            id=data["id"],
            department=data["department"],
            title_zh=data["title_zh"],
            title_en=data["title_en"],
            body_zh=data["body_zh"],
            body_en=data["body_en"],
            tags=tuple(tags),
            questions=tuple(questions),
            published=bool(data.get("published", True)),
        )


class ArticleLoadError(ValueError):
    """A KB file line that is not a valid article; carries the file and the 1-based line number."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


def load_articles(path: Path) -> list[Article]:
    """Read a JSON Lines KB file; blank lines are skipped, a bad line raises ArticleLoadError with its number."""
    articles: list[Article] = []
    seen: set[str] = set()
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                article = Article.from_dict(data)
            except (json.JSONDecodeError, ValueError) as exc:
                raise ArticleLoadError(Path(path), lineno, str(exc)) from exc
            if article.id in seen:
                raise ArticleLoadError(Path(path), lineno, f"duplicate id {article.id}")
            seen.add(article.id)
            articles.append(article)
    return articles
