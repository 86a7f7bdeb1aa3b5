"""Routing rules from routing.yml, and the similarity used to link a repeated report."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from crm_adapter.duplicates import DEFAULT_THRESHOLD, similarity
from crm_adapter.routing import DEFAULT_ROUTING_PATH, RoutingInput, load_routing, parse_routing

ROUTER = load_routing()


def test_the_fourteen_departments_and_the_dispatch_desk() -> None:
    assert set(ROUTER.departments) == {
        "dispatch",
        "transport",
        "housing",
        "social_security",
        "household_registration",
        "tax",
        "utilities",
        "environment",
        "urban_management",
        "health",
        "education",
        "civil_affairs",
        "business",
        "public_safety",
        "culture_tourism",
    }


@pytest.mark.parametrize(
    ("category", "text", "department"),
    [
        ("report", "人民路56号的路灯不亮了", "urban_management"),
        ("report", "The street light outside 12 Binjiang Road is out", "urban_management"),
        ("complaint", "工地夜间施工噪音太大，影响休息", "environment"),
        ("complaint", "8路公交车司机拒载", "transport"),
        ("report", "小区停水两天了还没有通知", "utilities"),
        ("consultation", "居住证签注怎么办理", "household_registration"),
        ("complaint", "my pension has not been paid this month", "social_security"),
        ("complaint", "The school bus is always late", "education"),  # "school bus" outweighs "bus"
        ("report", "楼道里闻到燃气泄漏的味道，路灯也坏了", "utilities"),  # emergency rule first
        ("report", "有人冒充公安打电话，我被骗了", "public_safety"),
        ("praise", "公交司机帮我找回了钱包，谢谢", "dispatch"),
        ("suggestion", "建议地铁延长运营时间", "dispatch"),
        ("complaint", "随便说点什么", "dispatch"),
    ],
)
def test_routing(category: str, text: str, department: str) -> None:
    assert ROUTER.route(RoutingInput(category, text)).department == department


def test_business_is_not_bus() -> None:
    decision = ROUTER.route(
        RoutingInput("complaint", "the business next door sells fake goods, refund refused")
    )
    assert decision.department == "business"


def test_kb_article_department_and_intent_rules() -> None:
    decision = ROUTER.route(RoutingInput("consultation", "请问这个怎么弄", kb_department="tax"))
    assert (decision.department, decision.reason) == ("tax", "rule:consultation-kb-article")
    # A complaint is routed by what it says, not by an article the bot showed earlier.
    assert (
        ROUTER.route(RoutingInput("complaint", "请问这个怎么弄", kb_department="tax")).department
        == "dispatch"
    )


def test_a_tie_goes_to_a_person() -> None:
    decision = ROUTER.route(RoutingInput("complaint", "医院门口的路灯"))  # health (医院) vs urban (路灯)
    assert decision.department == "dispatch" and decision.reason.startswith("tie:")


def test_a_confident_classifier_routes_by_what_the_problem_is() -> None:
    # A drain cover "by the bus stop": the words say transport, the classifier says urban management.
    text = "和平路公交站旁边的井盖翘起来半个月了"
    assert ROUTER.route(RoutingInput("report", text)).department == "transport"
    decision = ROUTER.route(RoutingInput("report", text, candidates=(("urban_management", 0.62), ("transport", 0.2))))
    assert (decision.department, decision.reason) == ("urban_management", "classifier:0.62")


def test_an_unsure_classifier_leaves_it_to_the_words_or_a_person_shown_the_candidates() -> None:
    unsure = (("housing", 0.28), ("utilities", 0.25))
    assert ROUTER.route(RoutingInput("report", "路灯坏了", candidates=unsure)).department == "urban_management"
    decision = ROUTER.route(RoutingInput("report", "出了点状况想反映一下", candidates=unsure))
    assert decision.department == "dispatch"
    assert decision.reason == "default; candidates housing 0.28, utilities 0.25"


def test_policy_rules_stand_above_the_classifier() -> None:
    decision = ROUTER.route(RoutingInput("report", "楼道里闻到燃气泄漏的味道", candidates=(("housing", 0.9),)))
    assert decision.department == "utilities" and decision.reason.startswith("rule:")
    unknown = ROUTER.route(RoutingInput("report", "出了点状况", candidates=(("no_such_department", 0.9),)))
    assert unknown.department == "dispatch"


def test_rules_with_intent_and_a_custom_file(tmp_path: Path) -> None:
    raw = yaml.safe_load(DEFAULT_ROUTING_PATH.read_text(encoding="utf-8"))
    raw["rules"].insert(0, {"name": "human", "when": {"intent": "request_human"}, "department": "dispatch"})
    router = parse_routing(raw)
    assert router.route(RoutingInput("report", "路灯不亮", intent="request_human")).reason == "rule:human"
    raw["rules"].append({"name": "bad", "when": {"category": "report"}, "department": "nowhere"})
    with pytest.raises(ValueError, match="nowhere"):
        parse_routing(raw)


# ---- duplicates --------------------------------------------------------------------------------------------------

SAME = [
    ("人民路56号门口的路灯不亮了", "人民路56号的路灯还是不亮"),
    ("人民路56号门口路灯坏了，晚上很黑", "人民路56号门口的路灯坏了，晚上太黑了"),
    ("The street light outside 56 Renmin Road is out", "street light at 56 Renmin Road still out"),
    ("工地夜间施工噪音太大 滨江路8号", "滨江路8号工地夜间施工，噪音太大！"),
]
DIFFERENT = [
    ("人民路56号门口的路灯不亮了", "中山路3号的井盖丢了"),
    ("人民路56号门口的路灯不亮了", "人民路12号门口的下水道堵了"),
    ("The street light outside 56 Renmin Road is out", "Pothole on Zhongshan Road near the school"),
    ("工地夜间施工噪音太大 滨江路8号", "滨江路8号餐馆油烟扰民"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_same_report_is_similar(a: str, b: str) -> None:
    assert similarity(a, b) >= DEFAULT_THRESHOLD, similarity(a, b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_reports_are_not(a: str, b: str) -> None:
    assert similarity(a, b) < DEFAULT_THRESHOLD, similarity(a, b)


def test_similarity_ignores_punctuation_width_and_case() -> None:
    assert similarity("ＡＢＣ，路灯！", "abc路灯") == 1.0
    assert similarity("", "路灯") == 0.0


@pytest.mark.parametrize(
    ("category", "text", "urgent"),
    [
        ("report", "小区门口燃气泄漏了，味道很大", True),
        ("complaint", "电梯坏了，有人被困在里面半小时没人管", True),
        ("report", "There is a live wire hanging over the pavement on Jiangnan Road", True),
        ("report", "人民路的井盖没了，晚上很危险", True),
        ("report", "人民路56号的路灯不亮了", False),
        ("complaint", "the restaurant sets off fireworks every night", False),  # "fire" is a word, not a prefix
        ("consultation", "家里着火了保险怎么赔", False),  # a question, not a report of danger now
        ("suggestion", "建议在学校门口装个防溺水的提示牌", False),
    ],
)
def test_reports_and_complaints_naming_a_danger_are_urgent(category: str, text: str, urgent: bool) -> None:
    assert bool(ROUTER.urgent(category, text)) is urgent
