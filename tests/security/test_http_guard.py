"""Limits before parsing, headers that keep staff pages out of frames, metrics behind a token: against the real
app (create_app) in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from tests.channels.support import StandInRasa, gateway_settings, running_gateway

TWENTY_MB = 20 * 1024 * 1024


async def test_an_oversized_body_is_refused_before_it_is_read(tmp_path: Path, rasa: StandInRasa) -> None:
    async with running_gateway(gateway_settings(tmp_path, rasa)) as gateway:
        pulled = 0

        async def body() -> AsyncIterator[bytes]:
            nonlocal pulled
            for _ in range(TWENTY_MB // 65536):
                pulled += 65536
                yield b"x" * 65536

        declared = await gateway.client.post(
            "/channels/rest/webhook", content=b"{}", headers={"Content-Length": str(TWENTY_MB),
                                                              "Content-Type": "application/json"})
        assert declared.status_code == 413
        assert "larger" in declared.json()["detail"]
        streamed = await gateway.client.post("/channels/rest/webhook", content=body(),
                                             headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413
        assert pulled < TWENTY_MB  # cut off near the route's limit, not read to the end
        for path in ("/channels/sms/webhook", "/api/inbox/login", "/api/kb/articles", "/actions/webhook"):
            response = await gateway.client.post(path, content=b"{}", headers={"Content-Length": str(TWENTY_MB)})
            assert response.status_code == 413, path
        assert rasa.calls == []
        # A body within the limit still works.
        fine = await gateway.client.post("/channels/rest/webhook", json={"sender": "a", "message": "hi"})
        assert fine.status_code == 200


async def test_a_bad_content_length_is_a_clear_400(tmp_path: Path, rasa: StandInRasa) -> None:
    async with running_gateway(gateway_settings(tmp_path, rasa)) as gateway:
        response = await gateway.client.post("/channels/rest/webhook", content=b"{}",
                                             headers={"Content-Length": "lots"})
        assert response.status_code == 400


async def test_staff_pages_cannot_be_framed(tmp_path: Path, rasa: StandInRasa) -> None:
    async with running_gateway(gateway_settings(tmp_path, rasa, webchat_enabled=True)) as gateway:
        for path in ("/inbox/login", "/inbox", "/studio", "/"):
            response = await gateway.client.get(path)
            assert response.headers["x-frame-options"] == "DENY", path
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path
            assert response.headers["x-content-type-options"] == "nosniff"
        studio = await gateway.client.get("/studio")
        assert "script-src 'self'" in studio.headers["content-security-policy"]


async def test_metrics_need_a_token(tmp_path: Path, rasa: StandInRasa) -> None:
    async with running_gateway(gateway_settings(tmp_path, rasa)) as gateway:
        assert (await gateway.client.get("/metrics")).status_code == 403  # no token configured: closed
    async with running_gateway(gateway_settings(tmp_path, rasa, metrics_token="prometheus-scrape-token")) as gateway:
        assert (await gateway.client.get("/metrics")).status_code == 401
        wrong = await gateway.client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        right = await gateway.client.get("/metrics", headers={"Authorization": "Bearer prometheus-scrape-token"})
        assert right.status_code == 200 and "gateway_inbound_messages_total" in right.text
