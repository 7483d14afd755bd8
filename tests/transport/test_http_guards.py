"""The HTTP server's guards against clients that never finish a request, tried on a real `serve` over real
sockets, on the MCP port and the admin port alike: trailer fields after a chunked body, a body that never
ends, an early answer (401, 403, 413) followed by more body bytes, and a client still sending a large body
when it is refused."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from tests.hardening.report import record
from tests.support.procs import rss_kb, wait_until
from tests.support.rawhttp import connect, head, read_all, read_response
from tests.support.serve import ServeProcess, echo_config, serving

pytestmark = [pytest.mark.timeout(120), pytest.mark.xdist_group("http-guards")]
POST = (b"POST /e HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Accept: application/json, text/event-stream\r\n")
PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with serving(echo_config(("e", "/e")), tmp_path_factory.mktemp("guards"), "--header-timeout", "2",
                 "--body-timeout", "1", "--body-min-rate", "1024", "--max-connections", "20",
                 "--body-limit", "65536", "--log-level", "warning") as running:
        yield running


@pytest.mark.parametrize("port_name", ["port", "admin_port"])
def test_trailer_fields_are_refused_and_hold_no_memory(server: ServeProcess, port_name: str) -> None:
    assert server.proc is not None
    before = rss_kb(server.proc.pid)
    sock = connect(getattr(server, port_name))
    path = b"/e" if port_name == "port" else b"/healthz"
    sock.sendall(POST.replace(b"/e", path) + b"Transfer-Encoding: chunked\r\n\r\n"
                 + f"{len(PING):x}\r\n".encode() + PING + b"\r\n0\r\n")
    block = b"".join(b"X-T%07d: v\r\n" % i for i in range(1400))[:16384]  # ~1,400 small trailer fields
    sent, started = 0, time.monotonic()
    with pytest.raises(OSError):  # trailers until the server closes; 8 MB of them held 184 MB of RSS before
        while time.monotonic() - started < 10:
            sock.sendall(block)
            sent += len(block)
    closed = time.monotonic() - started
    reply = read_all(sock)
    sock.close()
    growth_kb = rss_kb(server.proc.pid) - before
    # The MCP endpoint reads the body, so the first trailer is refused (400, or a reset that beats it); the
    # admin port usually answers first and then drops whatever follows until its linger ends.
    expected = (b"HTTP/1.1 400",) if port_name == "port" else (b"HTTP/1.1 400", b"HTTP/1.1 200")
    assert not reply or reply.startswith(expected), reply[:100]
    assert closed < 5, closed
    assert growth_kb < 4 * 1024, growth_kb
    record("HTTP server guards", f"chunked trailers sent without pause ({port_name.replace('_', ' ')})",
           f"connection closed after {closed:.2f} s and {sent // 1024} KiB; RSS grew {growth_kb / 1024:.1f} MB "
           "(limit 4 MB; 8 MB of trailers held 184 MB before)")


def test_a_trailer_that_never_ends_is_cut(server: ServeProcess) -> None:
    sock = connect(server.port)
    sock.sendall(POST + b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(PING):x}\r\n".encode() + PING
                 + b"\r\n0\r\nX-Endless: ")
    sent = 0
    with pytest.raises(OSError):
        for _ in range(8 * 1024 * 1024 // 16384):
            sock.sendall(b"v" * 16384)
            sent += 16384
    sock.close()
    assert sent < 4 * 1024 * 1024, sent


def test_a_body_that_never_ends_is_timed_out(server: ServeProcess) -> None:
    sock = connect(server.port)
    sock.sendall(POST + b"Content-Length: 60000\r\n\r\n" + b'{"jsonrpc"')
    started = time.monotonic()
    reply = read_all(sock)
    waited = time.monotonic() - started
    sock.close()
    assert reply.startswith(b"HTTP/1.1 408") and b"request body not received in time" in reply
    assert 0.9 < waited < 5, waited  # --body-timeout 1, plus 1 s per 1,024 bytes received (10 here)
    trickle = connect(server.port)  # a byte a second never keeps up with --body-min-rate 1024
    trickle.sendall(POST + b"Content-Length: 60000\r\n\r\n")
    started = time.monotonic()
    with pytest.raises(OSError):
        for _ in range(60):
            trickle.sendall(b" ")
            time.sleep(0.25)
    waited = time.monotonic() - started
    trickle.close()
    assert waited < 5, waited
    record("HTTP server guards", "a body that never ends (--body-timeout 1 --body-min-rate 1024)",
           f"408 after {waited:.1f} s of a trickled body (4 bytes/s)")


def test_an_early_answer_closes_the_connection(server: ServeProcess) -> None:
    """Headers with a large Content-Length, read the 403, send one more byte: before, the byte cancelled the
    keep-alive timer and nothing re-armed it, so such connections held --max-connections for 80+ s."""
    held = []
    started = time.monotonic()
    for _ in range(19):  # with the next client, 20: --max-connections
        sock = connect(server.port)
        sock.sendall(POST.replace(b"127.0.0.1", b"evil.example") + b"Content-Length: 60000\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 403") and "connection: close" in head(first)
        sock.sendall(b"x")
        held.append(sock)
    for sock in held:
        read_all(sock)  # the server shut its side right after the answer...
    shut = time.monotonic() - started
    busy = requests.get(server.url("/e"), timeout=5).status_code  # 503 while they linger
    # ... and closed for good after its short linger: the slots are free again.
    wait_until(lambda: requests.post(server.url("/e"), data=PING, timeout=5, headers={
        "Content-Type": "application/json", "Accept": "application/json"}).status_code == 400, 10,
        "a new client admitted")  # 400: no session; what matters is that it is not 503
    freed = time.monotonic() - started
    for sock in held:
        sock.close()
    assert freed < 8, freed
    record("HTTP server guards", "19 connections that answer a 403 with one more body byte "
           "(--max-connections 20)", f"each shut right after its answer ({shut:.1f} s for all; a new client "
           f"got {busy} meanwhile), admitted again after {freed:.1f} s (before: 503 for 80+ s)")


def test_a_client_still_sending_its_body_gets_the_refusal(server: ServeProcess) -> None:
    """A 413 for a Content-Length over the limit is read by the client even while it keeps writing: the
    server shuts its write side and drains for a moment instead of resetting the connection."""
    sock = connect(server.port)
    sock.sendall(POST + b"Content-Length: 900000\r\n\r\n")
    sock.settimeout(5)
    try:
        for _ in range(20):  # 320 KB more: well past what the socket buffers hold
            sock.sendall(b" " * 16384)
    except OSError:
        pass
    reply = read_all(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 413") and "connection: close" in head(reply), reply[:200]


def test_a_request_whose_body_arrives_later_keeps_the_connection(server: ServeProcess) -> None:
    sock = connect(server.port)
    for _ in range(2):
        sock.sendall(POST + f"Content-Length: {len(PING)}\r\n\r\n".encode())
        time.sleep(0.2)  # the body in a read of its own
        sock.sendall(PING)
        reply = read_response(sock)
        assert reply.startswith(b"HTTP/1.1 400") and "connection: close" not in head(reply)  # no session: 400
    sock.close()
