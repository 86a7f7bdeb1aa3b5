"""What the citizen is told around a handoff, in zh and en, and the survey's buttons."""

from __future__ import annotations

from datetime import datetime

from gateway.message import Button, OutboundMessage

LEAVE_MESSAGE = "handoff:leave_message"
FILE_WORK_ORDER = "handoff:work_order"
WORK_ORDER_INTENT = "/report_problem"  # what the bot hears when the citizen picks "file a work order"
CSAT_PREFIX = "csat:"


def _lang(language: str | None) -> str:
    return language if language in ("zh", "en") else "zh"


def queued(language: str | None, position: int) -> OutboundMessage:
    if _lang(language) == "en":
        ahead = "you are next" if position <= 1 else f"{position - 1} ahead of you"
        return OutboundMessage(text=f"A person is coming: you are number {position} in the queue ({ahead}).")
    ahead = "下一位就是您" if position <= 1 else f"前面还有 {position - 1} 位"
    return OutboundMessage(text=f"工作人员马上就来：您目前排在第 {position} 位（{ahead}）。")


def still_waiting(language: str | None, position: int) -> OutboundMessage:
    if _lang(language) == "en":
        return OutboundMessage(
            text=f"Thank you for waiting. You are number {position} in the queue; a person will reply here soon."
        )
    return OutboundMessage(text=f"感谢您耐心等待，您目前排在第 {position} 位，工作人员会尽快在这里回复您。")


def closed(language: str | None, back_at: datetime | None) -> OutboundMessage:
    en = _lang(language) == "en"
    if back_at is None:
        when = "soon" if en else "稍后"
    else:
        when = back_at.strftime("%a %d %b %H:%M") if en else back_at.strftime("%m月%d日 %H:%M")
    if en:
        return OutboundMessage(
            text=f"Our staff are not at their desks right now; they are back on {when}. You can leave a message "
            "here and we will answer it first thing, or file a work order now.",
            buttons=(Button("Leave a message", LEAVE_MESSAGE), Button("File a work order", FILE_WORK_ORDER)),
        )
    return OutboundMessage(
        text=f"现在是非工作时间，工作人员将于 {when} 上班。您可以直接在这里留言，我们上班后第一时间回复您；"
        "也可以现在提交工单。",
        buttons=(Button("留言", LEAVE_MESSAGE), Button("提交工单", FILE_WORK_ORDER)),
    )


def message_taken(language: str | None) -> OutboundMessage:
    if _lang(language) == "en":
        return OutboundMessage(text="Please write your message here; a person will answer it when we are back.")
    return OutboundMessage(text="好的，请直接在这里留言，工作人员上班后会尽快回复您。")


def agent_joined(language: str | None, name: str) -> OutboundMessage:
    if _lang(language) == "en":
        return OutboundMessage(text=f"{name} from the service centre is here to help you.")
    return OutboundMessage(text=f"服务中心工作人员 {name} 为您服务。")


def handed_back(language: str | None) -> OutboundMessage:
    if _lang(language) == "en":
        return OutboundMessage(text="You are back with the assistant; ask for a person again at any time.")
    return OutboundMessage(text="人工服务已结束，智能助手继续为您服务；如需人工，随时告诉我。")


def survey(language: str | None) -> OutboundMessage:
    buttons = tuple(Button(str(n), f"{CSAT_PREFIX}{n}") for n in range(1, 6))
    if _lang(language) == "en":
        return OutboundMessage(
            text="This conversation is resolved. How satisfied are you with our service? 1 (not at all) – 5 (very)",
            buttons=buttons,
        )
    return OutboundMessage(text="本次服务已结束。请为我们的服务打分：1（很不满意）– 5（非常满意）", buttons=buttons)


def survey_thanks(language: str | None, score: int) -> OutboundMessage:
    if _lang(language) == "en":
        return OutboundMessage(text=f"Thank you for your rating ({score}/5)!")
    return OutboundMessage(text=f"感谢您的评价（{score} 分）！")
