"""The review queue over the gateway's stored turns (SQLite and PostgreSQL): what counts as unsure, grouping,
order, masking, and decisions that take items off the queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.privacy import PHONE_MASK
from gateway.storage import Database
from kb_retrieval.store import ArticleStore
from studio.review import QueueItem, ReviewQueue, group_items, order_groups
from tests.studio.support import conversation, log_turns


def item(key: str, text: str, minutes_ago: float) -> QueueItem:
    return QueueItem(key, text, datetime.now(UTC) - timedelta(minutes=minutes_ago), {"low_confidence"})


def test_similar_messages_group_and_the_big_recent_groups_come_first() -> None:
    items = [
        item("m:1", "我的社保卡丢了怎么办", 30), item("m:2", "社保卡丢了怎么办？", 20),
        item("m:3", "社保卡丢了 怎么办啊", 10),
        item("m:4", "My social security card is lost", 5), item("m:5", "my social security card is lost!!", 4),
        item("m:6", "垃圾分类几点收", 1),
    ]
    groups = order_groups(group_items(items))
    assert [g.count for g in groups] == [3, 2, 1]
    assert groups[0].text == "社保卡丢了 怎么办啊"  # the newest wording stands for the group
    assert {i.key for i in groups[1].items} == {"m:4", "m:5"}
    assert [g.count for g in order_groups(group_items(items), "newest")] == [1, 2, 3]


async def test_the_queue_from_stored_turns(database: Database) -> None:
    conv = await conversation(database)
    ids = await log_turns(database, conv, [
        ("你好", "greet", 0.99),
        ("我的公积金能不能取出来装修 电话13812345678", "ask_question", 0.41),
        ("公积金能不能取出来装修", "ask_question", 0.38),
        ("asdfgh", "nlu_fallback", 0.2),
        ("我家门口的路灯坏了", "report_problem", 0.97),
        ("转人工", "request_human", 0.99),
    ])
    other = await conversation(database)
    await log_turns(database, other, [("这个月天气怎么样", "out_of_scope", 0.9)])
    queue = ReviewQueue(database, confidence_threshold=0.6)
    groups, waiting = await queue.groups()
    assert waiting == 5  # unsure messages; the two about 公积金 are one group
    by_text = {g["text"]: g for g in groups}
    assert set(by_text) == {"公积金能不能取出来装修", "asdfgh", "我家门口的路灯坏了", "这个月天气怎么样"}
    fund = by_text["公积金能不能取出来装修"]  # the newest wording stands for the group
    assert fund["count"] == 2 and fund["reasons"] == ["low_confidence"]
    assert f"我的公积金能不能取出来装修 电话{PHONE_MASK}" in fund["examples"]
    assert by_text["asdfgh"]["reasons"] == ["fallback", "low_confidence"]
    assert by_text["我家门口的路灯坏了"]["reasons"] == ["handoff"]  # the citizen asked for a person right after
    assert by_text["这个月天气怎么样"]["reasons"] == ["fallback"]
    assert groups[0] is fund  # the most frequent first
    assert all("13812345678" not in str(g) for g in groups)

    handled = await queue.decide(fund["keys"], "example", "editor", text="公积金能不能取出来装修",
                                 intent="ask_question")
    assert handled == 2
    assert await queue.decide(fund["keys"], "example", "editor") == 0  # twice is once
    await queue.decide(by_text["asdfgh"]["keys"], "dismissed", "editor")
    groups, waiting = await queue.groups()
    assert waiting == 2 and {g["text"] for g in groups} == {"我家门口的路灯坏了", "这个月天气怎么样"}
    assert await queue.labelled() == [("公积金能不能取出来装修", "ask_question")]
    assert ids[0] not in {int(k[2:]) for g in groups for k in g["keys"]}


async def test_a_thumbs_down_on_a_kb_answer_queues_the_question(database: Database) -> None:
    store = ArticleStore(database)
    await store.record_feedback("kb-transport-001", False, None, "公交卡退卡 押金 my mail a@b.cn")
    await store.record_feedback("kb-transport-001", True, None, "公交卡怎么办")
    groups, waiting = await ReviewQueue(database, 0.6).groups()
    assert waiting == 1
    assert groups[0]["text"] == "公交卡退卡 押金 my mail [email]"
    assert groups[0]["reasons"] == ["kb_thumbs_down"] and groups[0]["keys"][0].startswith("f:")
