"""The CRM adapter's settings as the work-order service reads them. They come from the app's Settings by name
(WORK_ORDER_PREFIX, CRM_*, RT_*: crm_adapter/settings.py declares them and their defaults, the README's table says
what each does); a name missing there or empty takes the same default, so the service also runs from a bare object
(the tests, the benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm_adapter.settings import WorkOrderSettings

_DEFAULTS = {name: info.default for name, info in WorkOrderSettings.model_fields.items()}


@dataclass(frozen=True)
class CrmConfig:
    backend: str = _DEFAULTS["crm_backend"]
    routing_path: Path = _DEFAULTS["crm_routing_path"]
    sla_path: Path = _DEFAULTS["crm_sla_path"]
    number_prefix: str = _DEFAULTS["work_order_prefix"]
    sla_check_seconds: float = _DEFAULTS["crm_sla_check_seconds"]
    duplicate_threshold: float = _DEFAULTS["crm_duplicate_threshold"]
    rt_url: str = _DEFAULTS["rt_url"]
    rt_token: str = _DEFAULTS["rt_token"]
    rt_queue_prefix: str = _DEFAULTS["rt_queue_prefix"]
    rt_poll_seconds: float = _DEFAULTS["rt_poll_seconds"]

    @staticmethod
    def from_settings(settings: Any) -> CrmConfig:
        def get(name: str) -> Any:
            value = getattr(settings, name, None)
            return _DEFAULTS[name] if value in (None, "") else value

        return CrmConfig(
            backend=str(get("crm_backend")).lower(),
            routing_path=Path(get("crm_routing_path")),
            sla_path=Path(get("crm_sla_path")),
            number_prefix=str(get("work_order_prefix")),
            sla_check_seconds=float(get("crm_sla_check_seconds")),
            duplicate_threshold=float(get("crm_duplicate_threshold")),
            rt_url=str(get("rt_url")),
            rt_token=str(get("rt_token")),
            rt_queue_prefix=str(get("rt_queue_prefix")),
            rt_poll_seconds=float(get("rt_poll_seconds")),
        )
