"""A held SSE stream ends, and its legacy session with it, when its client goes away; spoken in raw HTTP to a
real `higress-ops serve`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from higress_ops.transport.connection import Disconnect
from tests.support.asgi import rpc
from tests.support.serve import ServeProcess, echo_config, serving

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """Keep-alives far apart: a stream must learn that its client left from the connection, not from a failed
    keep-alive write."""
    with serving(echo_config(("echo-a", "/a")), tmp_path_factory.mktemp("serve"), "--keepalive", "120") as process:
        yield process


GET_STREAM = b"GET /a/sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"


async def open_raw(server: ServeProcess, request: bytes = GET_STREAM) -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter, str]:
    """A legacy stream on a raw connection, and its message path from the endpoint event."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request)
    data = b""
    while b"\n" not in data.partition(b"event: endpoint\ndata: ")[2]:
        chunk = await reader.read(4096)
        assert chunk, "the stream closed before its endpoint event"
        data += chunk
    path = data.partition(b"event: endpoint\ndata: ")[2].split(b"\n", 1)[0].decode()
    return reader, writer, path


async def ping(server: ServeProcess, path: str) -> int:
    async with httpx.AsyncClient() as http:
        return (await http.post(server.url(path), json=rpc("ping"))).status_code


async def held_streams(server: ServeProcess) -> float:
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(server.admin("/metrics"))).text
    return float(metrics.split('higress_ops_active_sessions{transport="sse"} ', 1)[1].split()[0])


async def gone(server: ServeProcess, path: str, timeout: float = 20) -> bool:
    """The session was deleted with its stream. Watched on /metrics: a POST to the session would answer on the
    stream, and writing to a closed connection ends a stream too."""
    deadline = time.monotonic() + timeout
    while await held_streams(server) > 0:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return await ping(server, path) == 404


async def test_a_legacy_session_ends_when_its_client_goes_away(server: ServeProcess) -> None:
    _, writer, path = await open_raw(server)
    assert await ping(server, path) == 202
    writer.close()
    assert await gone(server, path), "the session outlived its stream's client"


async def test_a_stream_whose_get_came_with_a_body_still_ends_with_its_client(server: ServeProcess) -> None:
    body = b"x" * 200_000  # more than uvicorn buffers for a request nobody reads
    request = GET_STREAM.replace(b"\r\n\r\n", b"\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    _, writer, path = await open_raw(server, request)
    await writer.drain()
    assert await ping(server, path) == 202
    writer.close()
    assert await gone(server, path), "the session outlived its stream's client"


def test_a_stream_registered_after_its_client_went_away_is_told_at_once() -> None:
    disconnect, told = Disconnect(), []
    disconnect.fire()
    disconnect(lambda: told.append("gone"))
    assert told == ["gone"]
