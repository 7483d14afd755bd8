"""Every SSE stream's keep-alives on a replica from one timer.

A held stream that sends nothing writes a comment line every `interval` seconds, so proxies and clients do not
take it for dead. With a timer per stream, 10,000 idle streams are 10,000 timers made and cancelled every
interval (and `asyncio.wait_for` adds a task per wait). Here one timer ticks `SLOTS` times per interval and wakes
only the streams that are due; each then writes its own keep-alive. The timer stops when no stream is held.

A stream is due when it wrote nothing for `SLOTS` ticks, counted from the tick of its last write: its keep-alive
comes between (SLOTS - 1) / SLOTS of the interval and the interval after that write, never later (unless the
loop itself is late). A stream leaves at its next slot after it says it is over.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Paced(Protocol):
    """A stream the wheel keeps alive."""

    wrote: int  # the wheel's tick (`KeepAlives.now`) when it last wrote
    over: bool  # it ended: the wheel drops it

    def keepalive(self) -> None:
        """Write a keep-alive soon (it did not write for an interval)."""
        ...


class KeepAlives:
    SLOTS = 4

    def __init__(self, interval: float) -> None:
        if interval <= 0:
            raise ValueError(f"the keep-alive interval must be > 0 seconds, got {interval}")
        self.interval = interval
        self.now = 0  # the current tick: a stream records it as `wrote` when it writes
        self._tick = interval / self.SLOTS
        self._slots: dict[int, list[Paced]] = {}  # tick -> the streams to look at then
        self._held = 0  # streams in the slots
        self._origin = 0.0  # loop time of tick 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def hold(self, stream: Paced) -> None:
        """Keep `stream` alive until it is over; it counts as having written now."""
        if self._timer is None:
            self._start()
        stream.wrote = self.now
        self._slots.setdefault(self.now + self.SLOTS, []).append(stream)
        self._held += 1

    def __len__(self) -> int:
        """Streams held, counting those over but not dropped yet."""
        return self._held

    @property
    def running(self) -> bool:
        """The timer is set: some stream is held."""
        return self._timer is not None

    def _start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._origin = loop.time() - self.now * self._tick  # tick numbers go on from where they stopped
        self._arm()

    def _arm(self) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_at(self._origin + (self.now + 1) * self._tick, self._fire)

    def _fire(self) -> None:
        assert self._loop is not None
        due = max(self.now + 1, int((self._loop.time() - self._origin) / self._tick))  # late: catch up
        slots, period = self._slots, self.SLOTS
        while self.now < due:
            self.now += 1
            for stream in slots.pop(self.now, ()):
                if stream.over:
                    self._held -= 1
                    continue
                next_due = stream.wrote + period
                if next_due <= self.now:
                    stream.keepalive()
                    next_due = self.now + period
                slots.setdefault(next_due, []).append(stream)
        if self._held:
            self._arm()
        else:
            self._timer = None
