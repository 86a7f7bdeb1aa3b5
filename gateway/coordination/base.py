"""The coordination interface every implementation satisfies."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol


class LockTimeout(Exception):
    """The lock could not be taken in time."""


class Subscription(Protocol):
    async def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message on the topic, or None when the timeout passes."""
        ...


class Coordination(Protocol):
    async def first_seen(self, key: str, ttl_seconds: float) -> bool:
        """True the first time `key` is seen within `ttl_seconds`; False for a repeat."""
        ...

    def lock(self, name: str, *, hold_seconds: float = 120.0, wait_seconds: float = 60.0
             ) -> AbstractAsyncContextManager[None]:
        """Mutual exclusion across workers; raises LockTimeout when not taken within `wait_seconds`."""
        ...

    async def publish(self, topic: str, message: dict[str, Any]) -> None: ...

    def subscribe(self, topic: str) -> AbstractAsyncContextManager[Subscription]: ...

    async def allow(self, key: str, limit: int, window_seconds: float) -> bool:
        """A fixed-window rate limit: True while fewer than `limit` calls were allowed in this window."""
        ...

    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
