"""Time, one way everywhere: every moment is stored and compared in UTC and shown in the centre's time zone.

SQLite hands back naive datetimes (we always wrote them as UTC); PostgreSQL aware ones. `utc` makes either an
aware UTC moment, so nothing compares naive with aware.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc(moment: datetime) -> datetime:
    """Aware UTC: a naive moment is taken to be UTC (how we store them), an aware one is converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc(moment)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 with its offset (how the APIs and pages show a moment), or None."""
    return None if moment is None else utc(moment).isoformat()
