"""`action_request_human`: the citizen asked for a person; the gateway sees handoff_requested and hands over."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.slots import turn_language

_TEXT = {
    "zh": "好的，正在为您转接人工服务，工作人员会尽快在这里回复您，请稍候。",
    "en": "OK, I'm passing you to a member of staff. A person will reply here as soon as possible.",
}


class ActionRequestHuman(Action):
    """Tells the citizen a person will take over and sets handoff_requested=True."""

    def name(self) -> str:
        return "action_request_human"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        dispatcher.utter_message(text=_TEXT[turn_language(tracker)])
        return [SlotSet("handoff_requested", True)]
