"""Personal data masked wherever it must not go: before a citizen's words are shown to content staff or become
training examples (`mask_personal_data`), and from every log line (`LogScrubber`, a structlog processor that also
hides the installation's secrets). What is masked: Chinese resident ID-card numbers, e-mail addresses and phone
numbers (mobile and landline, with or without +86, and international E.164 numbers in logs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from typing import Any

# 18 digits (the last may be X) or the old 15-digit form, not inside a longer run of digits.
_DATE = r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
ID_CARD = re.compile(
    rf"(?<![0-9A-Za-z])(?:[1-9]\d{{5}}(?:18|19|20)\d{{2}}{_DATE}\d{{3}}[0-9Xx]|[1-9]\d{{7}}{_DATE}\d{{3}})(?![0-9A-Za-z])"
)
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Mobile (1[3-9]x xxxx xxxx, spaces or dashes allowed), optionally +86/0086; landline 0xx(x)-xxxxxxx(x).
MOBILE = re.compile(r"(?<!\d)(?:(?:\+|00)86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}(?!\d)")
LANDLINE = re.compile(r"(?<!\d)(?:\(?0\d{2,3}\)?[\s-]?)\d{7,8}(?!\d)")

ID_CARD_MASK = "[身份证号]"
EMAIL_MASK = "[email]"
PHONE_MASK = "[电话]"


def mask_personal_data(text: str) -> str:
    """The text with ID-card numbers, e-mail addresses and phone numbers replaced by placeholders."""
    text = ID_CARD.sub(ID_CARD_MASK, text)  # first: an ID number contains runs that look like phone numbers
    text = EMAIL.sub(EMAIL_MASK, text)
    text = MOBILE.sub(PHONE_MASK, text)
    return LANDLINE.sub(PHONE_MASK, text)


# In logs, any international number too (+ and 8-15 digits: Twilio's From, a Telegram shared contact).
E164 = re.compile(r"(?<![\w+])\+\d{8,15}(?!\d)")
SECRET_MASK = "[secret]"
_MAX_DEPTH = 4


class LogScrubber:
    """A structlog processor: every string in the event (nested ones too) without ID-card numbers, e-mail
    addresses, phone numbers or any of the installation's secrets (tokens, passwords, signing keys)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Short values would mask ordinary words; real secrets are long.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True)

    def scrub(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, SECRET_MASK)
            return mask_personal_data(E164.sub(PHONE_MASK, value))
        if depth >= _MAX_DEPTH:
            return value
        if isinstance(value, dict):
            return {k: self.scrub(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub(v, depth + 1) for v in value)
        return value

    def __call__(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():
            if isinstance(value, str | dict | list | tuple):
                event_dict[key] = self.scrub(value)
        return event_dict
