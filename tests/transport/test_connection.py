"""The small per-connection objects the server's protocol uses instead of uvicorn's (connection.py), under real
uvicorn and real sockets: pipelined requests are answered in order, and a response far bigger than the socket
buffers reaches a client that reads slowly, whole (writing pauses and resumes)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from higress_ops.transport.connection import FlowControl, Signal
from higress_ops.transport.server import bind, guarded_protocol
from tests.support.asgi import INIT
from tests.support.procs import free_port
from tests.support.rawhttp import connect
from tests.support.serve import ServeProcess

pytestmark = pytest.mark.timeout(60)

BIG = 24 * 1024 * 1024  # far over the kernel's socket buffers on both sides
CHUNK = b"".join(b"%08d" % i for i in range(8192))  # 64 KiB that differ along the way


async def big_response(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(BIG).encode())]})
    for _ in range(BIG // len(CHUNK)):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


@pytest.fixture
def uvicorn_port() -> Iterator[int]:
    """Real uvicorn on uvloop with the server's protocol, serving `big_response`."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(big_response, http=guarded_protocol(10.0), loop="uvloop",
                                           lifespan="off", log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [bind("127.0.0.1", port)]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def test_pipelined_requests_are_answered_in_order(server: ServeProcess) -> None:
    sock = connect(server.port)
    pings = [json.dumps({**INIT, "id": i}).encode() for i in (1, 2, 3)]
    sock.sendall(b"".join(b"POST /a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          b"Accept: application/json, text/event-stream\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (len(body), body) for body in pings))
    data, ids = b"", []
    while len(ids) < len(pings):
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, data = data.split(b"\r\n\r\n", 1)
        length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        while len(data) < length:
            data += sock.recv(65536)
        ids.append(json.loads(data[:length])["id"])
        data = data[length:]
    sock.close()
    assert ids == [1, 2, 3]


def test_a_response_bigger_than_the_socket_buffers_reaches_a_slow_reader_whole(uvicorn_port: int) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", uvicorn_port))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    time.sleep(1.0)  # not reading: the server's buffers fill and it has to pause writing
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    body = hashlib.sha256(data.split(b"\r\n\r\n", 1)[1])
    received = len(data.split(b"\r\n\r\n", 1)[1])
    while received < BIG:
        chunk = sock.recv(65536)
        assert chunk, f"the response stopped after {received} of {BIG} bytes"
        body.update(chunk)
        received += len(chunk)
    sock.close()
    assert received == BIG
    assert body.hexdigest() == hashlib.sha256(CHUNK * (BIG // len(CHUNK))).hexdigest()


@pytest.mark.anyio
async def test_flow_control_holds_writers_while_paused_and_lets_them_all_go_on_resume() -> None:
    flow = FlowControl(None)  # type: ignore[arg-type]  # writing only: no transport call
    await flow.drain()  # not paused: no wait
    flow.pause_writing()
    waiting = [asyncio.create_task(flow.drain()) for _ in range(3)]
    cancelled = asyncio.create_task(flow.drain())
    await asyncio.sleep(0.01)
    cancelled.cancel()
    assert not any(task.done() for task in waiting)
    flow.resume_writing()
    await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert cancelled.cancelled()


@pytest.mark.anyio
async def test_a_signal_wakes_its_waiters_once_set_and_waits_again_once_cleared() -> None:
    signal = Signal()
    waiter = asyncio.create_task(signal.wait())
    await asyncio.sleep(0.01)
    assert not waiter.done() and not signal.is_set()
    signal.set()
    assert await asyncio.wait_for(waiter, 5) is True
    assert await signal.wait() is True  # set: no wait
    signal.clear()
    again = asyncio.create_task(signal.wait())
    await asyncio.sleep(0.01)
    assert not again.done()
    signal.set()
    await asyncio.wait_for(again, 5)
