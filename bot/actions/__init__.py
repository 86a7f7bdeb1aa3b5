"""Rasa custom actions, run in the gateway's environment through rasa-sdk's ActionExecutor.

`build_executor(search, work_orders=..., feedback=...)` registers action instances with their dependencies passed
in (no module scan, no globals); the gateway mounts the executor at POST /actions/webhook. Without a work-order desk
or a feedback store the actions say so honestly (filing and status lookups are unavailable, votes are not kept).
"""

from __future__ import annotations

from rasa_sdk.executor import ActionExecutor

from bot.actions.feedback import ActionKbFeedback
from bot.actions.handoff import ActionRequestHuman
from bot.actions.kb import ActionAnswerKb
from bot.actions.ports import (
    ArticleFeedback,
    ArticleHit,
    ArticleSearch,
    FiledWorkOrder,
    KbAnswer,
    WorkOrderDesk,
    WorkOrderDraft,
    WorkOrderSummary,
)
from bot.actions.rating import ActionRateWorkOrder
from bot.actions.slots import ValidateSlotMappings
from bot.actions.work_order_form import ActionAskWorkOrderConfirmed, ActionFinishWorkOrder, ValidateWorkOrderForm
from bot.actions.work_orders import ActionCheckWorkOrderStatus

__all__ = [
    "ArticleFeedback", "ArticleHit", "ArticleSearch", "FiledWorkOrder", "KbAnswer", "WorkOrderDesk",
    "WorkOrderDraft", "WorkOrderSummary", "build_executor",
]  # fmt: skip


def build_executor(
    search: ArticleSearch, work_orders: WorkOrderDesk | None = None, feedback: ArticleFeedback | None = None
) -> ActionExecutor:
    """An executor with every custom action the domain declares, built around the given ports."""
    executor = ActionExecutor()
    for action in (
        ValidateSlotMappings(),
        ActionAnswerKb(search),
        ActionRequestHuman(),
        ActionCheckWorkOrderStatus(work_orders),
        ValidateWorkOrderForm(),
        ActionAskWorkOrderConfirmed(),
        ActionFinishWorkOrder(work_orders),
        ActionKbFeedback(feedback),
        ActionRateWorkOrder(work_orders),
    ):
        executor.register_action(action)
    return executor
