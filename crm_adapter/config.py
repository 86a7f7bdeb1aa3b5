"""The CRM adapter's settings, read from the gateway's Settings (with these defaults until the fields exist
there).

| setting | env | default | what |
| crm_backend | CRM_BACKEND | embedded | where work orders live: embedded (our database) or rt (Request
Tracker 5) |
| crm_routing_path | CRM_ROUTING_PATH | crm_adapter/routing.yml | routing rules and the department list |
| crm_sla_path | CRM_SLA_PATH | crm_adapter/sla.yml | service commitments, office hours and holiday additions
|
| work_order_prefix | WORK_ORDER_PREFIX | BJ | the city prefix of order numbers (BJ-20261123-0007) |
| crm_sla_check_seconds | CRM_SLA_CHECK_SECONDS | 60 | how often the SLA watcher looks for due and overdue
orders |
| crm_duplicate_threshold | CRM_DUPLICATE_THRESHOLD | 0.4 | bigram similarity from which a repeat report is
linked |
| rt_url | RT_URL | "" | Request Tracker's base URL |
| rt_token | RT_TOKEN | "" | an RT auth token (Authorization: token …) |
| rt_queue_prefix | RT_QUEUE_PREFIX | "" | RT queue name = prefix + department code |
| rt_poll_seconds | RT_POLL_SECONDS | 30 | how often RT's transactions are polled for changes |
| admin_token | ADMIN_TOKEN | "" | bearer token for /api/work-orders until roles exist; empty refuses all |
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm_adapter.duplicates import DEFAULT_THRESHOLD
from crm_adapter.routing import DEFAULT_ROUTING_PATH
from crm_adapter.sla import DEFAULT_SLA_PATH


@dataclass(frozen=True)
class CrmConfig:
    backend: str = "embedded"
    routing_path: Path = DEFAULT_ROUTING_PATH
    sla_path: Path = DEFAULT_SLA_PATH
    number_prefix: str = "BJ"
    sla_check_seconds: float = 60.0
    duplicate_threshold: float = DEFAULT_THRESHOLD
    rt_url: str = ""
    rt_token: str = ""
    rt_queue_prefix: str = ""
    rt_poll_seconds: float = 30.0
    admin_token: str = ""

    @staticmethod
    def from_settings(settings: Any) -> CrmConfig:
        def get(name: str, default: Any) -> Any:
            value = getattr(settings, name, None)
            return default if value in (None, "") else value

        return CrmConfig(
            backend=str(get("crm_backend", "embedded")).lower(),
            routing_path=Path(get("crm_routing_path", DEFAULT_ROUTING_PATH)),
            sla_path=Path(get("crm_sla_path", DEFAULT_SLA_PATH)),
            number_prefix=str(get("work_order_prefix", "BJ")),
            sla_check_seconds=float(get("crm_sla_check_seconds", 60.0)),
            duplicate_threshold=float(get("crm_duplicate_threshold", DEFAULT_THRESHOLD)),
            rt_url=str(get("rt_url", "")),
            rt_token=str(get("rt_token", "")),
            rt_queue_prefix=str(get("rt_queue_prefix", "")),
            rt_poll_seconds=float(get("rt_poll_seconds", 30.0)),
            admin_token=str(get("admin_token", "")),
        )
