"""P6 port-forward: get-envoy-ready through a pooled pods/portforward stream, and through a new port-forward per
call (what "one per call" would cost), each against the same call with direct access to the same Envoy.

Two real Envoys as pods of the API-server double (tests/support/fleet.py); the port-forward goes through the
kubernetes client's WebSocket protocol to the double, which connects to the Envoy on loopback."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.harness import summary
from higress_ops import kube
from higress_ops.config.model import ServerEntry
from higress_ops.servers.base import CallContext
from higress_ops.servers.ops import OpsServer
from tests.support.fleet import Fleet, gateway_fleet

TOOL = "get-envoy-ready"


def _server(fleet: Fleet, access: str) -> OpsServer:
    return OpsServer(ServerEntry(name="ops", path="/p", type="higress-ops", config=fleet.config(access)))


async def _time(call: Callable[[], Awaitable[Any]], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        result = await call()
        samples.append(time.perf_counter() - started)  # seconds, as harness.summary takes them
        assert not result.is_error, result
    return samples


async def _measure(fleet: Fleet, count: int) -> dict[str, Any]:
    fleet.reset(direct=True)  # the pods say their admin port: direct works, and port-forward uses the same port
    direct, pooled = _server(fleet, "direct"), _server(fleet, "portforward")
    args = {"pod": "gw-a"}

    async def fresh() -> Any:
        server = _server(fleet, "portforward")
        try:
            return await server.call_tool(TOOL, args, CallContext())
        finally:
            await server.aclose()

    try:
        opened = fleet.api.portforwards
        for server in (direct, pooled):  # warm: pod listing, connection
            await server.call_tool(TOOL, args, CallContext())
        samples = {"direct": [], "pooled": [], "fresh": []}  # type: dict[str, list[float]]
        for _ in range(5):  # alternate in rounds so drift hits every side alike
            samples["direct"] += await _time(lambda: direct.call_tool(TOOL, args, CallContext()), count)
            samples["pooled"] += await _time(lambda: pooled.call_tool(TOOL, args, CallContext()), count)
            samples["fresh"] += await _time(fresh, max(count // 5, 2))
        pooled_streams = fleet.api.portforwards - opened - len(samples["fresh"])
    finally:
        await direct.aclose()
        await pooled.aclose()
    base = statistics.median(samples["direct"])
    return {"P6": {**{name: summary(values) for name, values in samples.items()},
                   "ratio_pooled": statistics.median(samples["pooled"]) / base,
                   "ratio_fresh": statistics.median(samples["fresh"]) / base,
                   "pooled_calls": len(samples["pooled"]) + 1, "pooled_streams_opened": pooled_streams,
                   "target": "pooled streams: a handful per pod, not one per call", "met": pooled_streams <= 2}}


def run(workdir: Path, scale: str) -> dict[str, Any]:
    count = {"smoke": 4, "quick": 20}.get(scale, 100)
    with gateway_fleet(workdir / "fleet") as fleet:
        kube.use(kubeconfig=str(fleet.kubeconfig))
        return asyncio.run(_measure(fleet, count))
