"""What citizens are likely to say, by language, for a speech recogniser's hints: the knowledge base's article
titles first, then the short examples of the bot's intents (training_data/data/nlu)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog
import yaml

from kb_retrieval.service import KnowledgeService

log = structlog.get_logger(__name__)

# Small talk and what the bot declines teach a recogniser nothing about the city's services.
SKIPPED_INTENTS = frozenset({"out_of_scope", "bot_challenge", "greet", "goodbye", "thank", "chitchat"})
_ANNOTATION = re.compile(r"\[([^\]]+)\]\([^)]*\)|\[([^\]]+)\]\{[^}]*\}")  # Rasa's [text](entity) / [text]{...}


def _short(example: str, language: str) -> bool:
    if language == "en":
        return example.isascii() and 1 <= len(example.split()) <= 5
    return not example.isascii() and 2 <= len(example) <= 12


def intent_examples(nlu_dir: Path) -> dict[str, list[str]]:
    """Short examples of the service intents, by language (the script decides: Chinese characters are zh)."""
    found: dict[str, list[str]] = {"zh": [], "en": []}
    for path in sorted(nlu_dir.glob("*.yml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            log.warning("phrases.unreadable", path=str(path), error=repr(exc))
            continue
        for block in data.get("nlu") or []:
            if not isinstance(block, dict) or not isinstance(block.get("examples"), str):
                continue
            if block.get("intent") in SKIPPED_INTENTS:
                continue
            for line in block["examples"].splitlines():
                example = _ANNOTATION.sub(lambda m: m.group(1) or m.group(2), line.strip().removeprefix("- ")).strip()
                for language in ("zh", "en"):
                    if example and _short(example, language):
                        found[language].append(example)
    return found


def speech_phrases(knowledge: Callable[[], KnowledgeService | None], nlu_dir: Path
                   ) -> Callable[[str], Sequence[str]]:
    """Phrases for one language: the KB's titles (as they are now) and the intents' short examples (read once)."""
    examples: dict[str, list[str]] | None = None

    def phrases(language: str) -> Sequence[str]:
        nonlocal examples
        if examples is None:
            examples = intent_examples(nlu_dir)
        service = knowledge()
        titles = [a.title(language) for a in service.index.articles()] if service is not None and service.ready else []
        return [*titles, *examples.get(language, [])]

    return phrases
