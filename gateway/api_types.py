"""Types of API inputs that every feature's routes share: a number that names a database row must fit the
database's 64-bit integers (a larger one made SQLite raise instead of answering 404)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import Field

MAX_ROW_ID = 2**63 - 1

RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="A row's number")]
RowIdField = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]


def ascii_int(text: str) -> int | None:
    """The number `text` spells in ASCII digits, else None ("²" and "٣" are digits to str.isdigit, not to int)."""
    return int(text) if text.isascii() and text.isdigit() else None
