"""Personal data never reaches staff's eyes in the review queue, nor the training files."""

from __future__ import annotations

import pytest

from gateway.privacy import EMAIL_MASK, ID_CARD_MASK, PHONE_MASK, mask_personal_data


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("我的电话13812345678请回电", f"我的电话{PHONE_MASK}请回电"),
        ("call me on +86 138-1234-5678 please", f"call me on {PHONE_MASK} please"),
        ("手机 0086 139 1234 5678", f"手机 {PHONE_MASK}"),
        ("座机0571-88889999或者(021)66667777", f"座机{PHONE_MASK}或者{PHONE_MASK}"),
        ("身份证号110105199003071234，帮我查", f"身份证号{ID_CARD_MASK}，帮我查"),
        ("id 11010519900307123x", f"id {ID_CARD_MASK}"),
        ("老身份证110105900307123", f"老身份证{ID_CARD_MASK}"),
        ("mail zhang.san+city@example.com.cn now", f"mail {EMAIL_MASK} now"),
        ("13812345678@qq.com", EMAIL_MASK),
        ("电话13812345678 邮箱a@b.cn 身份证110105199003071234",
         f"电话{PHONE_MASK} 邮箱{EMAIL_MASK} 身份证{ID_CARD_MASK}"),
    ],
)
def test_masks(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


@pytest.mark.parametrize(
    "text",
    ["工单BJ-20261123-0007进度", "8路公交改线了吗", "2026年11月23号", "社保卡丢了 补办要多久",
     "room 1203 of building 5", "付了120元", "order 12345678"],
)
def test_leaves_ordinary_numbers_alone(text: str) -> None:
    assert mask_personal_data(text) == text
