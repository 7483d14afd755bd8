"""What the Redis store tests share: opening stores on a config, frames, and a delivery load that checks,
stream by stream, that every frame Redis accepted arrived, in order, and that every failure was an error."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from higress_ops.config.model import RedisConfig
from higress_ops.sessions.base import FrameStream, SessionRecord, StoreUnavailable
from higress_ops.sessions.redis import REDELIVERY_WINDOW, RedisSessionStore
from higress_ops.sessions.redis_client import CONNECT_TIMEOUT, SOCKET_TIMEOUT

# The documented worst case of one store call during a failover: the redelivery window, then one last
# publish bounded by the store's per-call timeout (a socket timeout and two connects). Longer is a hang.
CALL_BOUND = REDELIVERY_WINDOW + SOCKET_TIMEOUT + 2 * CONNECT_TIMEOUT + 0.5


def frame(payload: dict) -> bytes:
    return f"event: message\ndata: {json.dumps(payload)}\n\n".encode()


def new_record(sid: str, stream_replica: str | None = None) -> SessionRecord:
    return SessionRecord(id=sid, server="higress-ops-mcp-server", transport="sse", protocol_version="2024-11-05",
                         client_info={"name": "inspector", "version": "1.0", "extra": {}},
                         stream_replica=stream_replica)


@asynccontextmanager
async def open_store(config: RedisConfig, replica: str, ttl: float = 30,
                     password: str | None = None) -> AsyncIterator[RedisSessionStore]:
    """A started store whose pub/sub is connected; `password` as the Kubernetes source would resolve it."""
    s = RedisSessionStore.from_config(config, replica_id=replica, ttl_seconds=ttl, password=password)
    await s.start()
    assert await s.hub.wait_connected(10), "pub/sub never connected"
    try:
        yield s
    finally:
        await s.aclose()


async def next_frame(stream: AsyncIterator[bytes], timeout: float = 3) -> bytes:
    return await asyncio.wait_for(anext(stream), timeout)


@dataclass
class DeliveryLoad:
    """Streams held on replica `a`, frames sent from replica `b` round-robin until stopped.

    `accepted[sid]` are the sequence numbers `deliver` confirmed; `failed` counts the calls that raised
    StoreUnavailable (a clear, retryable error); `dropped` counts deliveries that returned False, which for a
    held stream would be a silent loss. `slowest` is the longest single call: nothing may hang."""

    a: RedisSessionStore
    b: RedisSessionStore
    session_ids: list[str]
    accepted: dict[str, list[int]] = field(default_factory=dict)
    received: dict[str, list[int]] = field(default_factory=dict)
    failed: int = 0
    failed_by: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    slowest: float = 0.0
    failures_at: list[float] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, stack: AsyncExitStack) -> list[asyncio.Task[None]]:
        """Create the records, open the streams on `a`, start the readers and the sender."""
        tasks: list[asyncio.Task[None]] = []
        for sid in self.session_ids:
            await self.a.create(new_record(sid, stream_replica=self.a.replica_id))
            stream = await stack.enter_async_context(self.a.open_stream(sid))
            self.accepted[sid], self.received[sid] = [], []
            tasks.append(asyncio.create_task(self._read(sid, stream)))
        tasks.append(asyncio.create_task(self._send()))
        return tasks

    async def _read(self, sid: str, stream: FrameStream) -> None:
        async for raw in stream:
            self.received[sid].append(json.loads(raw.decode().split("data: ", 1)[1])["seq"])

    async def _send(self) -> None:
        seq = 0
        while not self._stop.is_set():
            for sid in self.session_ids:
                seq += 1
                started = time.monotonic()
                try:
                    if await self.b.deliver(sid, frame({"seq": seq})):
                        self.accepted[sid].append(seq)
                    else:
                        self.dropped += 1
                except StoreUnavailable:
                    self.failed += 1
                    self.failed_by[sid] = self.failed_by.get(sid, 0) + 1
                    self.failures_at.append(started)
                    await asyncio.sleep(0.02)
                self.slowest = max(self.slowest, time.monotonic() - started)
            await asyncio.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()

    async def delivered_since(self, moment: float, timeout: float, among: list[str] | None = None) -> float:
        """Seconds after `moment` until every stream (of `among`) received a frame accepted after it."""
        watched = among or self.session_ids
        marks = {sid: len(self.accepted[sid]) for sid in watched}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(len(self.accepted[sid]) > marks[sid] and self.accepted[sid][-1] in self.received[sid]
                   for sid in watched):
                return time.monotonic() - moment
            await asyncio.sleep(0.01)
        raise AssertionError(f"not every stream received a new frame within {timeout}s")

    async def settle(self) -> None:
        """Stop sending and give the last accepted frames time to arrive."""
        self.stop()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
                self.accepted[s] and self.accepted[s][-1] not in self.received[s] for s in self.session_ids):
            await asyncio.sleep(0.02)

    def lost(self) -> dict[str, list[int]]:
        """Accepted frames that never arrived; and frames out of order show up as a mismatch too."""
        return {sid: sorted(set(self.accepted[sid]) - set(self.received[sid])) for sid in self.session_ids
                if set(self.accepted[sid]) - set(self.received[sid])}

    def in_order(self) -> bool:
        return all(self.received[sid] == sorted(self.received[sid]) for sid in self.session_ids)
