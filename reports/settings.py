"""The reports' settings (environment variables, combined into the app's Settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class ReportSettings(BaseSettings):
    """How the figures are defined where the centre decides (docs/metrics.md)."""

    report_response_working_hours: float = Field(
        8.0, gt=0, le=200, description="A work order counts as responded to in time when a department took it up "
        "(or settled it) within this much working time after filing (8 = one office day)."
    )
