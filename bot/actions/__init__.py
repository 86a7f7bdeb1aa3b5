"""Rasa custom actions, run in the gateway's environment through rasa-sdk's ActionExecutor.

`build_executor(search)` registers action instances with their dependencies passed in (no module scan, no
globals); the gateway mounts the executor at POST /actions/webhook.
"""

from __future__ import annotations

from rasa_sdk.executor import ActionExecutor

from bot.actions.handoff import ActionRequestHuman
from bot.actions.kb import ActionAnswerKb
from bot.actions.ports import ArticleHit, ArticleSearch, KbAnswer
from bot.actions.slots import ValidateSlotMappings
from bot.actions.work_orders import ActionCheckWorkOrderStatus

__all__ = ["ArticleHit", "ArticleSearch", "KbAnswer", "build_executor"]


def build_executor(search: ArticleSearch) -> ActionExecutor:
    """An executor with every custom action the domain declares, built around the given KB search."""
    executor = ActionExecutor()
    for action in (
        ValidateSlotMappings(),
        ActionAnswerKb(search),
        ActionRequestHuman(),
        ActionCheckWorkOrderStatus(),
    ):
        executor.register_action(action)
    return executor
