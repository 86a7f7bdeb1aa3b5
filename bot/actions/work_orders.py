"""`action_check_work_order_status`: placeholder until the work-order issue connects the work-order system.

It is honest that status cannot be looked up yet; it records the number the citizen gave (slot work_order_id) so
the gateway and the agent who takes over can see it.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.slots import turn_language

WORK_ORDER_ENTITY = "work_order_number"
WORK_ORDER_NUMBER = re.compile(r"\bBJ-\d{8}-\d{4}\b", re.IGNORECASE)

_TEXT = {
    "zh": "收到，您要查询的工单是 {number}。工单进度查询功能正在接入中，暂时还不能在这里显示进度；"
    "如需尽快了解，请发送“转人工”。",
    "en": "Got it: work order {number}. Looking up its progress here is coming soon but not available yet; "
    "if you need to know now, ask to talk to a person.",
}


def work_order_number(tracker: Tracker) -> str | None:
    """The work-order number in the latest message: the NLU entity, else a match in the text."""
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") == WORK_ORDER_ENTITY and entity.get("value"):
            return str(entity["value"]).upper()
    match = WORK_ORDER_NUMBER.search(str(tracker.latest_message.get("text") or ""))
    return match.group(0).upper() if match else None


class ActionCheckWorkOrderStatus(Action):
    """Acknowledges the number honestly (no lookup yet), or asks for the number when there is none."""

    def name(self) -> str:
        return "action_check_work_order_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        number = work_order_number(tracker)
        if number is None:
            dispatcher.utter_message(response="utter_ask_work_order_number")
            return []
        dispatcher.utter_message(text=_TEXT[turn_language(tracker)].format(number=number))
        return [SlotSet("work_order_id", number)]
