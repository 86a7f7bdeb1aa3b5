"""A request for a person is heard in any tone; a complaint about staff, a question about them, or a call for a
repair crew is not one."""

from __future__ import annotations

import pytest

from handoff.person_request import asks_for_a_person


@pytest.mark.parametrize("text", [
    "转人工", "人工", "我要人工服务", "叫你们领导出来说话", "给我接你们负责人", "你是机器人吧？能不能换个活人",
    "我都说了三遍了，找个人来", "有没有工作人员能直接跟我谈", "我不想跟机器人说话", "机器人根本听不懂，给我找人工",
    "找个懂的人来", "I want your manager, now", "enough of the robot, I need a real person", "human please",
    "wow so helpful, is there anyone with a brain there", "can someone actually call me back",
    "let me talk to a human", "get me a supervisor", "I need to speak with someone", "AGENT!!!",
])
def test_a_request_for_a_person_in_any_tone(text: str) -> None:
    assert asks_for_a_person(text)


@pytest.mark.parametrize("text", [
    "工作人员态度太差了，我要投诉", "窗口几点有人上班", "how do I become a volunteer",
    "is the robot vacuum subsidy still available", "路灯坏了", "the staff at the window were rude to me",
    "有人在小区门口乱停车", "people keep parking on the pavement", "someone dumped rubbish by the river",
    "要人命了，水管爆了", "快派个人来修一下路灯", "叫个人来修一下路灯", "/request_human", "",
    "我要人工授精的补贴怎么申请", "人工智能企业有什么扶持政策",
])
def test_not_a_request_for_a_person(text: str) -> None:
    assert not asks_for_a_person(text)
