"""Raw sockets to a server under test, for the requests no HTTP client would send (trickled headers, endless
bodies, trailers) and for reading exactly what the server answers."""

from __future__ import annotations

import socket


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it shuts its side (or resets)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except OSError:
        pass
    return b"".join(chunks)


def head(data: bytes) -> str:
    """The status line and headers of an answer, lower-cased."""
    return data.split(b"\r\n\r\n", 1)[0].decode(errors="replace").lower()


def read_response(sock: socket.socket) -> bytes:
    """One whole answer (headers and Content-Length body), the connection left open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    length = int(head(data).split("content-length: ", 1)[1].split("\r\n", 1)[0])
    while len(data.split(b"\r\n\r\n", 1)[1]) < length:
        data += sock.recv(65536)
    return data
