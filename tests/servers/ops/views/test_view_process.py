"""The view tools run in the view process (views/offload.py, views/remote.py), their reads made by the server
process: the answers are the ones the tools give in process, byte for byte; a view process that dies fails only
the calls it was running; a cancelled call stops its upstream request; a call's documents go when it ends."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from higress_ops import jsonfast
from higress_ops.servers.base import CallContext
from higress_ops.servers.ops import OpsServer
from higress_ops.servers.ops.views import offload
from higress_ops.servers.ops.views.host_health import ClusterHealth
from higress_ops.servers.ops.views.source import http_source
from higress_ops.servers.ops.views.tools import TOOLS as VIEW_TOOLS
from tests.support import shop as s

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
TOOLS = {t.spec.name: t for t in VIEW_TOOLS}
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("get-envoy-proxy-config", {}),  # every table, and the routes one paged alone
    ("get-envoy-proxy-config", {"type": "routes", "limit": 2, "offset": 1}),
    ("get-envoy-proxy-config", {"type": "routes", "output": "json"}),
    ("get-envoy-proxy-config", {"type": "routes", "name": 7}),  # a bad argument: the same error
    ("find-route", {"host": s.HOST, "path": "/cart/items"}),
    ("describe-cluster", {"cluster": s.CART_80}),  # the Kubernetes API's objects, from the server process
    ("describe-cluster", {"service": "other/none", "port": 80}),
    ("get-istiod-proxy-status", {}),
    ("check-certs", {}),
    ("analyze", {}),
]


async def test_every_view_answers_byte_for_byte_as_it_does_in_process(shop_ops: OpsServer) -> None:
    ctx = CallContext()
    for name, args in CALLS:
        there = await TOOLS[name].run(args, shop_ops.upstreams, ctx)
        here = await TOOLS[name].run_here(args, shop_ops.upstreams, ctx)
        assert jsonfast.dumps(there.to_mcp()) == jsonfast.dumps(here.to_mcp()), (name, args)


async def test_upstream_errors_reach_the_view_with_their_message() -> None:
    down = http_source("http://127.0.0.1:9", "http://127.0.0.1:9")
    try:
        for name, args in (("get-envoy-proxy-config", {"type": "routes"}), ("get-istiod-proxy-status", {}),
                           ("analyze", {})):
            there = await TOOLS[name].run(args, down, CallContext())
            here = await TOOLS[name].run_here(args, down, CallContext())
            assert jsonfast.dumps(there.to_mcp()) == jsonfast.dumps(here.to_mcp()), name
            assert "is unreachable" in "".join(part["text"] for part in there.content)
    finally:
        await down.aclose()


async def test_a_calls_documents_go_when_it_ends_even_after_failed_reads(shop_ops: OpsServer) -> None:
    """A failed read's exception is kept for later asks and holds the frames that awaited it: without the call's
    end letting its documents go, they would wait in a cycle for the garbage collector."""
    upstreams = shop_ops.upstreams
    no_istiod = http_source(upstreams.envoy.base_url, "http://127.0.0.1:9")  # every istiod read fails
    try:
        for name in ("get-gateway-health", "find-route", "analyze"):
            gc.collect()
            gc.disable()
            try:
                before = [o for o in gc.get_objects() if isinstance(o, ClusterHealth)]  # other tests' (kept alive)
                result = await TOOLS[name].run_here({"host": s.HOST}, no_istiod, CallContext())
                assert not result.is_error, result.content
                known = {id(o) for o in before}
                assert not [o for o in gc.get_objects() if isinstance(o, ClusterHealth) and id(o) not in known], name
            finally:
                gc.enable()
    finally:
        await no_istiod.aclose()


class Silent:
    """An admin port that takes a request and never answers; `closed` is set when the client hangs up."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.asked = threading.Event()
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            if conn.recv(65536):
                self.asked.set()
            while conn.recv(65536):
                pass
            self.closed.set()


@pytest.fixture
def silent() -> Iterator[Silent]:
    admin = Silent()
    yield admin
    admin.sock.close()


async def asked(admin: Silent) -> None:
    for _ in range(400):
        if admin.asked.is_set():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the view's read never reached the admin port")


async def test_a_view_process_that_dies_fails_its_calls_and_the_next_call_gets_a_new_one(silent: Silent,
                                                                                        shop_ops: OpsServer) -> None:
    hanging = http_source(silent.url, "http://127.0.0.1:9", timeout=60)
    try:
        call = asyncio.ensure_future(TOOLS["find-route"].run({"host": s.HOST}, hanging, CallContext()))
        await asked(silent)
        dying = offload.view_process()
        dying.process.kill()
        result = await call
        assert result.is_error
        assert result.content[0]["text"] == ("find-route: the view process ended during the call (exit code -9); the "
                                             "next call starts a new one, so retry")
        again = await TOOLS["find-route"].run({"host": s.HOST, "path": "/cart/items"}, shop_ops.upstreams,
                                              CallContext())
        assert not again.is_error and "verdict: 200" in again.content[0]["text"], again.content
        assert offload.view_process().process.pid != dying.process.pid
    finally:
        await hanging.aclose()


async def test_a_cancelled_view_drops_its_upstream_request(silent: Silent) -> None:
    hanging = http_source(silent.url, "http://127.0.0.1:9", timeout=60)
    try:
        call = asyncio.ensure_future(TOOLS["get-gateway-health"].run({}, hanging, CallContext()))
        await asked(silent)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await asyncio.to_thread(silent.closed.wait, 30), "the admin port still holds the request"
    finally:
        await hanging.aclose()
