"""The gateway's client of the dialogue engine (the Rasa server, bot/): one HTTP call per turn through the engine's
`gateway` input channel (bot/engine/gateway_channel.py), and whether the engine is ready."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx


class BotUnavailable(Exception):
    """Rasa is down, slow or answered with an error: the turn is kept and retried later."""


@dataclass
class BotTurn:
    messages: list[dict[str, Any]]
    intent: str | None = None
    confidence: float | None = None
    slots_set: dict[str, Any] = field(default_factory=dict)
    latest_action: str | None = None


class RasaClient:
    def __init__(self, base_url: str, http: httpx.AsyncClient, timeout_seconds: float = 10.0, token: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.timeout = timeout_seconds
        # The installation's secret: the input channel checks the bearer header, Rasa's HTTP API the token parameter.
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.api_params = {"token": token} if token else {}

    async def turn(self, sender: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        try:
            response = await self.http.post(
                f"{self.base_url}/webhooks/gateway/webhook",
                json={"sender": sender, "message": text, "metadata": metadata},
                headers=self.headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise BotUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise BotUnavailable(f"Rasa answered {response.status_code}: {response.text[:200]}")
        try:
            data = response.json()
        except ValueError as exc:
            raise BotUnavailable("Rasa answered something that is not JSON") from exc
        if isinstance(data, list):  # a plain REST channel answer, without the turn's metadata
            return BotTurn(messages=data)
        intent = data.get("intent") or {}
        return BotTurn(
            messages=list(data.get("messages") or []),
            intent=intent.get("name"),
            confidence=intent.get("confidence"),
            slots_set=dict(data.get("slots_set") or {}),
            latest_action=data.get("latest_action"),
        )

    async def is_ready(self) -> bool:
        """True when the server answers and has a model loaded."""
        try:
            response = await self.http.get(f"{self.base_url}/status", params=self.api_params, timeout=2.0)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        try:
            return bool(response.json().get("model_file"))
        except ValueError:
            return False
