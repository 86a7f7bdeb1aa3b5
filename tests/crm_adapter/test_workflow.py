"""The status machine and the dispatch modes."""

from __future__ import annotations

import pytest

from crm_adapter.workflow import (
    TRANSITIONS,
    DispatchMode,
    Role,
    Status,
    WorkflowError,
    allowed_targets,
    check_transition,
    dispatch_target,
)


def test_happy_path_by_the_right_roles() -> None:
    check_transition("new", "assigned", Role.DISPATCHER)
    check_transition("assigned", "in_progress", Role.DEPARTMENT)
    check_transition("in_progress", "resolved", Role.DEPARTMENT)
    check_transition("resolved", "closed", Role.AGENT)


@pytest.mark.parametrize(
    ("src", "dst", "role"),
    [
        ("new", "in_progress", Role.SUPERVISOR),  # must be assigned first
        ("closed", "in_progress", Role.SUPERVISOR),  # must be reopened first
        ("new", "assigned", Role.DEPARTMENT),  # only the dispatch desk routes
        ("in_progress", "resolved", Role.CITIZEN),
        ("in_progress", "resolved", Role.BOT),
        ("resolved", "closed", Role.DEPARTMENT),
        ("closed", "reopened", Role.CITIZEN),  # a citizen may reopen a resolved order, not a closed one
        ("assigned", "assigned", Role.SUPERVISOR),
        ("assigned", "bogus", Role.SUPERVISOR),
    ],
)
def test_refused_moves(src: str, dst: str, role: Role) -> None:
    with pytest.raises(WorkflowError):
        check_transition(src, dst, role)


def test_reopen_after_resolved_and_closed() -> None:
    check_transition("resolved", "reopened", Role.CITIZEN)
    check_transition("closed", "reopened", Role.SUPERVISOR)
    assert set(allowed_targets("reopened", Role.DEPARTMENT)) == {"in_progress", "resolved"}


def test_every_status_is_reachable_and_finished_ones_only_reopen() -> None:
    reachable = {dst for (_src, dst) in TRANSITIONS}
    assert reachable | {Status.NEW} == set(Status)
    for src, dst in TRANSITIONS:
        if src in (Status.RESOLVED, Status.CLOSED):
            assert dst in (Status.CLOSED, Status.REOPENED)


def test_system_may_make_any_move_between_known_statuses() -> None:
    check_transition("new", "closed", Role.SYSTEM)
    with pytest.raises(WorkflowError):
        check_transition("new", "nowhere", Role.SYSTEM)


def test_dispatch_modes() -> None:
    assert dispatch_target(DispatchMode.DIRECT, "new", "dispatch", "transport", Role.DISPATCHER) == (
        "transport",
        Status.ASSIGNED,
    )
    assert dispatch_target(DispatchMode.TRANSFER, "in_progress", "transport", "housing", Role.DEPARTMENT) == (
        "housing",
        Status.ASSIGNED,
    )
    assert dispatch_target(DispatchMode.RETURN, "assigned", "transport", "", Role.DEPARTMENT) == (
        "dispatch",
        Status.RETURNED,
    )
    assert dispatch_target(DispatchMode.DIRECT, "returned", "dispatch", "housing", Role.DISPATCHER) == (
        "housing",
        Status.ASSIGNED,
    )
    with pytest.raises(WorkflowError, match="may not"):
        dispatch_target(DispatchMode.DIRECT, "new", "dispatch", "transport", Role.DEPARTMENT)
    with pytest.raises(WorkflowError, match="return"):
        dispatch_target(DispatchMode.TRANSFER, "assigned", "transport", "dispatch", Role.DEPARTMENT)
    with pytest.raises(WorkflowError, match="reopen"):
        dispatch_target(DispatchMode.TRANSFER, "closed", "transport", "housing", Role.SUPERVISOR)
    with pytest.raises(WorkflowError, match="already"):
        dispatch_target(DispatchMode.RETURN, "returned", "dispatch", "", Role.DEPARTMENT)
