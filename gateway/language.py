"""Telling Chinese from English per message, and Traditional Chinese normalised to Simplified for the engine."""

from __future__ import annotations

import re
from typing import Literal

import opencc

Language = Literal["zh", "en"]

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


class LanguageTagger:
    """Built once per app (OpenCC's converter is not free to build)."""

    def __init__(self) -> None:
        self._t2s = opencc.OpenCC("t2s")

    def detect(self, text: str, default: Language = "zh") -> Language:
        """zh when the message has Chinese characters (code-mixed counts as zh), en when it has Latin words only."""
        if _CJK.search(text):
            return "zh"
        if _LATIN_WORD.search(text):
            return "en"
        return default  # digits, emoji, "1": keep the conversation's language

    def to_simplified(self, text: str) -> str:
        return str(self._t2s.convert(text)) if _CJK.search(text) else text
