"""`action_rate_work_order`: the citizen's answer to the 回访 (satisfaction visit) after their order was closed.

The closing notice (crm_adapter/notices.py) carries buttons 满意 / 一般 / 不满意 whose payloads are
`/rate_work_order{"work_order_number": "BJ-…", "score": 5}` (on SMS they become a numbered list and "1" maps back to
the first payload). Rasa turns a payload into intent rate_work_order with the entities `work_order_number` and
`score` (never learnt from NLU examples). The answer is stored on the order only for the contact who filed it.
"""

from __future__ import annotations

from typing import Any

import structlog
from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.ports import WorkOrderDesk
from bot.actions.slots import turn_language
from bot.actions.work_order_form import message_metadata

logger = structlog.get_logger(__name__)

_TEXT = {
    "zh": {
        "good": "感谢您的评价！我们会继续努力。",
        "bad": "感谢您的评价，很抱歉这次没有让您满意。我们会复核办理情况；如需进一步帮助，请发送“转人工”。",
        "refused": "抱歉，这条评价无法登记（工单不存在、不是您提交的，或尚未办结）。如需帮助，请发送“转人工”。",
        "unavailable": "抱歉，评价暂时无法登记，请稍后再试。",
        "unverified": "抱歉，我们无法确认这条消息来自工单提交人本人，评价没有登记。请从您本人的邮箱或手机回复。",
    },
    "en": {
        "good": "Thank you for your rating!",
        "bad": "Thank you, and we're sorry it wasn't handled to your satisfaction. We will review it; ask for a "
        "person if you need more help.",
        "refused": "Sorry, I can't record this rating (the order doesn't exist, isn't yours, or isn't finished yet). "
        "Ask for a person if you need help.",
        "unavailable": "Sorry, ratings can't be recorded right now. Please try again later.",
        "unverified": "Sorry, we could not confirm this message came from the person who filed the order, so the "
        "rating was not recorded. Please reply from your own mailbox or phone.",
    },
}


def _entity(tracker: Tracker, name: str) -> Any:
    return next((e.get("value") for e in tracker.latest_message.get("entities") or [] if e.get("entity") == name), None)


def _score(value: Any) -> int | None:
    try:
        score = int(str(value))
    except (TypeError, ValueError):
        return None
    return score if 1 <= score <= 5 else None


class ActionRateWorkOrder(Action):
    """Stores the rating through the work-order desk and thanks the citizen (or says why it was not taken)."""

    def __init__(self, desk: WorkOrderDesk | None) -> None:
        self._desk = desk

    def name(self) -> str:
        return "action_rate_work_order"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        lang = turn_language(tracker)
        number = str(_entity(tracker, "work_order_number") or "").upper()
        score = _score(_entity(tracker, "score"))
        metadata = message_metadata(tracker)
        contact_id = metadata.get("contact_id")
        if metadata.get("sender_verified") is False:
            logger.info("work_order.rating_refused", number=number, reason="sender_unverified")
            dispatcher.utter_message(text=_TEXT[lang]["unverified"])
            return []
        if self._desk is None:
            dispatcher.utter_message(text=_TEXT[lang]["unavailable"])
            return []
        if not number or score is None or not contact_id:
            dispatcher.utter_message(text=_TEXT[lang]["refused"])
            return []
        try:
            stored = await self._desk.rate(number, str(contact_id), score)
        except Exception:
            logger.exception("work_order.rating_failed", number=number)
            dispatcher.utter_message(text=_TEXT[lang]["unavailable"])
            return []
        if not stored:
            dispatcher.utter_message(text=_TEXT[lang]["refused"])
            return []
        logger.info("work_order.rated", number=number, score=score)
        dispatcher.utter_message(text=_TEXT[lang]["good" if score >= 3 else "bad"])
        return [SlotSet("work_order_id", number)]
