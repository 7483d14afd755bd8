"""Tool calls running at once per session, or per identity for 2026-07-28 calls (they have no session): up to
`running` at once, then a first-come-first-served queue bounded in calls and bytes, and past it a refusal.

Models routinely send a handful of calls in parallel; queueing the excess costs a waiting future, refusing it
costs the client a retry. The bound on queued bytes keeps a legacy SSE client, whose POSTs are answered 202 at
once, from parking unlimited request bodies here. Taking a free slot is a counter: no await, no allocation.
"""

from __future__ import annotations

import asyncio
from collections import deque


class QueueFull(Exception):
    """No slot and no room to wait: the caller should retry later."""


class CallSlots:
    def __init__(self, running: int, queued: int, queued_bytes: int) -> None:
        self.running = running
        self.queued = queued
        self.queued_bytes = queued_bytes
        self._running: dict[str, int] = {}  # key -> calls running
        self._waiting: dict[str, deque[tuple[asyncio.Future[None], int]]] = {}  # key -> (waiter, bytes), oldest first
        self._waiting_bytes: dict[str, int] = {}

    def take(self, key: str) -> bool:
        """A slot now, if one is free. A waiter is only ever queued while every slot is taken, so a free slot
        means nobody is waiting and taking it jumps no queue."""
        running = self._running.get(key, 0)
        if running < self.running:
            self._running[key] = running + 1
            return True
        return False

    async def wait(self, key: str, size: int) -> None:
        """Wait in line for a slot (`size`: the call's bytes); QueueFull when the line is full."""
        line = self._waiting.get(key)
        if line is None:
            line = self._waiting[key] = deque()
        held = self._waiting_bytes.get(key, 0)
        if len(line) >= self.queued or held + size > self.queued_bytes:
            if not line:
                del self._waiting[key]
            raise QueueFull
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line.append((waiter, size))
        self._waiting_bytes[key] = held + size
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(key)  # the slot was handed over just as this call was cancelled: pass it on
            else:
                self._leave(key, waiter, size)
            raise

    def release(self, key: str) -> None:
        """A call holding a slot ended: hand the slot to the oldest waiter, else free it."""
        line = self._waiting.get(key)
        while line:
            waiter, size = line.popleft()
            self._unqueue(key, line, size)
            if not waiter.done():
                waiter.set_result(None)
                return
        left = self._running.get(key, 1) - 1
        if left > 0:
            self._running[key] = left
        else:
            self._running.pop(key, None)

    def _leave(self, key: str, waiter: asyncio.Future[None], size: int) -> None:
        line = self._waiting.get(key)
        if line is None:
            return
        try:
            line.remove((waiter, size))
        except ValueError:
            return  # already taken off the line by release()
        self._unqueue(key, line, size)

    def _unqueue(self, key: str, line: deque[tuple[asyncio.Future[None], int]], size: int) -> None:
        held = self._waiting_bytes.get(key, 0) - size
        if line:
            self._waiting_bytes[key] = held
        else:
            self._waiting.pop(key, None)
            self._waiting_bytes.pop(key, None)

    def running_for(self, key: str) -> int:
        return self._running.get(key, 0)

    def waiting_for(self, key: str) -> int:
        return len(self._waiting.get(key, ()))
