"""Downgrading the normalized message for channels that cannot show all of it, shared by every connector (and the
reply back: the pipeline maps "2" to the second button on channels without buttons).

- Buttons become a numbered list where the channel has none (`numbered_list`), and a reply of "1", "一", "①" or
  the button's title maps back to that button's payload (`match_reply`).
- An image becomes a link where it cannot be shown (`image_as_link`).
- Long text is split on sentence boundaries where the channel limits length (`split_text`), measured by a function
  of the channel's own (characters, UTF-16 units, SMS segments), never inside a character.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

from gateway.message import Button, OutboundMessage

# ---- buttons → numbered list, and the reply back -------------------------------------------------------------------

CHINESE_NUMERALS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
CIRCLED = {chr(0x2460 + i): i + 1 for i in range(20)}  # ① … ⑳
_NUMBER_REPLY = re.compile(
    r"^\s*(?:第\s*)?([0-9]{1,2}|[一二三四五六七八九十]|[\u2460-\u2473])\s*(?:个|项)?[.。、)）]?\s*$"
)

LIST_PROMPT = {"zh": "请回复序号：", "en": "Reply with a number:"}


def numbered_list(buttons: Sequence[Button], language: str = "zh") -> str:
    """`1. title` lines, with a one-line prompt, for a channel without buttons."""
    if not buttons:
        return ""
    prompt = LIST_PROMPT.get(language, LIST_PROMPT["zh"])
    lines = [f"{i}. {b.title}" for i, b in enumerate(buttons, start=1)]
    return "\n".join([prompt, *lines])


def _normalise(text: str) -> str:
    # Full-width digits and letters ("２") become ASCII; case and surrounding punctuation do not matter.
    return unicodedata.normalize("NFKC", text).strip().strip("。.!！?？").casefold()


def match_reply(text: str, buttons: Sequence[Button]) -> str | None:
    """The payload of the button this reply chooses ("2", "二", "②", "第2个", or the title), or None."""
    if not buttons or not text:
        return None
    plain = _normalise(text)
    found = _NUMBER_REPLY.match(plain) or _NUMBER_REPLY.match(text.strip())
    if found:
        token = found.group(1)
        number = int(token) if token.isdigit() else CHINESE_NUMERALS.get(token) or CIRCLED.get(token)
        if number and 1 <= number <= len(buttons):
            return buttons[number - 1].payload
        return None
    for button in buttons:
        if plain and plain == _normalise(button.title):
            return button.payload
    return None


# ---- images → links -----------------------------------------------------------------------------------------------

IMAGE_LABEL = {"zh": "图片", "en": "Image"}


def image_as_link(url: str, language: str = "zh") -> str:
    return f"{IMAGE_LABEL.get(language, IMAGE_LABEL['zh'])}: {url}"


def plain_text(outbound: OutboundMessage, language: str = "zh", *, buttons: bool = False, images: bool = False
               ) -> str:
    """The message as one text, downgrading buttons (numbered list) and images (a link) the channel cannot show."""
    parts = [outbound.text or ""]
    if outbound.buttons and not buttons:
        parts.append(numbered_list(outbound.buttons, language))
    if outbound.image and not images:
        parts.append(image_as_link(outbound.image, language))
    if outbound.custom and not (outbound.text or outbound.buttons or outbound.image):
        # A custom payload the channel cannot show: its text, if any, rather than nothing.
        text = outbound.custom.get("text") if isinstance(outbound.custom, dict) else None
        if isinstance(text, str):
            parts.append(text)
    return "\n".join(p for p in parts if p).strip()


# ---- splitting long text --------------------------------------------------------------------------------------------

# A sentence ends after these (Chinese full stops need no space after them).
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;…\n])|(?<=[.](?=\s))")


def sentences(text: str) -> list[str]:
    """Pieces that each end on a sentence boundary (the separators stay with the piece before them)."""
    pieces = [p for p in _SENTENCE_END.split(text) if p]
    return pieces or [text]


def split_text(text: str, limit: int, measure: Callable[[str], int] = len) -> list[str]:
    """Split `text` into parts with `measure(part) <= limit`: on sentence boundaries, then words, then characters.

    Never inside a character (Python strings are code points; `measure` decides what a unit costs).
    """
    if limit <= 0:
        raise ValueError("limit must be positive")
    if measure(text) <= limit:
        return [text] if text else []
    parts: list[str] = []
    current = ""
    for piece in _pieces_within(text, limit, measure):
        candidate = current + piece
        if current and measure(candidate) > limit:
            parts.append(current)
            current = piece
        else:
            current = candidate
    if current:
        parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _pieces_within(text: str, limit: int, measure: Callable[[str], int]) -> list[str]:
    out: list[str] = []
    for sentence in sentences(text):
        if measure(sentence) <= limit:
            out.append(sentence)
            continue
        for word in re.split(r"(?<=\s)", sentence):  # words keep their trailing space
            if measure(word) <= limit:
                out.append(word)
                continue
            chunk = ""
            for char in word:  # a very long word (or unspaced Chinese): by characters
                if chunk and measure(chunk + char) > limit:
                    out.append(chunk)
                    chunk = ""
                chunk += char
            if chunk:
                out.append(chunk)
    return out
