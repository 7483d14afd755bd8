"""What each HTTP connection keeps for as long as it is open, made small, and the disconnect extension.

An idle SSE stream is a connection that stays open for hours, so what uvicorn's protocol keeps per connection
is most of what a stream costs. Three of its objects are an empty `collections.deque` each (~760 bytes: a deque
allocates a 64-slot block up front): the request pipeline, the flow control's "writable" `asyncio.Event` and the
request's `message_event`. `Pipeline`, `FlowControl` and `Signal` have the same interface and allocate only
when used.

`Disconnect` is the `higress_ops.disconnect` ASGI extension (scope["extensions"]): a response that streams
registers a callback for when its client goes away, instead of a task blocked in `receive()` for the whole
stream. It fires from the connection's `connection_lost`, whichever request of the connection is current.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.flow_control import FlowControl as UvicornFlowControl

DISCONNECT = "higress_ops.disconnect"


class Disconnect:
    """Call it with a callback (None to unregister); the connection calls it once when the client is gone, at
    once if the client went away before the callback was registered."""

    __slots__ = ("callback", "gone")

    def __init__(self) -> None:
        self.callback: Callable[[], object] | None = None
        self.gone = False

    def __call__(self, callback: Callable[[], object] | None) -> None:
        if callback is not None and self.gone:
            callback()
            return
        self.callback = callback

    def fire(self) -> None:
        self.gone = True
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()


class Signal:
    """asyncio.Event's interface (what uvicorn calls: set, clear, is_set, wait) without its deque."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class FlowControl(UvicornFlowControl):
    """uvicorn's flow control; its "writable" signal exists only while writing is paused."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.read_paused = False
        self.write_paused = False
        self._writable: Signal | None = None

    async def drain(self) -> None:
        writable = self._writable
        if writable is not None:
            await writable.wait()

    def pause_writing(self) -> None:
        if not self.write_paused:
            self.write_paused = True
            self._writable = Signal()

    def resume_writing(self) -> None:
        if self.write_paused:
            self.write_paused = False
            writable, self._writable = self._writable, None
            if writable is not None:
                writable.set()


class Pipeline(list[Any]):
    """The pipelined requests of a connection: uvicorn's deque interface (appendleft, pop), empty as a list."""

    __slots__ = ()

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)
