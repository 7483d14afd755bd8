"""The socket between the server process and the view process (offload.py, remote.py): each message is a
small pickled header, (kind, job, seq, data), followed by the raw byte frames it carries, each frame its length
(8 bytes) and its bytes. Upstream bodies travel as frames, exactly as they were read: never pickled, never parsed
on the server's side, and read into one buffer of their size (multiprocessing's Connection reads a megabyte
frame through a fresh buffer per read and a copy of each).

One thread writes and one reads on each side, so neither event loop ever waits on the pipe. Writing a 12 MB body
is the writer thread's: it holds the GIL only between its write calls (each releases it), so the loop it
shares the process with goes on serving other sessions.
"""

from __future__ import annotations

import pickle
import queue
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Any

Header = tuple[str, int, int, Any]  # (kind, job, seq, data)
Received = Callable[[Header, list[bytearray]], None]
LENGTH = struct.Struct("!Q")


class Channel:
    """Messages over one end of a socketpair. `received` and `closed` run in the reader thread: they hand the
    message to the loop it belongs to (call_soon_threadsafe) and return."""

    def __init__(self, sock: socket.socket, received: Received, closed: Callable[[], None], name: str) -> None:
        self._sock = sock
        self._received = received
        self._closed = closed
        self._outbox: queue.SimpleQueue[tuple[bytes, Sequence[bytes]] | None] = queue.SimpleQueue()
        self.open = True  # until either thread meets the end of the pipe; later messages are dropped
        threading.Thread(target=self._write, name=f"{name}-writer", daemon=True).start()
        threading.Thread(target=self._read, name=f"{name}-reader", daemon=True).start()

    def send(self, kind: str, job: int, seq: int = 0, data: Any = None, frames: Sequence[bytes] = ()) -> None:
        """Queue a message; any thread, never blocks. `data` must be small: it is pickled here."""
        if self.open:
            head = pickle.dumps((len(frames), kind, job, seq, data), protocol=pickle.HIGHEST_PROTOCOL)
            self._outbox.put((head, frames))

    def _write(self) -> None:
        try:
            while (item := self._outbox.get()) is not None:
                head, frames = item
                self._sock.sendall(LENGTH.pack(len(head)) + head)
                for frame in frames:  # sendall loops in C, the GIL released around each send
                    self._sock.sendall(LENGTH.pack(len(frame)))
                    self._sock.sendall(frame)
        except OSError:  # the peer is gone: the reader sees the end of the pipe and says so
            pass
        self.open = False
        self._drain()

    def _drain(self) -> None:
        """Drop what was queued before the end was seen: bodies for a peer that will never read them."""
        while True:
            try:
                self._outbox.get_nowait()
            except queue.Empty:
                return

    def _read(self) -> None:
        try:
            while True:
                count, kind, job, seq, data = pickle.loads(self._frame())
                frames = [self._frame() for _ in range(count)]
                self._received((kind, job, seq, data), frames)
        except (EOFError, OSError):
            pass
        finally:
            self.open = False
            self._outbox.put(None)
            self._closed()

    def _frame(self) -> bytearray:
        (size,) = LENGTH.unpack(self._exactly(LENGTH.size))
        return self._exactly(size)

    def _exactly(self, size: int) -> bytearray:
        """One frame, in one recv call while the peer keeps sending (MSG_WAITALL): a read per socket buffer's
        worth would need the GIL back each time, and a process busy computing gives it every 5 ms."""
        buffer = bytearray(size)
        view, got = memoryview(buffer), 0
        while got < size:
            read = self._sock.recv_into(view[got:], size - got, socket.MSG_WAITALL)
            if not read:
                raise EOFError("the peer closed the socket")
            got += read
        return buffer
