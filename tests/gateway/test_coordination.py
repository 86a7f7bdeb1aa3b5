"""One contract, two implementations: in-process and Redis (the real server at 127.0.0.1:6379)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.coordination import Coordination, InProcessCoordination, LockTimeout, RedisCoordination
from tests.conftest import REDIS_URL


@pytest.fixture(params=["in-process", "redis"])
async def coordination(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Coordination]:
    impl: Coordination
    if request.param == "redis":
        impl = RedisCoordination(REDIS_URL, key_prefix=redis_prefix)
    else:
        impl = InProcessCoordination()
    yield impl
    await impl.close()


async def test_first_seen_once_then_repeat(coordination: Coordination) -> None:
    assert await coordination.first_seen("sms:SM1", 60)
    assert not await coordination.first_seen("sms:SM1", 60)
    assert await coordination.first_seen("sms:SM2", 60)


async def test_first_seen_expires(coordination: Coordination) -> None:
    assert await coordination.first_seen("k", 0.2)
    await asyncio.sleep(0.35)
    assert await coordination.first_seen("k", 0.2)


async def test_first_seen_concurrent_only_one_wins(coordination: Coordination) -> None:
    results = await asyncio.gather(*(coordination.first_seen("race", 60) for _ in range(20)))
    assert results.count(True) == 1


async def test_lock_is_exclusive_and_ordered_work_does_not_interleave(coordination: Coordination) -> None:
    trace: list[str] = []

    async def worker(name: str) -> None:
        async with coordination.lock("conversation:1"):
            trace.append(f"{name}-in")
            await asyncio.sleep(0.02)
            trace.append(f"{name}-out")

    await asyncio.gather(*(worker(str(i)) for i in range(5)))
    for i in range(0, len(trace), 2):
        assert trace[i].endswith("-in") and trace[i + 1].endswith("-out")
        assert trace[i].split("-")[0] == trace[i + 1].split("-")[0]


async def test_locks_of_different_names_do_not_block(coordination: Coordination) -> None:
    async with coordination.lock("conversation:a"):
        async with coordination.lock("conversation:b", wait_seconds=0.5):
            pass


async def test_lock_wait_times_out(coordination: Coordination) -> None:
    async with coordination.lock("busy"):
        with pytest.raises(LockTimeout):
            async with coordination.lock("busy", wait_seconds=0.2):
                pass


async def test_lock_released_after_error(coordination: Coordination) -> None:
    with pytest.raises(RuntimeError):
        async with coordination.lock("x"):
            raise RuntimeError("boom")
    async with coordination.lock("x", wait_seconds=0.5):
        pass


async def test_publish_reaches_every_subscriber_of_the_topic_only(coordination: Coordination) -> None:
    async with coordination.subscribe("conversation:1") as first, coordination.subscribe("conversation:1") as second:
        async with coordination.subscribe("conversation:2") as other:
            await asyncio.sleep(0.05)  # Redis subscribes asynchronously
            await coordination.publish("conversation:1", {"type": "message", "text": "你好"})
            assert await first.get(timeout=2) == {"type": "message", "text": "你好"}
            assert await second.get(timeout=2) == {"type": "message", "text": "你好"}
            assert await other.get(timeout=0.2) is None


async def test_publish_without_subscribers_is_fine(coordination: Coordination) -> None:
    await coordination.publish("nobody", {"x": 1})


async def test_messages_arrive_in_publish_order(coordination: Coordination) -> None:
    async with coordination.subscribe("t") as sub:
        await asyncio.sleep(0.05)
        for i in range(20):
            await coordination.publish("t", {"i": i})
        got = [await sub.get(timeout=2) for _ in range(20)]
    assert [g["i"] for g in got if g] == list(range(20))


async def test_rate_limit_window(coordination: Coordination) -> None:
    allowed = [await coordination.allow("search:1.2.3.4", 3, 0.5) for _ in range(5)]
    assert allowed == [True, True, True, False, False]
    await asyncio.sleep(0.6)
    assert await coordination.allow("search:1.2.3.4", 3, 0.5)


async def test_cache_set_get_expire_delete(coordination: Coordination) -> None:
    assert await coordination.get("token") is None
    await coordination.set("token", "abc", ttl_seconds=0.3)
    assert await coordination.get("token") == "abc"
    await asyncio.sleep(0.4)
    assert await coordination.get("token") is None
    await coordination.set("forever", "1")
    await coordination.delete("forever")
    assert await coordination.get("forever") is None


async def test_ping(coordination: Coordination) -> None:
    await coordination.ping()


async def test_redis_locks_exclude_across_two_clients(redis_prefix: str) -> None:
    """Two workers (two clients) on one Redis: the lock holds across them."""
    a = RedisCoordination(REDIS_URL, key_prefix=redis_prefix)
    b = RedisCoordination(REDIS_URL, key_prefix=redis_prefix)
    try:
        async with a.lock("conversation:9"):
            with pytest.raises(LockTimeout):
                async with b.lock("conversation:9", wait_seconds=0.2):
                    pass
        assert await a.first_seen("dup", 60)
        assert not await b.first_seen("dup", 60)
        async with b.subscribe("inbox") as sub:
            await asyncio.sleep(0.05)
            await a.publish("inbox", {"n": 1})
            assert await sub.get(timeout=2) == {"n": 1}
    finally:
        await a.close()
        await b.close()
