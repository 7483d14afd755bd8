"""P1 latency and P2 throughput: tools/call get-envoy-server-info through higress-ops, and through the official
SDK's own server, each against a direct GET of the same Envoy's /server_info with the same client."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import Http, McpSession, admin_envoy, alternate, ops_serve, sdk_server, summary

TOOL = "get-envoy-server-info"


def run(workdir: Path, scale: str) -> dict[str, Any]:
    rounds, per_round, seconds, repeats = {"smoke": (1, 5, 0.2, 1), "quick": (3, 20, 0.5, 2)}.get(
        scale, (10, 100, 3.0, 4))
    with admin_envoy(workdir / "envoy") as envoy, ops_serve(workdir / "ops", envoy.admin_url) as ops, \
            sdk_server(envoy.admin_url) as sdk:
        direct, ours, theirs = Http(envoy.admin_url), McpSession(ops.base, "/higress-ops"), McpSession(sdk, "/mcp")
        body = direct.get("/server_info")
        version = json.loads(body)["version"]
        started = time.perf_counter()
        first = ours.call(TOOL)  # the first call parses Envoy's extension list; later ones reuse its summary
        first_ms = (time.perf_counter() - started) * 1000
        assert version.encode() in first and version.encode() in theirs.call(TOOL)  # the same Envoy
        samples = alternate(rounds, per_round, {
            "direct": lambda: direct.get("/server_info"), "higress-ops": lambda: ours.call(TOOL),
            "sdk": lambda: theirs.call(TOOL)})
        p1 = {name: summary(values) for name, values in samples.items()}
        base = statistics.median(samples["direct"])
        p1["ratio_higress_ops"] = statistics.median(samples["higress-ops"]) / base
        p1["ratio_sdk"] = statistics.median(samples["sdk"]) / base
        p1["first_call_ms"] = first_ms  # one sample, for scale only: not a ratio
        p1["target"] = "ratio_higress_ops <= 1.5"
        p1["met"] = p1["ratio_higress_ops"] <= 1.5

        throughput: dict[str, list[float]] = {"direct": [], "higress-ops": [], "sdk": []}
        makers: dict[str, Callable[[], Callable[[], Any]]] = {
            "direct": lambda: Http(envoy.admin_url).get_fn("/server_info"),
            "higress-ops": lambda: McpSession(ops.base, "/higress-ops").call_fn(TOOL),
            "sdk": lambda: McpSession(sdk, "/mcp").call_fn(TOOL)}
        clients = {name: [make() for _ in range(16)] for name, make in makers.items()}
        for _ in range(repeats):
            for name in throughput:
                throughput[name].append(_per_second(clients[name], seconds))
        p2: dict[str, Any] = {name: {"calls_per_s": statistics.median(v)} for name, v in throughput.items()}
        p2["ratio_higress_ops"] = p2["higress-ops"]["calls_per_s"] / p2["direct"]["calls_per_s"]
        p2["ratio_sdk"] = p2["sdk"]["calls_per_s"] / p2["direct"]["calls_per_s"]
        p2["target"] = "ratio_higress_ops >= 0.7"
        p2["met"] = p2["ratio_higress_ops"] >= 0.7
    return {"P1": p1, "P2": p2, "bytes": len(body)}


def _per_second(calls: list[Callable[[], Any]], seconds: float) -> float:
    done = [0] * len(calls)
    failed: list[str] = []
    stop = time.perf_counter() + seconds

    def loop(index: int) -> None:
        while time.perf_counter() < stop:
            try:
                calls[index]()
            except Exception as exc:  # counted, not hidden: a failing side must not look merely slow
                failed.append(f"{type(exc).__name__}: {exc}"[:200])
                return
            done[index] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(calls))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(calls)} clients failed, e.g. {failed[0]}")
    return sum(done) / (time.perf_counter() - started)
