"""Reading work-order fields out of what citizens type: phone numbers, a place in a report, corrections.

Pure functions (no Rasa), so the form's behaviour on real phrasings is unit-tested directly. Places are found by
patterns over the citizen's own words and kept exactly as written; no NLU entity is ever used for them (an entity
extractor once overwrote a whole street address with a recognised place name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CATEGORIES = ("consultation", "complaint", "report", "suggestion", "praise")
CATEGORY_OF_INTENT = {"report_problem": "report", "complain": "complaint"}

# Chinese mobile numbers, and landlines with an area code (010-12345678, 0571 8765 4321).
_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)0\d{2,3}-?\d{7,8}(?!\d)")
_PHONE_NOISE = re.compile(r"(?<=\d)[\s\-()（）]+(?=\d)")
_COUNTRY_CODE = re.compile(r"(?:\+|00)86[\s-]?")


def find_phone(text: str) -> str | None:
    """The first valid phone number in `text`, normalised (mobile: 11 digits; landline: 0AAA-NNNNNNNN)."""
    cleaned = _COUNTRY_CODE.sub("", text)
    # Spaces and dashes inside a number ("138 1234 5678") are joined; a landline keeps one dash after its area code.
    joined = _PHONE_NOISE.sub("", cleaned)
    mobile = _MOBILE.search(joined)
    if mobile:
        return mobile.group(0)
    for candidate in (cleaned, joined):
        landline = _LANDLINE.search(candidate.replace(" ", "-"))
        if landline:
            digits = landline.group(0).replace("-", "")
            area = 3 if digits[1] in "12" else 4  # 010, 02x: three-digit area codes; the rest four
            return f"{digits[:area]}-{digits[area:]}"
    return None


def valid_phone(value: object) -> str | None:
    """`value` as a normalised phone number when it is one, else None."""
    return find_phone(value) if isinstance(value, str) else None


# A Chinese street address: a name ending in 路/街/大道/巷/弄 (not 路灯, 路面, 路边 ...), optionally "和/与 another
# street", "路口", a house number, and "小区/门口/附近" after it; or a named place (小区, 公园, 广场 ...).
_ZH_STREET = r"[\u4e00-\u9fff]{1,10}?(?<![线电网思套出退来去站条])(?:大道|路|街|巷|弄)(?![灯面边上过况线由人费])"
_ZH_NUMBER = r"(?:\d+|[一二三四五六七八九十百]+)"
_ZH_SPOT = (r"(?:[\u4e00-\u9fff\d]{0,8}?(?:小区|花园|公园|广场|市场|医院|学校|中学|小学|幼儿园|地铁站|公交站|车站|大桥|"
            r"大厦|商场|超市|工地|菜市场|博物馆|图书馆))?")
_ZH_BUILDING = rf"(?:{_ZH_NUMBER}(?:号楼|栋|幢|单元|号院|号|层|期|出口|号门))*"
_ZH_SIDE = (r"(?:[东西南北]?门(?:口|外面?)?|[A-Za-z]\d?(?:出口|口)|对面|旁边|附近|[东西南北]侧|后面|前面|楼下|入口|"
            r"出口|拐角|桥头|边上|外面|里面|地下车库|车库|停车场|那段(?:路|人行道)?|这段(?:路|人行道)?|那边|这边)*")
_ZH_ADDRESS = re.compile(
    rf"{_ZH_STREET}(?:[和与跟及]{_ZH_STREET})?"
    r"(?:交叉口|十字路口|路口|口)?"
    r"(?:\d+(?:-\d+)?号(?:院|楼)?)?"
    rf"{_ZH_SPOT}{_ZH_BUILDING}{_ZH_SIDE}"
)
_ZH_PLACE = re.compile(
    r"[\u4e00-\u9fff]{2,8}?(?:小区|花园|公园|广场|市场|菜场|医院|中学|小学|学校|幼儿园|地铁站|公交站|总站|车站|大桥|桥|大厦|"
    r"商场|博物馆|图书馆|新村|家园|公寓|[一二三四五六七八九十\d]区|苑)"
    rf"{_ZH_BUILDING}{_ZH_SIDE}"
)
_ZH_LEADING = re.compile(r"^(?:在|于|的|我家|我们|就在|位于|楼下|门口|家门口|附近)+")
# Words before a place that belong to the sentence, not the place ("我去年十月在解放路" → "解放路").
_ZH_CLAUSE = re.compile(r"^.*(?:在|于|到|从|把|说是|就是|建议|希望|那个|这个|去年|今年|昨天|前天|上周|家住)")
_ZH_NAMED = re.compile(
    r"大道|路|街|巷|弄|小区|花园|公园|广场|市场|菜场|医院|学校|中学|小学|幼儿园|站|桥|大厦|商场|博物馆|图书馆|新村|家园|公寓|"
    r"[一二三四五六七八九十\d]区|苑"
)
_ZH_GENERIC_STREETS = {"马路", "公路", "道路", "大路", "小路", "街道", "大街", "一条路", "这条路", "那条路", "路上"}

_EN_SUFFIX = (r"(?i:road|rd|street|st|avenue|ave|lane|ln|boulevard|blvd|bridge|square|park|plaza|way|court|"
              r"gardens?|estate|village|residence|community|market|mall|station|school|hospital|museum|library)\b\.?")
_EN_NAMED = rf"(?:[A-Z][a-z]+\s+){{1,3}}{_EN_SUFFIX}"
_EN_NUMBERED = rf"(?:(?:No\.?|Number)\s*\d+[A-Za-z]?,?\s+|\d+[A-Za-z]?\s+)?{_EN_NAMED}"
_EN_UNIT = (r"(?:(?:(?:the\s+)?(?:north|south|east|west|main|back|front)\s+(?:gate|entrance|exit)|"
            r"(?:Building|Block|Tower|Unit|Gate|Exit|Entrance|exit|gate|entrance)\s+\w+)"
            r"(?:\s+(?:of|at|in)\s+(?:the\s+)?|,\s+))")
_EN_STREET = rf"{_EN_UNIT}?{_EN_NUMBERED}(?:,?\s+(?:on|off|at|in)\s+{_EN_NUMBERED})?"
_EN_ADDRESS = re.compile(rf"{_EN_STREET}(?:\s+(?:and|&)\s+{_EN_NAMED})?")


def find_location(text: str) -> str | None:
    """A place named in a report ("解放路和人民路路口", "No. 5 Heping Road", "Building 3 of Lakeside Court on Xinhua
    Road"), exactly as written, or None."""
    for pattern in (_ZH_ADDRESS, _ZH_PLACE):
        for match in pattern.finditer(text):
            place = _ZH_LEADING.sub("", _ZH_CLAUSE.sub("", match.group(0)))
            if len(place) >= 3 and place not in _ZH_GENERIC_STREETS and _ZH_NAMED.search(place):
                return place
    english = _EN_ADDRESS.search(text)
    return english.group(0).rstrip(".,") if english else None


# Words that only say "I want to report / complain" without saying what happened.
_ZH_FILLER = re.compile(
    r"我要|我想|想要|要|帮我|请|麻烦|一下|一个|个|我|有|反映|举报|投诉|报修|报告|问题|事情|情况|情|事|下|点|建议|"
    r"表扬|咨询|工单|提交|登记|市民|热线|[\s，。！？,.!?~～]"
)
_EN_FILLER = {
    "i", "want", "to", "would", "like", "make", "a", "an", "the", "file", "report", "complaint", "complain",
    "problem", "issue", "about", "something", "please", "can", "you", "help", "me", "with", "need", "submit",
    "there", "is", "have", "got", "lodge", "raise", "my", "it", "this", "that", "some", "one",
}  # fmt: skip


def is_descriptive(text: str) -> bool:
    """Whether the message says what happened (not only "我要投诉" / "I want to report a problem")."""
    if re.search(r"[\u4e00-\u9fff]", text):
        return len(_ZH_FILLER.sub("", text)) >= 4
    words = re.findall(r"[A-Za-z0-9']+", text.lower())
    return len([w for w in words if w not in _EN_FILLER]) >= 2


@dataclass(frozen=True)
class Correction:
    """The citizen changed one field: which (a slot name) and the new value, as typed."""

    field: str
    value: str


_FIELD_WORDS = {
    "location": ("地址", "地点", "位置", "事发地点", "地方", "address", "location", "place"),
    "phone": ("电话号码", "手机号码", "联系电话", "手机号", "电话", "手机", "号码", "phone number", "phone", "number"),
    "description": ("问题描述", "描述", "内容", "情况", "事情", "description", "details"),
    "category": ("类别", "类型", "分类", "category", "type"),
}
_ZH_FIELD = "|".join(sorted((w for ws in _FIELD_WORDS.values() for w in ws if re.search("[一-鿿]", w)), key=len)[::-1])
_ZH_CORRECTION = re.compile(
    rf"(?P<field>{_ZH_FIELD})\s*(?:应该)?(?:改成|改为|换成|更正为|修改为|更改为|改一下[,，]?|应该是|其实是|是)\s*[:：]?\s*"
    r"(?P<value>.+)"
)
_EN_FIELD = r"address|location|place|phone number|phone|number|description|details|category|type"
_EN_CORRECTION = (
    re.compile(
        rf"\b(?:change|update|correct|set|make)\s+(?:the\s+|my\s+)?(?P<field>{_EN_FIELD})\s+(?:to|into)\s+"
        r"(?P<value>.+)",
        re.IGNORECASE,
    ),
    re.compile(
        rf"\b(?:the\s+|my\s+)?(?P<field>{_EN_FIELD})\s+(?:is actually|should be|is)\s+(?P<value>.+)", re.IGNORECASE
    ),
)
_CATEGORY_WORDS = {
    "complaint": ("投诉", "complaint", "complain"),
    "report": ("报修", "反映", "举报", "报告", "report", "problem"),
    "consultation": ("咨询", "consultation", "question"),
    "suggestion": ("建议", "suggestion", "idea"),
    "praise": ("表扬", "感谢", "praise", "compliment", "thanks"),
}


def _field_of(word: str) -> str:
    word = word.lower()
    return next(field for field, words in _FIELD_WORDS.items() if word in words)


def find_correction(text: str) -> Correction | None:
    """ "地址改成解放路100号" / "change the address to 120 Jiefang Road" -> Correction("location", ...)."""
    text = text.strip()
    matches = [_ZH_CORRECTION.search(text), *(pattern.search(text) for pattern in _EN_CORRECTION)]
    match = next((m for m in matches if m), None)
    if match is None:
        return None
    value = match.group("value").strip().strip("。.!！\"'“”")
    if not value:
        return None
    return Correction(_field_of(match.group("field")), value)


def category_from_words(text: str) -> str | None:
    """The category a citizen named ("改成投诉", "make it a suggestion"), or None."""
    lowered = text.lower()
    for category, words in _CATEGORY_WORDS.items():
        if any(word in lowered for word in words):
            return category
    return lowered if lowered in CATEGORIES else None


_ZH_REPLACEMENT = re.compile(r"不是\s*(?P<old>[^，,\s]+?)\s*[，,\s]?\s*(?:而是|是|应该是)\s*(?P<new>.+)")
_EN_REPLACEMENT = re.compile(
    r"\bnot\s+(?P<old>.+?)\s*,?\s+(?:it is|it's|its|but|rather)\s+(?P<new>.+)", re.IGNORECASE
)


def find_replacement(text: str) -> tuple[str, str] | None:
    """ "不是人民路 是解放路" / "not Renmin Road, it's Jiefang Road" -> ("人民路", "解放路")."""
    for pattern in (_ZH_REPLACEMENT, _EN_REPLACEMENT):
        match = pattern.search(text.strip())
        if match:
            old, new = match.group("old").strip(), match.group("new").strip().strip("。.!！")
            if old and new:
                return old, new
    return None


_CHANGE_WORDS = re.compile(r"改|换|错|更正|修改|不对|change|update|correct|wrong|edit|fix|typo", re.IGNORECASE)


def field_to_change(text: str) -> str | None:
    """The field a citizen wants to change without giving the new value ("地址写错了", "edit the location")."""
    if not _CHANGE_WORDS.search(text):
        return None
    lowered = text.lower()
    for field, words in _FIELD_WORDS.items():
        if any(word in lowered for word in words):
            return field
    return None


# "Stop, do not file it", said in words (an NLU `deny` is not enough: "不是在小区里面，是在外面马路上" is a place).
# Strong: about the report itself. Weak ("算了", "never mind"): a cancel only when nothing else is said, since
# "门牌号我忘了，算了你就写学校旁边吧" answers the question.
_ZH_CANCEL = re.compile(
    r"不报了|不用报|不报修了|不投诉了|不反映了|不用登记|不要登记|别登记|不登记了|不提交|不用提交|别提交|撤销|撤回|"
    r"取消(?:工单|报修|投诉|登记|提交|吧|了)?|不办了|不弄了"
)
_EN_CANCEL = re.compile(
    r"\b(?:cancel(?:led|ed)?(?: (?:it|this|that|the report|the complaint|the order))?|"
    r"don'?t (?:file|submit|report|bother)|do not (?:file|submit|report)|drop (?:it|the report)|"
    r"(?:forget|scrap) (?:it|about it|the (?:report|complaint)))\b",
    re.IGNORECASE,
)
_ZH_WEAK_CANCEL = re.compile(r"算了|不用了|不要了|没事了|拉倒")
_EN_WEAK_CANCEL = re.compile(r"\b(?:never ?mind|nevermind|no need|not anymore|leave it)\b", re.IGNORECASE)
_CANCEL_FILLER = re.compile(
    r"[\s，。！？、,.!?~～…]|吧|了|啊|呀|哈|嗯|哦|那|就|还是|我|的|ok|okay|oh|well|then|just|please", re.IGNORECASE
)


def is_explicit_cancel(text: str) -> bool:
    """The citizen asks to stop the report in so many words ("算了不报了", "cancel, forget it")."""
    if _ZH_CANCEL.search(text) or _EN_CANCEL.search(text):
        return True
    if not (_ZH_WEAK_CANCEL.search(text) or _EN_WEAK_CANCEL.search(text)):
        return False
    rest = _CANCEL_FILLER.sub("", _EN_WEAK_CANCEL.sub("", _ZH_WEAK_CANCEL.sub("", text)))
    return len(rest) <= 3


_ZH_SHORT_NO = re.compile(r"^(?:不|不是|不对|不要|不用|没有|否|no|nope|nah)[\s。.!！~～了啊吧呀的]*$", re.IGNORECASE)


def is_plain_no(text: str) -> bool:
    """A bare "no" ("不", "不用", "no"), which at the read-back means "do not submit"."""
    return bool(_ZH_SHORT_NO.match(text.strip()))


# A citizen telling a grievance, even when it ends in a question ("这样的店凭什么还让它营业？"): what went wrong or how
# it feels, never only the word "complaint" (so "怎么投诉食品安全问题" stays a how-to question for the KB).
_ZH_GRIEVANCE = re.compile(
    r"凭什么|太差|没人管|不管不问|不处理|不作为|推诿|乱收费|强制|强迫|逼着|欺负|坑人|黑心|蟑螂|老鼠|苍蝇|变质|过期|发霉|"
    r"拉肚子|食物中毒|脏|臭|吵得|扰民|噪音|违规|违法|欠薪|拖欠|打人|骂人|态度恶劣|太过分|气死|受不了|忍无可忍|"
    r"投诉无门|一直没|好几次|多次|几个月了|半年了|还让它|怎么能|简直"
)
_EN_GRIEVANCE = re.compile(
    r"\b(?:disgust\w*|cockroach\w*|rats?|mice|mould|moldy|mouldy|filthy|dirty|stinks?|rude|overcharg\w*|"
    r"forced (?:us|me|them|parents) to|scam\w*|ripped off|illegal\w*|unbearable|ridiculous|outrageous|"
    r"nobody (?:does|did|cares)|no one (?:does|did|cares)|how (?:is|are) (?:this|they|it) (?:allowed|legal)|"
    r"why (?:is|are|does|do) .{3,60} (?:allowed|still open|get away)|for months|again and again|fed up|"
    r"food poisoning|sick after|unpaid wages|refus\w+ to pay)\b",
    re.IGNORECASE,
)


# Indignation: the citizen wants something done, not a procedure ("凭什么还让它营业", "how is this still allowed").
_ZH_INDIGNANT = re.compile(
    r"凭什么|还让它|还让他们|简直|气死|受不了|忍无可忍|太过分|怎么能这样|投诉无门|没人管|不管不问"
)
_EN_INDIGNANT = re.compile(
    r"\b(?:how (?:is|are|can|could) .{0,40}?(?:still )?(?:allowed|legal|open|get away)|outrageous|ridiculous|fed up|"
    r"disgust\w*|unacceptable|nobody (?:does|did|cares)|no one (?:does|did|cares)|sick of)\b",
    re.IGNORECASE,
)


def grievance(text: str) -> int:
    """0: not a grievance; 1: a story of something wrong (long enough to be one, with words of harm), a complaint
    the citizen may want filed beside the answer; 2: told with indignation, a complaint to file rather than a
    procedure to read."""
    zh = bool(re.search(r"[\u4e00-\u9fff]", text))
    story = (len(text) >= 18 and bool(_ZH_GRIEVANCE.search(text))) if zh else (
        len(text.split()) >= 9 and bool(_EN_GRIEVANCE.search(text)))
    if not story:
        return 0
    return 2 if (_ZH_INDIGNANT if zh else _EN_INDIGNANT).search(text) else 1


def tells_a_report(text: str) -> bool:
    """A story of a problem rather than a how-to question: long (the knowledge base's 1,200 sample questions are
    all under 41 Chinese characters or 23 English words), or medium and telling of harm or anger."""
    if re.search(r"[\u4e00-\u9fff]", text):
        length = len(re.sub(r"\s", "", text))
        return length >= 45 or (length >= 28 and grievance(text) > 0)
    words = len(text.split())
    return words >= 24 or (words >= 15 and grievance(text) > 0)
