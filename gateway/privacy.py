"""Personal data masked before a citizen's words are shown to content staff or become training examples:
Chinese resident ID-card numbers, e-mail addresses and phone numbers (mobile, landline, with or without +86)."""

from __future__ import annotations

import re

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
