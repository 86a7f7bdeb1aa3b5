"""A request for a person, in any tone, read from the words before the bot sees them.

The NLU learns `request_human` from examples; this is the net under it for what no example set covers well: the
angry ("叫你们领导出来说话", "I want your manager, now"), the sarcastic ("is there anyone with a brain there"), the
weary ("enough of the robot"). It needs a person word *and* a way of asking for one, so a complaint about staff
("工作人员态度太差") or a question about them ("窗口几点有人") stays with the bot.
"""

from __future__ import annotations

import re

# "人工" is a person, but not in 人工授精, 人工智能, 人工湖 …
_ZH_NOT_A_PERSON = r"(?!授精|智能|湖|降雨|增雨|费|耳蜗|关节|晶体|呼吸|流产|草坪|岛|河|林|养殖)"
_ZH_STAFF = (rf"(?:人工(?:客服|服务|坐席)?{_ZH_NOT_A_PERSON}|真人|活人|真的人|人类|客服(?:人员)?|工作人员|接线员|"
             r"话务员|坐席|同志|专人|值班的|(?:你们)?(?:的)?(?:领导|负责人|主管|经理|主任|管事的|当官的|能做主的|说了算的|能管事的)|"
             r"负责(?:这块|这个|这事|此事)?的(?:人|同志)|(?:长|有)脑子的(?:人)?|会思考的|喘气的|懂行的(?:人)?)")
_ZH_ASK = r"(?:转|转接|转给|接|找|叫|换|要|给我|让|请|安排|来|喊)"
# "叫个人来修" asks for a repair crew (a report), not for someone to talk to.
_ZH_NOT_TO_TALK = r"(?!\s*(?:过)?来?\s*(?:修|处理|维修|清理|清扫|看看|检查|抓|收))"
_ZH_PATTERNS = [
    rf"{_ZH_ASK}\s*(?:一下|一个|个|一位|位|你们的|你们|这边的)?\s*{_ZH_STAFF}",
    rf"{_ZH_ASK}\s*(?:一个|个|一位|位)(?:懂的|明白的|能解决问题的|能说话的|活|真)?人(?![命家民员]){_ZH_NOT_TO_TALK}",
    r"(?:叫|让|请)\s*(?:你们)?(?:领导|负责人|主管|经理|主任|管事的)\s*(?:出来|来|过来|接|跟我|和我|说话|回话)",
    r"(?:不想|不要|不愿意|受够了|懒得)\s*(?:再)?\s*(?:跟|和|同)?\s*(?:你这个?|这个?)?\s*(?:机器人|机器|ai|AI|电脑|自动回复)",
    r"(?:有没有|有木有|有没|还有没有|还有)\s*(?:个|一个|一位)?\s*.{0,8}?(?:真人|活人|人工|工作人员|客服|同志|"
    r"长脑子的|有脑子的|会思考的|喘气的|管事的|值班的|正常人|人在)",
    r"(?:跟|和|同)\s*(?:真人|活人|人工|工作人员|客服|领导|人)\s*(?:说|聊|谈|讲|沟通|通话|对话)",
    r"^\s*(?:(?:转)?人工|真人|人工服务|人工客服|找人工|要人工)(?:\s*[!！。.?？,，]*\s*(?:人工|真人))*\s*[!！。.?？]*\s*$",
    r"(?:机器人|机器|ai|AI|复读机).{0,12}(?:听不懂|不懂|没用|废物|白痴|弱智|答非所问|说不清|来一个).{0,12}(?:人|人工|来一个)",
    r"(?:打|回)(?:个)?电话给我|给我(?:回|打)(?:个)?电话|(?:人|他们|她们|同志|专人).{0,6}(?:联系我|跟我联系|和我联系|"
    r"与我联系|联系一下我|给我打电话|打给我)",
    r"当面.{0,6}(?:说|谈|讲|反映)",
    r"把\s*(?:你们)?(?:的)?(?:领导|负责人|主管|经理|主任|管事的|工作人员)\s*(?:叫|喊|请|找)\s*(?:来|过来|出来)",
    rf"(?:给我|赶紧|马上|快)\s*找(?:个)?人(?![家民]){_ZH_NOT_TO_TALK}",
    r"有没有人\s*(?:可以|能)?\s*(?:直接)?\s*(?:打电话|帮帮我|帮我|跟我|和我|教我)",
]
# An explicit ask for a person stands even beside words that would otherwise make it a complaint ("我要投诉…给我找个
# 负责人来").
_ZH_STRONG = (0, 2, 10, 11)
_EN_PERSON = (r"(?:human(?: being)?s?|real person|actual person|live person|person|people|agent|operator|"
              r"representative|rep|staff(?: member)?|member of staff|caseworker|case worker|someone|somebody|anyone|"
              r"anybody|manager|supervisor|boss|officer|customer service|service desk|whoever|someone in charge)")
