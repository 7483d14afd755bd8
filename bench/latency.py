"""P1 latency and P2 throughput: tools/call get-envoy-server-info against a direct GET of the same Envoy's
/server_info with the same client, through

- higress-ops with the default settings (`--auth none` on loopback, sessions in memory);
- higress-ops with `--auth kubernetes` (the API-server double answers TokenReview and SubjectAccessReview; the
  verdict is cached, as in production) and sessions in a real redis-server: the second P1 row;
- the bare hop (bench/bare_hop.py): uvicorn + aiohttp forwarding with no MCP work, the floor of any Python hop;
- the official SDK's own server (bench/sdk_server.py).

A third higress-ops process runs with `--spans`: its per-step table (higress_ops/spans.py) shows where a call's
time goes. It is measured apart, so the P1 figures carry no timing cost.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import requests

from bench.harness import Http, McpSession, admin_envoy, alternate, module_server, ops_serve, sdk_server, summary
from tests.support.apiserver import api_server
from tests.support.redis import start_redis
from tests.support.serve import ServeProcess

TOOL = "get-envoy-server-info"
P1_TARGET, P1_SECURED_TARGET, P2_TARGET = 1.25, 1.35, 0.95
USER = "system:serviceaccount:ops:bench"
TOKEN = "bench-token"  # the double's: minted for nothing else
DEFAULTS = ("--log-level", "info")  # serve's default: an access line per request (other benchmarks run at warning)


@contextmanager
def secured_serve(workdir: Path, envoy_url: str, *args: str) -> Iterator[ServeProcess]:
    """higress-ops with --auth kubernetes against the API-server double and sessions in a real redis-server."""
    with ExitStack() as stack:
        api = stack.enter_context(api_server())
        api.users[TOKEN] = {"username": USER}
        api.grants.add((USER, "create", "pods", "portforward", "higress-system"))  # istioctl proxy-config's right
        redis = start_redis(workdir / "redis")
        stack.callback(redis.stop)
        ops = stack.enter_context(ops_serve(workdir / "ops", envoy_url, "--auth", "kubernetes", "--kubeconfig",
                                            str(api.kubeconfig(workdir / "kubeconfig")),
                                            *args, extra={"redis": {"address": redis.address}}))
        yield ops


def run(workdir: Path, scale: str) -> dict[str, Any]:
    rounds, per_round, seconds, repeats = {"smoke": (1, 5, 0.2, 1), "quick": (3, 20, 0.5, 2)}.get(
        scale, (10, 100, 3.0, 4))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with admin_envoy(workdir / "envoy") as envoy, ops_serve(workdir / "ops", envoy.admin_url, *DEFAULTS) as ops, \
            secured_serve(workdir / "secured", envoy.admin_url, *DEFAULTS) as secured, \
            sdk_server(envoy.admin_url) as sdk:
        direct, ours = Http(envoy.admin_url), McpSession(ops.base, "/higress-ops")
        guarded, theirs = McpSession(secured.base, "/higress-ops", auth), McpSession(sdk, "/mcp")
        body = direct.get("/server_info")
        version = json.loads(body)["version"]
        started = time.perf_counter()
        first = ours.call(TOOL)  # the first call parses Envoy's extension list; later ones reuse its summary
        first_ms = (time.perf_counter() - started) * 1000
        assert version.encode() in first and version.encode() in theirs.call(TOOL)  # the same Envoy
        assert version.encode() in guarded.call(TOOL)
        with module_server("bench.bare_hop", envoy.admin_url, str(len(first))) as hop_base:
            hop = Http(hop_base)
            message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": TOOL}}

            def bare() -> bytes:
                status, _, answer = hop.post("/", message, {})
                assert status == 200
                return answer

            samples = alternate(rounds, per_round, {
                "direct": lambda: direct.get("/server_info"), "higress-ops": lambda: ours.call(TOOL),
                "secured": lambda: guarded.call(TOOL), "bare-hop": bare, "sdk": lambda: theirs.call(TOOL)})
        p1: dict[str, Any] = {name: summary(values) for name, values in samples.items()}
        base = statistics.median(samples["direct"])
        for name in ("higress-ops", "secured", "bare-hop", "sdk"):
            p1["ratio_" + name.replace("-", "_")] = statistics.median(samples[name]) / base
        p1["first_call_ms"] = first_ms  # one sample, for scale only: not a ratio
        p1["answer_bytes"] = len(first)
        p1["target"] = f"ratio_higress_ops <= {P1_TARGET}, ratio_secured <= {P1_SECURED_TARGET}"
        p1["met"] = p1["ratio_higress_ops"] <= P1_TARGET and p1["ratio_secured"] <= P1_SECURED_TARGET

        throughput: dict[str, list[float]] = {"direct": [], "higress-ops": [], "sdk": []}
        makers: dict[str, Callable[[], Callable[[], Any]]] = {
            "direct": lambda: Http(envoy.admin_url).get_fn("/server_info"),
            "higress-ops": lambda: McpSession(ops.base, "/higress-ops").call_fn(TOOL),
            "sdk": lambda: McpSession(sdk, "/mcp").call_fn(TOOL)}
        clients = {name: [make() for _ in range(16)] for name, make in makers.items()}
        failed = 0
        for _ in range(repeats):
            for name in throughput:
                rate, errors = _per_second(clients[name], seconds)
                throughput[name].append(rate)
                failed += errors if name == "higress-ops" else 0
        p2: dict[str, Any] = {name: {"calls_per_s": statistics.median(v)} for name, v in throughput.items()}
        p2["ratio_higress_ops"] = p2["higress-ops"]["calls_per_s"] / p2["direct"]["calls_per_s"]
        p2["ratio_sdk"] = p2["sdk"]["calls_per_s"] / p2["direct"]["calls_per_s"]
        p2["failed_calls"] = failed
        p2["target"] = f"ratio_higress_ops >= {P2_TARGET} with 0 failed calls"
        p2["met"] = p2["ratio_higress_ops"] >= P2_TARGET and failed == 0
        spans = _span_table(workdir / "spans", envoy.admin_url, rounds * per_round)
    return {"P1": p1, "P2": p2, "P1_spans": spans, "bytes": len(body)}


def _span_table(workdir: Path, envoy_url: str, calls: int) -> dict[str, Any]:
    """The per-step table of a `serve --spans` after `calls` calls (the first ones warm it and are dropped)."""
    with ops_serve(workdir, envoy_url, "--spans", *DEFAULTS) as ops:
        session = McpSession(ops.base, "/higress-ops")
        for _ in range(50):
            session.call(TOOL)
        requests.get(ops.admin("/spans"), timeout=10)  # the totals start again here
        client = [timed_call(session) for _ in range(calls)]
        table = requests.get(ops.admin("/spans"), timeout=10).json()
    rows = [row for row in table["steps"] if row["n"] >= calls]  # a tools/call's steps, not the handshake's
    return {"calls": calls, "client_median_us": round(statistics.median(client) * 1e6, 1), "steps": rows}


def timed_call(session: McpSession) -> float:
    started = time.perf_counter()
    session.call(TOOL)
    return time.perf_counter() - started


def _per_second(calls: list[Callable[[], Any]], seconds: float) -> tuple[float, int]:
    """Calls per second over `seconds` with one thread per client, and how many calls failed (a failing client
    stops: it must not look merely slow)."""
    done = [0] * len(calls)
    failed: list[str] = []
    stop = time.perf_counter() + seconds

    def loop(index: int) -> None:
        while time.perf_counter() < stop:
            try:
                calls[index]()
            except Exception as exc:
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
        print(f"[bench] {len(failed)} of {len(calls)} clients failed, e.g. {failed[0]}", flush=True)
    return sum(done) / (time.perf_counter() - started), len(failed)
