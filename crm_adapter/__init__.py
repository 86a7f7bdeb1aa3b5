"""Work orders (工单): model and workflow, routing to departments, service commitments on the city's working
calendar, SLA reminders and alarms, duplicate linking, and two backends behind one interface (the embedded
database
and Request Tracker 5). Entry points: `build_work_orders(settings, db)` and `crm_adapter.api.router`."""

from crm_adapter.backend import (
    BackendUnavailable,
    InvalidWorkOrder,
    NewWorkOrder,
    OrderFilter,
    WorkOrderBackend,
    WorkOrderError,
    WorkOrderNotFound,
    WorkOrderRecord,
)
from crm_adapter.calendar import CalendarConfig, WorkingCalendar
from crm_adapter.events import WorkOrderEvent
from crm_adapter.service import FileRequest, FileResult, WorkOrderService, build_work_orders
from crm_adapter.watcher import SlaWatcher
from crm_adapter.workflow import Actor, DispatchMode, Role, Status, WorkflowError

__all__ = [
    "Actor",
    "BackendUnavailable",
    "CalendarConfig",
    "DispatchMode",
    "FileRequest",
    "FileResult",
    "InvalidWorkOrder",
    "NewWorkOrder",
    "OrderFilter",
    "Role",
    "SlaWatcher",
    "Status",
    "WorkOrderBackend",
    "WorkOrderError",
    "WorkOrderEvent",
    "WorkOrderNotFound",
    "WorkOrderRecord",
    "WorkOrderService",
    "WorkflowError",
    "WorkingCalendar",
    "build_work_orders",
]
