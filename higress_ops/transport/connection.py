"""What each HTTP connection keeps for as long as it is open, and the disconnect extension.

`Disconnect` is the `higress_ops.disconnect` ASGI extension (scope["extensions"]): a response that streams
registers a callback for when its client goes away, instead of a task blocked in `receive()` for the whole
stream. It fires from the connection's `connection_lost`, whichever request of the connection is current.
"""

from __future__ import annotations

from collections.abc import Callable

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
