"""Which language (zh or en) a turn is in: the gateway's tag when present, else a guess from the text."""

from __future__ import annotations

import re
from typing import Any

SUPPORTED_LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"

# CJK unified ideographs (with extension A) and CJK punctuation / full-width forms: any of them means Chinese,
# Traditional included (the gateway normalises it to Simplified, but the guess must not depend on that).
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


def detect_language(text: str | None) -> str:
    """zh when the text has any CJK character, en when it has Latin letters only, zh (the default) otherwise."""
    if not text:
        return DEFAULT_LANGUAGE
    if _CJK.search(text):
        return "zh"
    if re.search(r"[A-Za-z]", text):
        return "en"
    return DEFAULT_LANGUAGE


def language_of_message(latest_message: dict[str, Any] | None) -> str:
    """The language of a Rasa `latest_message`: its metadata's `language` tag, else detected from its text."""
    message = latest_message or {}
    metadata = message.get("metadata") or {}
    tagged = metadata.get("language") if isinstance(metadata, dict) else None
    if isinstance(tagged, str):
        tag = tagged.strip().lower().split("-")[0]  # "zh-CN", "en-GB" -> zh, en
        if tag in SUPPORTED_LANGUAGES:
            return tag
    text = message.get("text")
    return detect_language(text if isinstance(text, str) else None)
