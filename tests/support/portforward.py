"""The API server's side of `pods/portforward` over WebSocket, as the kubernetes Python client speaks it
(`kubernetes.stream.portforward`, channel protocol v4.channel.k8s.io): per forwarded port a data channel
(2i) and an error channel (2i+1), each opened by a frame holding the port number (little-endian), then
binary frames whose first byte is the channel. Used by the API-server double to forward to a real Envoy's
admin port on loopback, the way the kubelet connects inside the pod.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import struct
import threading
from typing import BinaryIO

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455
PROTOCOL = "v4.channel.k8s.io"
BINARY, CLOSE, PING, PONG = 0x2, 0x8, 0x9, 0xA


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def frame(opcode: int, payload: bytes) -> bytes:
    """A server frame: final, unmasked."""
    head = bytes([0x80 | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([size])
    elif size < 1 << 16:
        head += bytes([126]) + struct.pack(">H", size)
    else:
        head += bytes([127]) + struct.pack(">Q", size)
    return head + payload


def read_frame(stream: BinaryIO) -> tuple[int, bytes] | None:
    """The next client frame (masked, as clients must send); None at the end of the stream."""
    head = stream.read(2)
    if len(head) < 2:
        return None
    opcode, size = head[0] & 0x0F, head[1] & 0x7F
    if size == 126:
        size = struct.unpack(">H", stream.read(2))[0]
    elif size == 127:
        size = struct.unpack(">Q", stream.read(8))[0]
    mask = stream.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = stream.read(size)
    if len(data) < size:
        return None
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class Forward:
    """One WebSocket stream forwarded to 127.0.0.1:`target`, until either side ends or `cut()` is called."""

    def __init__(self, rfile: BinaryIO, sock: socket.socket, port: int, target: int) -> None:
        self.rfile, self.sock, self.port, self.target = rfile, sock, port, target
        self.lock = threading.Lock()
        self.upstream: socket.socket | None = None

    def send(self, opcode: int, payload: bytes) -> None:
        with self.lock:
            self.sock.sendall(frame(opcode, payload))

    def run(self) -> None:
        port_bytes = struct.pack("<H", self.port)
        self.send(BINARY, b"\x00" + port_bytes)
        self.send(BINARY, b"\x01" + port_bytes)
        try:
            self.upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        except OSError as exc:
            self.send(BINARY, b"\x01" + f"error forwarding port {self.port}: {exc.strerror}".encode())
            self.send(CLOSE, b"")
            return
        self.upstream.settimeout(None)
        back = threading.Thread(target=self._from_pod, daemon=True)
        back.start()
        try:
            while (got := read_frame(self.rfile)) is not None:
                opcode, data = got
                if opcode == CLOSE:
                    break
                if opcode == PING:
                    self.send(PONG, data)
                elif opcode == BINARY and data[:1] == b"\x00" and len(data) > 1:
                    self.upstream.sendall(data[1:])
        except OSError:
            pass
        finally:
            self.cut()
            back.join(timeout=5)

    def _from_pod(self) -> None:
        assert self.upstream is not None
        try:
            while chunk := self.upstream.recv(1 << 16):
                self.send(BINARY, b"\x00" + chunk)
            self.send(CLOSE, b"")
        except OSError:
            pass
        finally:
            self.cut()

    def cut(self) -> None:
        """End the stream from the server side, as when the pod goes away."""
        for sock in (self.upstream, self.sock):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
