"""The knowledge-base API under the real app: public search, staff editing with versions, the index following."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, Stack

pytestmark = pytest.mark.rasa
STAFF = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def search_ids(stack: Stack, q: str, **params: object) -> list[str]:
    response = httpx.get(f"{stack.base_url}/api/kb/search", params={"q": q, **params}, timeout=10)
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["results"]]


def eventually(check: object, seconds: float = 1.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(check())  # type: ignore[operator]


def test_staff_routes_need_the_token(stack: Stack) -> None:
    url = f"{stack.base_url}/api/kb/articles"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert httpx.post(url, json={}).status_code in (401, 422)
    listing = httpx.get(url, headers=STAFF)
    assert listing.status_code == 200 and len(listing.json()) >= 150


def test_article_lifecycle_is_searchable_within_a_second(stack: Stack) -> None:
    article_id = f"kb-culture_tourism-{900 + uuid.uuid4().int % 99}"
    body = {
        "id": article_id, "department": "culture_tourism",
        "title_zh": "滨江灯光秀观赏指南", "title_en": "Guide to the Binjiang river light show",
        "body_zh": "滨江灯光秀每晚19:30和20:30各一场，每场15分钟，最佳观赏点是滨江公园观景台，免费观看。",
        "body_en": "The Binjiang light show runs nightly at 19:30 and 20:30, 15 minutes each; free to watch.",
        "tags": ["灯光秀", "light show"], "questions": [],
    }
    created = httpx.post(f"{stack.base_url}/api/kb/articles", json=body, headers=STAFF, timeout=10)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    assert eventually(lambda: search_ids(stack, "灯光秀几点开始")[:1] == [article_id])
    again = httpx.post(f"{stack.base_url}/api/kb/articles", json=body, headers=STAFF, timeout=10)
    assert again.status_code == 409

    changed = {k: v for k, v in body.items() if k != "id"} | {"title_en": "Binjiang light show times", "note": "x"}
    updated = httpx.put(f"{stack.base_url}/api/kb/articles/{article_id}", json=changed, headers=STAFF, timeout=10)
    assert updated.status_code == 200 and updated.json()["version"] == 2

    deleted = httpx.delete(f"{stack.base_url}/api/kb/articles/{article_id}", headers=STAFF, timeout=10)
    assert deleted.status_code == 204
    assert eventually(lambda: article_id not in search_ids(stack, "灯光秀几点开始"))

    versions = httpx.get(f"{stack.base_url}/api/kb/articles/{article_id}/versions", headers=STAFF).json()
    assert [v["version"] for v in versions] == [3, 2, 1]
    restored = httpx.post(
        f"{stack.base_url}/api/kb/articles/{article_id}/versions/1/restore", headers=STAFF, timeout=10
    )
    assert restored.status_code == 200
    assert restored.json()["title_en"] == body["title_en"] and restored.json()["published"] is True
    assert eventually(lambda: search_ids(stack, "light show times")[:1] == [article_id])


def test_bad_article_input_gets_a_reason(stack: Stack) -> None:
    url = f"{stack.base_url}/api/kb/articles"
    assert httpx.post(url, json={"id": "bad id", "department": "transport", "title_zh": "x", "body_zh": "y"},
                      headers=STAFF).status_code == 422
    assert httpx.post(url, json={"id": "kb-transport-990", "department": "transport"},
                      headers=STAFF).status_code == 422
    assert httpx.get(f"{url}/kb-transport-999", headers=STAFF).status_code == 404
    assert httpx.put(f"{url}/kb-nope-001", headers=STAFF, json={"department": "x", "title_zh": "a",
                                                                "body_zh": "b"}).status_code == 404


def test_search_filters(stack: Stack) -> None:
    ids = search_ids(stack, "water bill", department="utilities", k=5)
    assert ids and all(i.startswith("kb-utilities-") for i in ids)
    english = httpx.get(f"{stack.base_url}/api/kb/search", params={"q": "水费怎么交", "lang": "en"}).json()
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in english["results"][0]["title"])
    assert httpx.get(f"{stack.base_url}/api/kb/search", params={"q": "x", "k": 0}).status_code == 422
    assert httpx.get(f"{stack.base_url}/api/kb/search", params={"q": "x", "lang": "fr"}).status_code == 422
