"""The HTTP server under the app: uvicorn with its httptools protocol, plus two guards uvicorn lacks.

- Header-read timeout: a client that opens a connection or starts a request and then trickles its headers
  (slowloris) is answered 408 and closed after `header_timeout` seconds.
- Header size enforced as bytes arrive: httptools would buffer a 50 MB header whole before calling us, so
  bytes received while still in the header section are counted per read and over the limit the connection
  gets 431 and is closed.
The MCP port and the admin port are two sockets of one server; the app tells them apart by local port.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Mapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES = 64 * 1024  # a token is a few KB; nothing legitimate needs more


def _close_with(protocol: HttpToolsProtocol, status: bytes, message: str) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}).encode()
    protocol.transport.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
                             + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
    protocol.transport.close()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout = 10.0
    max_header_bytes = MAX_HEADER_BYTES

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._reading_headers = True
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self._reading_headers and not self.transport.is_closing():
            if self._header_bytes or getattr(self, "url", None):
                _close_with(self, b"408 Request Timeout", "request headers not received in time")
            else:
                self.transport.close()  # an idle connection that never sent a byte: just close it

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._disarm()
                _close_with(self, b"431 Request Header Fields Too Large",
                            f"request headers over the {self.max_header_bytes}-byte limit")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = 0
        self._arm()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Between requests the keep-alive timeout applies; the header timer starts again at the next byte.


def guarded_protocol(header_timeout: float, max_header_bytes: int = MAX_HEADER_BYTES) -> type[HttpToolsProtocol]:
    return type("GuardedProtocol", (GuardedHttpToolsProtocol,),
                {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes})


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
