"""The replica's one keep-alive timer: every held stream that wrote nothing for an interval is woken, no other."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from higress_ops.transport.keepalive import KeepAlives

pytestmark = pytest.mark.anyio


class Stream:
    """A held stream as the wheel sees it; it "writes" its keep-alive as soon as it is woken."""

    def __init__(self, wheel: KeepAlives) -> None:
        self.wheel = wheel
        self.wrote = 0
        self.over = False
        self.woken_at: list[int] = []  # the wheel's ticks at each keep-alive
        self.early: list[tuple[int, int]] = []  # (tick, last write) of any keep-alive before an interval passed

    def keepalive(self) -> None:
        if self.wheel.now < self.wrote + KeepAlives.SLOTS:
            self.early.append((self.wheel.now, self.wrote))
        self.woken_at.append(self.wheel.now)
        self.wrote = self.wheel.now

    def write(self) -> None:
        self.wrote = self.wheel.now


async def until(condition: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the wheel never got there"
        await asyncio.sleep(0.01)


async def test_idle_streams_are_woken_every_interval_and_writing_ones_only_an_interval_after_a_write() -> None:
    wheel = KeepAlives(0.04)
    idle, busy = Stream(wheel), Stream(wheel)
    wheel.hold(idle)
    wheel.hold(busy)

    async def write_now_and_then() -> None:
        while not busy.over:
            busy.write()
            await asyncio.sleep(random.uniform(0, 0.06))  # sometimes longer than the interval

    writer = asyncio.create_task(write_now_and_then())
    await until(lambda: len(idle.woken_at) >= 5)
    busy.over = idle.over = True
    await writer
    gaps = {b - a for a, b in zip(idle.woken_at, idle.woken_at[1:], strict=False)}
    assert gaps == {KeepAlives.SLOTS}  # in ticks: exactly one interval between an idle stream's keep-alives
    assert idle.early == [] and busy.early == []  # nobody is woken before an interval without a write
    await until(lambda: len(wheel) == 0)  # streams that are over are dropped ...
    await until(lambda: not wheel.running)  # ... and with none held the timer stops


async def test_a_stream_held_after_the_timer_stopped_is_kept_alive_again() -> None:
    wheel = KeepAlives(0.04)
    first = Stream(wheel)
    wheel.hold(first)
    await until(lambda: len(first.woken_at) >= 1)
    first.over = True
    await until(lambda: not wheel.running)
    second = Stream(wheel)
    wheel.hold(second)
    await until(lambda: len(second.woken_at) >= 2)
    second.over = True
    assert second.early == []
