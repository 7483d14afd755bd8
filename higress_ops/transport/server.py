"""The HTTP server under the app: uvicorn with its httptools protocol, plus the guards uvicorn lacks.

- Header-read timeout: a client that opens a connection or starts a request and then trickles its headers
  (slowloris) is answered 408 and closed after `header_timeout` seconds.
- Header size enforced as bytes arrive: httptools would buffer a 50 MB header whole before calling us, so
  bytes received while still in the header section are counted per read and over the limit the connection
  gets 431 and is closed.
- Trailers are refused: llhttp reports the header fields after a chunked body's last chunk through the same
  `on_header` callback, after `on_headers_complete`, and uvicorn appends them to the request's headers with no
  limit at all. MCP needs none, so the first one gets 400 and the connection is closed. Reads after the
  headers that carry no body byte (chunk-size lines, chunk extensions, a trailer still being sent) count
  against the header limit, so a trailer or an extension that never ends is cut too.
- Body-read timeout with a minimum rate: once the headers are in, the body must arrive within `body_timeout`
  seconds plus one second per `body_min_rate` bytes received (Apache's mod_reqtimeout model), else 408 and
  the connection is closed. Time the app leaves the body unread (uvicorn paused reading, or a client waiting
  for `100 Continue` the app has not asked for yet) is not the client's.
- An answer sent before the whole body arrived (401, 413, 503, ...) says `Connection: close` and closes the
  connection instead of reading on, with a short lingering close: the write side is shut first and what the
  client still sends is read and dropped for `linger` seconds, so the answer is not lost to a TCP reset.
- Every request's scope carries the connection's `higress_ops.disconnect` extension (connection.py): an SSE
  stream learns there that its client went away, from `connection_lost`, without a task waiting in receive().
- What a connection keeps while it is open is kept small (connection.py): an idle SSE stream is one.
The MCP port and the admin port are two sockets of one server; the app tells them apart by local port.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Mapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from higress_ops.transport.connection import DISCONNECT, Disconnect, FlowControl, Pipeline, Signal

MAX_HEADER_BYTES = 64 * 1024  # a token is a few KB; nothing legitimate needs more
BODY_TIMEOUT = 10.0
BODY_MIN_RATE = 8 * 1024  # bytes per second beyond the first `body_timeout` seconds: 1 MiB in ~2 minutes
LINGER = 2.0


def _close_with(protocol: HttpToolsProtocol, status: bytes, message: str) -> None:
    """Answer `status` (unless an answer is already under way) and close; the app sees a disconnect."""
    cycle = protocol.cycle
    if cycle is not None and not cycle.response_complete:
        cycle.disconnected = True  # its task may not have run yet: it must not act on this request
        cycle.message_event.set()
    if cycle is None or not cycle.response_started:
        body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}).encode()
        protocol.transport.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
                                 + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
    protocol.transport.close()


class _Corked:
    """A connection's transport that holds a small write until the next write or the loop's next turn, so a
    response's status line and headers leave in one send with its body: one wakeup of the client instead of
    two (uvicorn writes each ASGI message at once; the header-only write cost ~0.1 ms a call in bench P1).
    Anything the loop does next (an SSE stream waiting for its first event) finds the bytes already sent."""

    HOLD = 4096  # a header block; bigger writes go out at once, with what is held in front
    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif len(data) <= self.HOLD and not self._transport.is_closing():
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Lingering:
    """The transport as a request's cycle sees it while the body is still unread: its close lingers."""

    __slots__ = ("_protocol", "_transport")

    def __init__(self, protocol: GuardedHttpToolsProtocol) -> None:
        self._protocol = protocol
        self._transport = protocol.transport

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._protocol.linger()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout = 10.0
    max_header_bytes = MAX_HEADER_BYTES
    body_timeout = BODY_TIMEOUT
    body_min_rate = BODY_MIN_RATE
    linger_seconds = LINGER
    # Ours in slots, not in the instance __dict__: CPython 3.11 keeps an instance's attributes in a compact
    # shared-key array (~330 bytes for uvicorn's 28) only while the class has fewer than 30 of them; with ours
    # added there too, every connection's dict became a 1.6 KB table.
    __slots__ = ("_body_bytes", "_body_pending", "_body_since", "_disconnect", "_extensions", "_framing_bytes",
                 "_guarded", "_header_bytes", "_keep_alive", "_lingering", "_message", "_reading_headers", "_timer",
                 "_trailer")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pipeline = Pipeline()  # type: ignore[assignment]  # the same interface; see connection.py

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Corked(transport, self.loop))  # type: ignore[arg-type]
        self.flow = FlowControl(self.transport)
        self._disconnect = Disconnect()
        self._extensions = {DISCONNECT: self._disconnect}
        self._timer: asyncio.TimerHandle | None = None  # the header, body or linger deadline
        self._lingering = False
        self._message = 0
        self._begin()

    def _begin(self) -> None:
        self._message += 1
        self._reading_headers = True
        self._header_bytes = 0
        self._body_pending = False  # headers in, message not complete
        self._body_bytes = 0
        self._framing_bytes = 0
        self._body_since = 0.0
        self._trailer = False
        self._guarded = False
        self._arm(self.header_timeout, self._headers_too_slow)

    def _arm(self, delay: float, callback: Callable[[], object]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_too_slow(self) -> None:
        self._timer = None
        if self._reading_headers and not self.transport.is_closing():
            if self._header_bytes or getattr(self, "url", None):
                _close_with(self, b"408 Request Timeout", "request headers not received in time")
            else:
                self.transport.close()  # an idle connection that never sent a byte: just close it

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        self._disconnect.fire()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the answer is out; what the client still sends is dropped until the linger ends
        continuing, message, body_before = self._body_pending, self._message, self._body_bytes
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._reading_headers:
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                _close_with(self, b"431 Request Header Fields Too Large",
                            f"request headers over the {self.max_header_bytes}-byte limit")
            return
        if self._trailer:
            _close_with(self, b"400 Bad Request", "trailer fields after a chunked body are not accepted")
            return
        if not self._body_pending:
            return
        if continuing and message == self._message and self._body_bytes == body_before:
            # a read of this body with no body byte in it: chunk framing, extensions or a trailer
            self._framing_bytes += len(data)
            if self._framing_bytes > self.max_header_bytes:
                _close_with(self, b"431 Request Header Fields Too Large",
                            f"chunk framing and trailers over the {self.max_header_bytes}-byte limit")
                return
        if not self._guarded:
            self._guard_body()

    def _guard_body(self) -> None:
        """The body did not come with the headers: time it, and make an early answer close the connection."""
        self._guarded = True
        cycle = self.cycle
        if not cycle.response_started:
            self._keep_alive = cycle.keep_alive
            cycle.keep_alive = False  # an answer sent now says Connection: close ...
            cycle.transport = _Lingering(self)  # type: ignore[assignment]  # ... and lingers as it closes
        self._body_since = self.loop.time()
        self._arm(self.body_timeout, self._body_too_slow)

    def _body_too_slow(self) -> None:
        self._timer = None
        if not self._body_pending or self._lingering or self.transport.is_closing():
            return
        if self.flow.read_paused or self.cycle.waiting_for_100_continue:  # the app has not read what came, or
            # not asked for the body a client sending Expect: 100-continue holds back: not the client's time
            self._body_since += 1.0
            self._arm(1.0, self._body_too_slow)
            return
        due = self._body_since + self.body_timeout + self._body_bytes / self.body_min_rate
        now = self.loop.time()
        if now < due:
            self._arm(due - now, self._body_too_slow)
            return
        _close_with(self, b"408 Request Timeout", f"request body not received in time (at least "
                                                  f"{self.body_min_rate} bytes per second)")

    def linger(self) -> None:
        """Close after an answer the client may still be sending a body for: shut the write side, drop what
        arrives, close after `linger_seconds`."""
        transport = self.transport
        if self._lingering or transport.is_closing():
            return
        self._lingering = True
        try:
            if transport.can_write_eof():
                transport.write_eof()
        except (OSError, RuntimeError):
            transport.close()
            return
        self.flow.resume_reading()
        self._arm(self.linger_seconds, transport.close)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = self._extensions  # type: ignore[typeddict-item]  # one per connection
        self._begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._reading_headers:
            super().on_header(name, value)
        else:
            self._trailer = True  # never kept: refused once this read is parsed

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._body_pending = True
        self._disarm()
        current = self.cycle
        super().on_headers_complete()
        if self.cycle is not current:  # a new request: nothing waits on its event yet
            self.cycle.message_event = Signal()  # type: ignore[assignment]  # the same interface, no deque

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._body_pending = False
        if self._guarded:
            self._disarm()
            cycle = self.cycle
            if not cycle.response_started:  # the whole body came before any answer: keep-alive as asked
                cycle.keep_alive = self._keep_alive
                cycle.transport = self.transport

    def on_response_complete(self) -> None:
        if self._lingering:
            return
        super().on_response_complete()
        # Between requests the keep-alive timeout applies; the header timer starts again at the next byte.


def guarded_protocol(header_timeout: float, max_header_bytes: int = MAX_HEADER_BYTES, *,
                     body_timeout: float = BODY_TIMEOUT, body_min_rate: int = BODY_MIN_RATE,
                     linger: float = LINGER) -> type[HttpToolsProtocol]:
    return type("GuardedProtocol", (GuardedHttpToolsProtocol,),
                {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes,
                 "body_timeout": body_timeout, "body_min_rate": body_min_rate, "linger_seconds": linger})


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, so a bind failure is reported before the server says it is serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def local_port(scope: Mapping[str, Any]) -> int | None:
    server = scope.get("server")
    return int(server[1]) if server and len(server) > 1 and server[1] is not None else None
