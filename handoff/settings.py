"""The handoff's and the agent inbox's settings (environment variables, combined into the app's Settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class InboxSettings(BaseSettings):
    """When people answer, where handoffs wait, and the first admin."""

    service_hours: str = Field(
        "mon-fri 08:30-17:30; sat 09:00-12:00",
        description="When people answer: a weekly calendar or 24x7; Chinese public holidays and 调休 days apply.",
    )
    handoff_default_department: str = Field(
        "hotline", description="The queue a handoff waits in when nothing routes it elsewhere."
    )
    handoff_wait_notice_seconds: float = Field(
        300.0, gt=0, description="After this long waiting for a person, the citizen is told again where they stand."
    )
    handoff_fallback_confidence: float = Field(
        0.3, ge=0, le=1, description="Below this intent confidence a turn is not understood (two in a row hand over)."
    )
    inbox_admin_email: str = Field("", description="E-mail of the first inbox admin, created on first start.")
    inbox_admin_password: str = Field("", description="Password of that first admin (change it after logging in).")
    inbox_session_hours: float = Field(12.0, gt=0, description="How long an inbox login lasts.")
