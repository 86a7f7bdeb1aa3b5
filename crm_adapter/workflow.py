"""The work-order status machine: which status may follow which, who may make the move, and the dispatch modes.

    new ──► assigned ──► in_progress ──► resolved ──► closed
     │         │  ▲           │             │  ▲         │
     │         ▼  │           ▼             ▼  │         ▼
     │      returned ◄────────┘          reopened ◄──────┘
     └──► (dispatch desk routes it: assigned)

`returned` means a department said "not ours": the order goes back to the dispatch desk to be routed again.
Every allowed move is listed explicitly with the roles that may make it; `system` (automation and the RT sync,
where the outside tracker is authoritative) may make any move between known statuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"
    RETURNED = "returned"


class Role(StrEnum):
    BOT = "bot"  # files orders on the citizen's behalf
    CITIZEN = "citizen"
    AGENT = "agent"  # service-centre agent in the inbox
    DISPATCHER = "dispatcher"  # the dispatch desk: routes orders to departments
    DEPARTMENT = "department"  # staff of the department the order is assigned to
    SUPERVISOR = "supervisor"
    SYSTEM = "system"


class Category(StrEnum):
    CONSULTATION = "consultation"
    COMPLAINT = "complaint"
    REPORT = "report"
    SUGGESTION = "suggestion"
    PRAISE = "praise"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class DispatchMode(StrEnum):
    DIRECT = "direct"  # dispatch desk (or routing) sends the order to a department
    TRANSFER = "transfer"  # one department hands it to another
    RETURN = "return"  # a department says it is not theirs: back to the dispatch desk


OPEN = frozenset({Status.NEW, Status.ASSIGNED, Status.IN_PROGRESS, Status.REOPENED, Status.RETURNED})
DISPATCH_DESK = "dispatch"

_S, _R = Status, Role
TRANSITIONS: dict[tuple[Status, Status], frozenset[Role]] = {
    (_S.NEW, _S.ASSIGNED): frozenset({_R.DISPATCHER, _R.SUPERVISOR}),
    (_S.NEW, _S.RESOLVED): frozenset({_R.AGENT, _R.SUPERVISOR}),  # an agent settles a consultation at once
    (_S.NEW, _S.CLOSED): frozenset({_R.DISPATCHER, _R.SUPERVISOR}),  # spam, withdrawn
    (_S.ASSIGNED, _S.IN_PROGRESS): frozenset({_R.DEPARTMENT, _R.AGENT, _R.SUPERVISOR}),
    (_S.ASSIGNED, _S.RESOLVED): frozenset({_R.DEPARTMENT, _R.AGENT, _R.SUPERVISOR}),
    (_S.ASSIGNED, _S.RETURNED): frozenset({_R.DEPARTMENT, _R.SUPERVISOR}),
    (_S.IN_PROGRESS, _S.RESOLVED): frozenset({_R.DEPARTMENT, _R.AGENT, _R.SUPERVISOR}),
    (_S.IN_PROGRESS, _S.RETURNED): frozenset({_R.DEPARTMENT, _R.SUPERVISOR}),
    (_S.RETURNED, _S.ASSIGNED): frozenset({_R.DISPATCHER, _R.SUPERVISOR}),
    (_S.RETURNED, _S.CLOSED): frozenset({_R.DISPATCHER, _R.SUPERVISOR}),
    (_S.RESOLVED, _S.CLOSED): frozenset({_R.AGENT, _R.DISPATCHER, _R.SUPERVISOR, _R.CITIZEN}),
    (_S.RESOLVED, _S.REOPENED): frozenset({_R.CITIZEN, _R.AGENT, _R.SUPERVISOR}),
    (_S.CLOSED, _S.REOPENED): frozenset({_R.AGENT, _R.SUPERVISOR}),
    (_S.REOPENED, _S.ASSIGNED): frozenset({_R.DISPATCHER, _R.SUPERVISOR}),
    (_S.REOPENED, _S.IN_PROGRESS): frozenset({_R.DEPARTMENT, _R.AGENT, _R.SUPERVISOR}),
    (_S.REOPENED, _S.RESOLVED): frozenset({_R.DEPARTMENT, _R.AGENT, _R.SUPERVISOR}),
}

# Who may move an order between departments, per mode.
DISPATCH_ROLES: dict[DispatchMode, frozenset[Role]] = {
    DispatchMode.DIRECT: frozenset({_R.DISPATCHER, _R.SUPERVISOR, _R.SYSTEM}),
    DispatchMode.TRANSFER: frozenset({_R.DEPARTMENT, _R.DISPATCHER, _R.SUPERVISOR, _R.SYSTEM}),
    DispatchMode.RETURN: frozenset({_R.DEPARTMENT, _R.SUPERVISOR, _R.SYSTEM}),
}
# Statuses from which an order may be moved between departments (not once it is finished).
DISPATCHABLE = frozenset({Status.NEW, Status.ASSIGNED, Status.IN_PROGRESS, Status.RETURNED, Status.REOPENED})


@dataclass(frozen=True)
class Actor:
    """Who acts: a display name for the history ("agent:li", "dept:transport", "rt:root") and a role."""

    name: str
    role: Role
    # The departments whose orders this actor may see and work (None: every department).
    departments: tuple[str, ...] | None = None

    def may_see(self, department: str) -> bool:
        return self.departments is None or department in self.departments


SYSTEM = Actor("system", Role.SYSTEM)


class WorkflowError(Exception):
    """A move the status machine does not allow (HTTP 409)."""


def check_transition(current: str, target: str, role: Role) -> None:
    """Raise WorkflowError unless `role` may move an order from `current` to `target`."""
    try:
        src, dst = Status(current), Status(target)
    except ValueError as exc:
        raise WorkflowError(f"unknown status: {exc}") from None
    if src == dst:
        raise WorkflowError(f"the order is already {dst.value}")
    if role == Role.SYSTEM:
        return
    allowed = TRANSITIONS.get((src, dst))
    if allowed is None:
        raise WorkflowError(f"{src.value} → {dst.value} is not an allowed move")
    if role not in allowed:
        raise WorkflowError(f"a {role.value} may not move an order from {src.value} to {dst.value}")


def dispatch_target(
    mode: DispatchMode, current_status: str, current_department: str, department: str, role: Role
) -> tuple[str, Status]:
    """Check a move between departments; return (new department, new status)."""
    if role not in DISPATCH_ROLES[mode]:
        raise WorkflowError(f"a {role.value} may not {mode.value} an order")
    if Status(current_status) not in DISPATCHABLE:
        raise WorkflowError(f"a {current_status} order cannot be moved between departments; reopen it first")
    if mode == DispatchMode.RETURN:
        if current_department == DISPATCH_DESK:
            raise WorkflowError("the order is already at the dispatch desk")
        return DISPATCH_DESK, Status.RETURNED
    if department == DISPATCH_DESK:
        raise WorkflowError(f"use mode 'return' to send an order back to the dispatch desk, not {mode.value}")
    if department == current_department:
        raise WorkflowError(f"the order is already with {department}")
    if mode == DispatchMode.TRANSFER and current_department == DISPATCH_DESK:
        raise WorkflowError("an order at the dispatch desk is routed with mode 'direct'")
    if mode == DispatchMode.DIRECT and current_department != DISPATCH_DESK:
        raise WorkflowError("only an order at the dispatch desk is routed with mode 'direct'; use 'transfer'")
    return department, Status.ASSIGNED


def allowed_targets(current: str, role: Role) -> list[str]:
    """The statuses `role` may move an order to from `current` (for the inbox's buttons)."""
    return [dst.value for (src, dst), roles in TRANSITIONS.items() if src.value == current and role in roles]
