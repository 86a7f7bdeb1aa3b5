"""`action_check_work_order_status`: "what happened to BJ-20261123-0007?" and "my latest report".

The answer (status, department, last step) is given only to the contact who filed the order, identified by the
gateway's `contact_id` metadata; to anyone else the reply is the same polite "not found for you" as for a number
that does not exist, so nothing about other people's orders leaks.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.ports import WorkOrderDesk, WorkOrderSummary
from bot.actions.slots import turn_language
from bot.actions.work_order_form import message_metadata

logger = structlog.get_logger(__name__)

WORK_ORDER_ENTITY = "work_order_number"
WORK_ORDER_NUMBER = re.compile(r"\bBJ-\d{8}-\d{4}\b", re.IGNORECASE)

_STATUS = {
    "zh": {
        "new": "已受理，等待分派", "assigned": "已分派给承办部门", "in_progress": "正在处理",
        "resolved": "已办结", "closed": "已关闭", "reopened": "已重新办理", "returned": "部门退回，正在重新分派",
    },
    "en": {
        "new": "received, waiting to be assigned", "assigned": "assigned to the responsible department",
        "in_progress": "in progress", "resolved": "resolved", "closed": "closed", "reopened": "reopened",
        "returned": "returned by a department, being re-routed",
    },
}  # fmt: skip
_STEP = {
    "zh": {
        "created": "登记受理", "assigned": "分派", "reassigned": "转派", "returned": "退回", "status": "状态更新",
        "note": "处理备注", "linked_report": "合并重复反映", "reminder": "临期提醒", "overdue": "超期督办",
    },
    "en": {
        "created": "filed", "assigned": "assigned", "reassigned": "reassigned", "returned": "returned",
        "status": "status changed", "note": "note added", "linked_report": "a repeat report was linked",
        "reminder": "deadline reminder", "overdue": "overdue alarm",
    },
}  # fmt: skip
_TEXT = {
    "zh": {
        "answer": "工单 {number}：{status}。\n承办部门：{department}\n最近进展：{step}\n预计办结：{due}",
        "step": "{at} {what}",
        "refused": "抱歉，没有找到您名下的工单 {number}。请核对工单号；工单进度只能由提交人本人查询。"
        "如需帮助，请发送“转人工”。",
        "none_yet": "没有找到您提交过的工单。如果有工单号（格式如 BJ-20261123-0007），请发给我查询。",
        "unavailable": "抱歉，工单系统暂时无法查询，请稍后再试，或发送“转人工”。",
        "unverified": "抱歉，我们无法确认这条消息来自您本人（例如邮件未通过发件域验证），因此不能查询工单进度。"
        "请从您本人的邮箱、手机短信或其他渠道再试，或发送“转人工”。",
    },
    "en": {
        "answer": "Work order {number}: {status}.\nDepartment: {department}\nLatest step: {step}\nExpected by: {due}",
        "step": "{at} {what}",
        "refused": "Sorry, I couldn't find work order {number} for you. Please check the number; an order's "
        "progress can only be shown to the person who reported it. Ask for a person if you need help.",
        "none_yet": "I couldn't find any work order you've filed. If you have a number (like BJ-20261123-0007), "
        "send it to me.",
        "unavailable": "Sorry, work orders can't be looked up right now. Please try again later or ask for a person.",
        "unverified": "Sorry, we could not confirm this message came from you (the mail did not pass its domain's "
        "checks), so I can't show work-order progress. Please write from your own mailbox, by SMS or another "
        "channel, or ask for a person.",
    },
}


def work_order_number(tracker: Tracker) -> str | None:
    """The work-order number in the latest message: the NLU entity, else a match in the text."""
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") == WORK_ORDER_ENTITY and entity.get("value"):
            return str(entity["value"]).upper()
    match = WORK_ORDER_NUMBER.search(str(tracker.latest_message.get("text") or ""))
    return match.group(0).upper() if match else None


def describe(order: WorkOrderSummary, lang: str) -> str:
    """The reply for the order's owner: status, department, the last step and the expected date."""
    what = _STEP[lang].get(order.last_step or "", order.last_step or "")
    if order.last_step_note and order.last_step in ("note", "status", "returned", "resolved"):
        what = f"{what}（{order.last_step_note}）" if lang == "zh" else f"{what} ({order.last_step_note})"
    step = _TEXT[lang]["step"].format(at=order.last_step_at or "", what=what).strip() or "-"
    return _TEXT[lang]["answer"].format(
        number=order.number,
        status=_STATUS[lang].get(order.status, order.status),
        department=order.department_name_en if lang == "en" else order.department_name_zh,
        step=step,
        due=order.due_date,
    )


class ActionCheckWorkOrderStatus(Action):
    """Looks the order up (by number, else the asker's latest) and answers only its owner."""

    def __init__(self, desk: WorkOrderDesk | None = None) -> None:
        self._desk = desk

    def name(self) -> str:
        return "action_check_work_order_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        lang = turn_language(tracker)
        number = work_order_number(tracker)
        metadata = message_metadata(tracker)
        contact_id = metadata.get("contact_id")
        if metadata.get("sender_verified") is False:
            logger.info("work_order_status.refused", reason="sender_unverified")
            dispatcher.utter_message(text=_TEXT[lang]["unverified"])
            return []
        if self._desk is None:
            dispatcher.utter_message(text=_TEXT[lang]["unavailable"])
            return [SlotSet("work_order_id", number)] if number else []
        if number is None and not contact_id:
            dispatcher.utter_message(response="utter_ask_work_order_number")
            return []
        try:
            if number is None:
                order = await self._desk.latest_for_contact(str(contact_id))
                if order is None:
                    dispatcher.utter_message(text=_TEXT[lang]["none_yet"])
                    return []
            else:
                order = await self._desk.summary(number)
        except Exception:
            logger.exception("work_order_status.failed", sender_id=tracker.sender_id)
            dispatcher.utter_message(text=_TEXT[lang]["unavailable"])
            return []
        if order is None or not contact_id or order.contact_id != str(contact_id):
            # The same words whether the order is missing or someone else's: nothing is revealed.
            logger.info("work_order_status.refused", found=order is not None)
            dispatcher.utter_message(text=_TEXT[lang]["refused"].format(number=number or ""))
            return []
        dispatcher.utter_message(text=describe(order, lang))
        return [SlotSet("work_order_id", order.number)]
