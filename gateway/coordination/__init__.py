"""Coordination between the gateway's workers: dedupe, per-conversation locks, pub/sub, rate limits, a shared cache.

One interface, two implementations: in-process (the default, a single worker) and Redis (`REDIS_URL`, required for
more than one worker). A shared contract test runs against both.
"""

from __future__ import annotations

from gateway.coordination.base import Coordination, LockTimeout, Subscription
from gateway.coordination.memory import InProcessCoordination
from gateway.coordination.redis import RedisCoordination


def build_coordination(redis_url: str, key_prefix: str = "gw:") -> Coordination:
    if redis_url:
        return RedisCoordination(redis_url, key_prefix=key_prefix)
    return InProcessCoordination()


__all__ = [
    "Coordination",
    "InProcessCoordination",
    "LockTimeout",
    "RedisCoordination",
    "Subscription",
    "build_coordination",
]
