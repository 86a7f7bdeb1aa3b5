"""In-process coordination: correct for one worker process, nothing to install."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from gateway.coordination.base import LockTimeout


class _QueueSubscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)

    async def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class InProcessCoordination:
    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}  # seen-keys and cache keys share one expiry map
        self._values: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: dict[str, int] = {}
        self._windows: dict[str, tuple[float, int]] = {}
        self._subscribers: dict[str, set[_QueueSubscription]] = {}
        self._last_sweep = time.monotonic()

    def _sweep(self) -> None:
        # Bounded memory without a background task: drop expired keys at most once a second.
        now = time.monotonic()
        if now - self._last_sweep < 1.0:
            return
        self._last_sweep = now
        for key in [k for k, exp in self._expiry.items() if exp <= now]:
            self._expiry.pop(key, None)
            self._values.pop(key, None)
        for key in [k for k, (start, _) in self._windows.items() if start < now - 3600]:
            self._windows.pop(key, None)

    def _alive(self, key: str) -> bool:
        exp = self._expiry.get(key)
        return exp is None or exp > time.monotonic()

    async def first_seen(self, key: str, ttl_seconds: float) -> bool:
        self._sweep()
        seen_key = "seen:" + key
        if seen_key in self._values and self._alive(seen_key):
            return False
        self._values[seen_key] = "1"
        self._expiry[seen_key] = time.monotonic() + ttl_seconds
        return True

    @asynccontextmanager
    async def lock(self, name: str, *, hold_seconds: float = 120.0, wait_seconds: float = 60.0
                   ) -> AsyncIterator[None]:
        lock = self._locks.setdefault(name, asyncio.Lock())
        self._lock_users[name] = self._lock_users.get(name, 0) + 1
        try:
            try:
                await asyncio.wait_for(lock.acquire(), wait_seconds)
            except TimeoutError as exc:
                raise LockTimeout(name) from exc
            try:
                yield
            finally:
                lock.release()
        finally:
            self._lock_users[name] -= 1
            if self._lock_users[name] == 0:
                del self._lock_users[name]
                del self._locks[name]

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        for sub in list(self._subscribers.get(topic, ())):
            try:
                sub.queue.put_nowait(message)
            except asyncio.QueueFull:
                pass  # a stalled listener must not block the publisher; it reloads history on reconnect

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[_QueueSubscription]:
        sub = _QueueSubscription()
        self._subscribers.setdefault(topic, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._subscribers.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[topic]

    async def allow(self, key: str, limit: int, window_seconds: float) -> bool:
        self._sweep()
        now = time.monotonic()
        start, count = self._windows.get(key, (now, 0))
        if now - start >= window_seconds:
            start, count = now, 0
        if count >= limit:
            self._windows[key] = (start, count)
            return False
        self._windows[key] = (start, count + 1)
        return True

    async def get(self, key: str) -> str | None:
        if key in self._values and self._alive(key):
            return self._values[key]
        return None

    async def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None:
        self._values[key] = value
        if ttl_seconds is None:
            self._expiry.pop(key, None)
        else:
            self._expiry[key] = time.monotonic() + ttl_seconds

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)
        self._expiry.pop(key, None)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._subscribers.clear()
