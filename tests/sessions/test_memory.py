"""The in-memory session store: records, expiry and local stream delivery."""

from __future__ import annotations

import asyncio

import pytest

from higress_ops.sessions.base import SessionRecord
from higress_ops.sessions.memory import MemorySessionStore

pytestmark = pytest.mark.anyio


async def test_records_are_copies_and_saved_explicitly() -> None:
    store = MemorySessionStore(replica_id="r", ttl_seconds=60)
    await store.create(SessionRecord(id="s1", server="a", transport="streamable"))
    record = await store.get("s1")
    assert record is not None
    record.protocol_version = "2025-06-18"
    assert (await store.get("s1")).protocol_version is None  # type: ignore[union-attr]
    await store.save(record)
    assert (await store.get("s1")).protocol_version == "2025-06-18"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        await store.create(SessionRecord(id="s1", server="a", transport="streamable"))
    await store.delete("s1")
    assert await store.get("s1") is None
    await store.save(record)  # saving a deleted session does not bring it back
    assert await store.get("s1") is None


async def test_idle_sessions_expire_but_not_while_a_stream_is_open() -> None:
    store = MemorySessionStore(replica_id="r", ttl_seconds=0.2)
    await store.start()
    try:
        await store.create(SessionRecord(id="idle", server="a", transport="streamable"))
        await store.create(SessionRecord(id="held", server="a", transport="sse"))
        async with store.open_stream("held") as frames:
            await asyncio.sleep(0.5)
            assert await store.get("idle") is None
            assert await store.get("held") is not None
            assert store.count("sse") == 1 and store.count("streamable") == 0
            assert await store.deliver("held", b"frame")
            assert await frames.next(1) == b"frame"
            assert await frames.next(0.05) == b""  # timeout: time for a keep-alive
    finally:
        await store.aclose()


async def test_delete_ends_the_stream_and_delivery_needs_one() -> None:
    store = MemorySessionStore(replica_id="r")
    await store.create(SessionRecord(id="s", server="a", transport="sse"))
    assert not await store.deliver("s", b"x")
    async with store.open_stream("s") as frames:
        await store.delete("s")
        assert await frames.next(1) is None
        assert await frames.next(1) is None  # stays closed


async def test_a_stream_whose_client_stops_reading_is_cut_at_its_byte_cap() -> None:
    store = MemorySessionStore(replica_id="r", ttl_seconds=60, queue_bytes=10_000)
    await store.create(SessionRecord(id="slow", server="a", transport="sse"))
    async with store.open_stream("slow") as frames:
        frame = b"event: message\ndata: " + b"x" * 3_000 + b"\n\n"
        delivered = [await store.deliver("slow", frame) for _ in range(5)]
        assert delivered == [True, True, True, False, False]  # 3 frames fit in 10,000 bytes, the 4th cuts it
        assert await frames.next(0.1) is None  # the backlog was dropped and the stream ended: a disconnect


async def test_a_reading_client_gets_every_frame_under_the_cap() -> None:
    store = MemorySessionStore(replica_id="r", ttl_seconds=60, queue_bytes=10_000)
    await store.create(SessionRecord(id="fast", server="a", transport="sse"))
    async with store.open_stream("fast") as frames:
        for i in range(50):  # 50 x 3 KB in total, far over the cap, but never more than one frame behind
            assert await store.deliver("fast", b"%d" % i + b"y" * 3_000)
            assert (await frames.next(1)).startswith(b"%d" % i)  # type: ignore[union-attr]


async def test_a_reader_cancelled_while_waiting_loses_no_frame() -> None:
    store = MemorySessionStore(replica_id="r", ttl_seconds=60)
    await store.create(SessionRecord(id="c", server="a", transport="sse"))
    async with store.open_stream("c") as frames:
        waiting = asyncio.create_task(frames.next())
        await asyncio.sleep(0.01)
        assert await store.deliver("c", b"one")  # wakes the waiting reader ...
        waiting.cancel()  # ... which is cancelled before it runs: the frame stays queued
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await frames.next(1) == b"one"
        assert await frames.next(0.05) == b""


async def test_a_woken_reader_gets_no_frame_and_the_frames_still_come_in_order() -> None:
    store = MemorySessionStore(replica_id="r", ttl_seconds=60)
    await store.create(SessionRecord(id="w", server="a", transport="sse"))
    async with store.open_stream("w") as frames:
        waiting = asyncio.create_task(frames.next())
        await asyncio.sleep(0.01)
        frames.wake()  # what the keep-alive timer does
        assert await waiting == b""
        for i in range(3):
            assert await store.deliver("w", b"%d" % i)
        frames.wake()  # a wake-up with frames queued gives the frames first
        assert [await frames.next(1) for _ in range(3)] == [b"0", b"1", b"2"]
        await store.delete("w")
        assert await frames.next(1) is None


async def test_a_second_stream_for_a_session_replaces_the_first() -> None:
    store = MemorySessionStore(replica_id="r", ttl_seconds=60)
    await store.create(SessionRecord(id="two", server="a", transport="streamable"))
    async with store.open_stream("two") as old:
        async with store.open_stream("two") as new:
            assert await old.next(1) is None  # the older stream ends ...
            assert await store.deliver("two", b"x")
            assert await new.next(1) == b"x"  # ... and frames go to the newer one
        assert not await store.deliver("two", b"y")  # the newer one closed: nobody holds the session
    async with store.open_stream("two") as again:
        inner = store.open_stream("two")
        replacement = await inner.__aenter__()
        assert await again.next(1) is None
    assert await store.deliver("two", b"z")  # the older one leaving does not unregister its replacement
    assert await replacement.next(1) == b"z"
    await inner.__aexit__(None, None, None)
    assert not await store.deliver("two", b"w")