_EN_PATTERNS = [
    rf"\b(?:speak|talk|chat|get through|be put through|explain this)\s+(?:to|with)\s+(?:a|an|some|your|the|one of "
    rf"your)?\s*(?:real|actual|live|proper|human)?\s*{_EN_PERSON}\b",
    rf"\b(?:get|give|put|connect|transfer|pass|escalate)\s+(?:me\s+)?(?:to|through to|with|over to)?\s*"
    rf"(?:a|an|your|the)?\s*(?:real|actual|live|human)?\s*{_EN_PERSON}\b",
    r"\b(?:i\s+)?(?:want|need|demand|require|would like|'d like)\s+(?:a|an|your|the|to speak to|to talk to|"
    r"to see)?\s*(?:real|actual|live|human)?\s*(?:human|person|agent|operator|manager|supervisor|representative|"
    r"boss|someone real|somebody real|staff member|member of staff|caseworker|someone in charge|someone who can)\b",
    r"\bis\s+there\s+(?:maybe\s+|perhaps\s+|even\s+)?(?:a|an|any|anyone|anybody|someone|somebody)\s*"
    r"(?:real|actual|human|alive|with a brain|"
    r"who (?:can|could|knows)|there|at all|staff|at the office)",
    r"\b(?:real|actual|live|living) (?:person|human|people)\b",
    r"\bany (?:people|humans|staff|one) (?:working|there|around|available|on duty)\b",
    r"\b(?:enough|done|sick|tired|fed up)\s+(?:of|with)\s+(?:the|this|you|your)?\s*(?:stupid\s+|useless\s+)?"
    r"(?:bot|robot|machine|ai|chatbot|automated)",
    r"\b(?:not|no)\s+(?:a|an|another|more)?\s*(?:bot|robot|machine|automated)\w*\b.{0,30}\b(?:human|person|someone)",
    r"\bnot (?:an? )?(?:automated (?:reply|answer)|bot|robot|chatbot)\b",
    r"^\s*(?:a\s+)?(?:human|agent|operator|representative|real person|person)\s*[.!]*\s*(?:please|pls|plz|now)?"
    r"\s*[!.?]*\s*$",
    r"\b(?:call|ring|phone)\s+me\s+(?:back|please|asap|now)\b",
    r"\b(?:can|could|would)\s+(?:a|an|some|the|one of your)?\s*(?:someone|somebody|anyone|staff(?: member)?|"
    r"caseworker|officer|person|agent|member of staff)\s+(?:actually\s+)?(?:call|ring|phone|contact|get in touch "
    r"with)\s+me",
    r"\bin person\b",
    r"(?:^|[.!?]\s+)(?:a\s+)?(?:real\s+)?(?:person|human)\s*[.!]+\s*(?:please)?[.!]*\s*$",
]
_EN_STRONG = (0, 1, 2)
_PATTERNS = [re.compile(p) for p in _ZH_PATTERNS] + [re.compile(p, re.IGNORECASE) for p in _EN_PATTERNS]
_STRONG = [_PATTERNS[i] for i in _ZH_STRONG] + [_PATTERNS[len(_ZH_PATTERNS) + i] for i in _EN_STRONG]
# A complaint about staff or a question about them is not a request for one.
_REPAIR = re.compile(r"修|维修|清理|send (?:someone|somebody)|fix|repair", re.IGNORECASE)
_NOT_A_REQUEST = re.compile(
    r"(?:态度|投诉|举报|工资|招聘|志愿者|几点|上班时间|下班|扫地机器人|机器人补贴|volunteer|attitude|complain|"
    r"report (?:a|the|an)|hiring|job|working hours|opening hours|robot vacuum|rude|salary|send (?:someone|somebody)|"
    r"fix|repair)",
    re.IGNORECASE,
)


def asks_for_a_person(text: str) -> bool:
    """Whether the message asks for a person (any tone, zh or en)."""
    if not text or text.startswith("/") or len(text) > 400:
        return False
    if not any(p.search(text) for p in _PATTERNS):
        return False
    if not _NOT_A_REQUEST.search(text):
        return True
    return any(p.search(text) for p in _STRONG) and not _REPAIR.search(text)
