"""Redis coordination: what several gateway workers need to agree on (dedupe, locks, pub/sub, limits, cache).

One pub/sub connection per process fans messages out to local subscribers, so a thousand open web-chat sockets
do not hold a thousand Redis connections.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.exceptions import LockError

from gateway.coordination.base import LockTimeout
from gateway.coordination.memory import _QueueSubscription

log = structlog.get_logger(__name__)


class RedisCoordination:
    def __init__(self, url: str, *, key_prefix: str = "gw:") -> None:
        self.prefix = key_prefix
        self.client: aioredis.Redis = aioredis.from_url(url, decode_responses=True)
        self._pubsub: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._subscribers: dict[str, set[_QueueSubscription]] = {}
        self._pubsub_lock = asyncio.Lock()

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def first_seen(self, key: str, ttl_seconds: float) -> bool:
        created = await self.client.set(self._k("seen:" + key), "1", nx=True, px=int(ttl_seconds * 1000))
        return bool(created)

    @asynccontextmanager
    async def lock(self, name: str, *, hold_seconds: float = 120.0, wait_seconds: float = 60.0
                   ) -> AsyncIterator[None]:
        # hold_seconds bounds how long a crashed worker can block a conversation.
        lock = self.client.lock(
            self._k("lock:" + name), timeout=hold_seconds, blocking_timeout=wait_seconds, sleep=0.01
        )
        acquired = await lock.acquire()
        if not acquired:
            raise LockTimeout(name)
        try:
            yield
        finally:
            with suppress(LockError):  # expired while held: someone else may have it now; nothing to undo
                await lock.release()

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        await self.client.publish(self._k("topic:" + topic), json.dumps(message, ensure_ascii=False))

    async def _ensure_listener(self) -> None:
        if self._pubsub is None:
            self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="redis-pubsub")

    async def _listen(self) -> None:
        while True:
            try:
                if not self._pubsub.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection: redis-py reconnects and resubscribes on next read
                log.warning("coordination.pubsub_error", error=str(exc))
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            topic = str(message["channel"])[len(self._k("topic:")) :]
            try:
                data = json.loads(message["data"])
            except (TypeError, ValueError):
                continue
            for sub in list(self._subscribers.get(topic, ())):
                with suppress(asyncio.QueueFull):
                    sub.queue.put_nowait(data)

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[_QueueSubscription]:
        sub = _QueueSubscription()
        async with self._pubsub_lock:
            await self._ensure_listener()
            first = topic not in self._subscribers
            self._subscribers.setdefault(topic, set()).add(sub)
            if first:
                await self._pubsub.subscribe(self._k("topic:" + topic))
        try:
            yield sub
        finally:
            async with self._pubsub_lock:
                subs = self._subscribers.get(topic)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self._subscribers[topic]
                        with suppress(Exception):
                            await self._pubsub.unsubscribe(self._k("topic:" + topic))

    async def allow(self, key: str, limit: int, window_seconds: float) -> bool:
        k = self._k("rate:" + key)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incr(k)
            pipe.pexpire(k, int(window_seconds * 1000), nx=True)
            count, _ = await pipe.execute()
        return int(count) <= limit

    async def get(self, key: str) -> str | None:
        value = await self.client.get(self._k("kv:" + key))
        return None if value is None else str(value)

    async def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None:
        px = None if ttl_seconds is None else int(ttl_seconds * 1000)
        await self.client.set(self._k("kv:" + key), value, px=px)

    async def delete(self, key: str) -> None:
        await self.client.delete(self._k("kv:" + key))

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._listener
        if self._pubsub is not None:
            with suppress(Exception):
                await self._pubsub.aclose()
        await self.client.aclose()
