"""The work orders' settings (environment variables, combined into the app's Settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from crm_adapter.duplicates import DEFAULT_THRESHOLD
from crm_adapter.routing import DEFAULT_ROUTING_PATH
from crm_adapter.sla import DEFAULT_SLA_PATH


class WorkOrderSettings(BaseSettings):
    """Where work orders live, how they are routed and timed, and the Request Tracker backend."""

    crm_backend: str = Field(
        "embedded", description="Where work orders live: embedded (our database) or rt (Request Tracker 5)."
    )
    crm_routing_path: Path = Field(DEFAULT_ROUTING_PATH, description="Routing rules and the list of departments.")
    crm_sla_path: Path = Field(
        DEFAULT_SLA_PATH,
        description="Service commitments, office hours and holiday additions for the working-day clock.",
    )
    work_order_prefix: str = Field("BJ", description="City prefix of work-order numbers (BJ-20261123-0007).")
    crm_sla_check_seconds: float = Field(60.0, description="How often due and overdue work orders are looked for.")
    crm_duplicate_threshold: float = Field(
        DEFAULT_THRESHOLD, description="Text similarity from which a repeated report is linked to the open order."
    )
    rt_url: str = Field("", description="Request Tracker base URL (with CRM_BACKEND=rt).")
    rt_token: str = Field("", description="Request Tracker auth token (Authorization: token ...).")
    rt_queue_prefix: str = Field("", description="RT queue name = this prefix + the department code.")
    rt_poll_seconds: float = Field(30.0, description="How often RT's transactions are polled for status changes.")
