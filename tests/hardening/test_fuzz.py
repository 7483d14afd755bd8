"""Property-based fuzzing (hypothesis) of every input from outside: config documents, JSON-RPC messages, the
2026 envelope, tool arguments, and raw HTTP against a real serve process. Over 10,000 cases per run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from echo_plugin import EchoServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from higress_ops.config import ConfigError, load_document, load_text
from higress_ops.config.model import ServerEntry
from higress_ops.mcp import stateless
from higress_ops.mcp.core import McpCore
from higress_ops.servers.base import CallContext
from higress_ops.servers.ops import OpsServer
from higress_ops.sessions.base import SessionRecord
from tests.hardening.report import record
from tests.support.serve import ServeProcess, echo_config, serving

pytestmark = [pytest.mark.timeout(300), pytest.mark.xdist_group("fuzz")]
FAST = settings(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(
    max_size=40)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=12), inner, max_size=4), max_leaves=12)
CASES: dict[str, int] = {}


def count(name: str) -> None:
    CASES[name] = CASES.get(name, 0) + 1


@pytest.fixture(autouse=True)
def _report_cases(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each property: how many cases it ran, into build/reliability/ (and not far below its budget)."""
    before = dict(CASES)
    yield
    for name, total in CASES.items():
        ran = total - before.get(name, 0)
        if ran:
            record("Fuzzing (hypothesis)", f"{name}: cases, none with a 5xx, crash, hang or malformed error",
                   f"{ran:,}")
            wanted = request.node.get_closest_marker("cases")
            assert wanted is None or ran >= 0.8 * wanted.args[0], f"{name}: only {ran} cases ran"


def well_formed_error(reply: dict[str, Any]) -> None:
    assert reply["jsonrpc"] == "2.0" and "id" in reply
    if "error" in reply:
        assert isinstance(reply["error"]["code"], int) and isinstance(reply["error"]["message"], str)
        assert reply["error"]["message"]
    else:
        assert isinstance(reply["result"], dict)


# -- config documents ------------------------------------------------------------------------------

server_entries = st.fixed_dictionaries({}, optional={
    "name": st.text(max_size=8) | json_scalars, "path": st.sampled_from(["/a", "a", "", "/a b", "/ä"]) | json_scalars,
    "type": st.sampled_from(["higress-ops", "echo", "nope"]) | json_scalars,
    "domain_list": st.lists(st.text(max_size=8), max_size=3) | json_scalars,
    "config": st.fixed_dictionaries({}, optional={
        "istiodURL": st.sampled_from(["http://istiod:15014", "ftp://x", "", "http://"]) | json_scalars,
        "envoyAdminURL": st.sampled_from(["http://127.0.0.1:15000", "nope"]) | json_scalars,
        "maxResponseBytes": st.integers(-5, 2**40) | json_scalars, "greeting": st.text(max_size=5)}) | json_values,
})
blocks = st.fixed_dictionaries({}, optional={
    "enable": st.booleans() | json_scalars, "sse_path_suffix": st.sampled_from(["/sse", "", "sse"]) | json_scalars,
    "redis": st.fixed_dictionaries({}, optional={"address": st.sampled_from(["r:6379", "bad", ""]) | json_scalars,
                                                 "db": st.integers(-3, 20) | json_scalars,
                                                 "passwordSecret": json_values}) | json_scalars,
    "match_list": st.lists(st.fixed_dictionaries({}, optional={
        "match_rule_domain": st.text(max_size=6), "match_rule_path": st.sampled_from(["/a", "(", "[", ".*"]),
        "match_rule_type": st.sampled_from(["exact", "prefix", "regex", "bogus"]) | json_scalars,
        "upstream_type": st.sampled_from(["rest", "sse", "x"]), "enable_path_rewrite": json_scalars}), max_size=3),
    "servers": st.lists(server_entries, max_size=3) | json_scalars,
    "rate_limit": st.fixed_dictionaries({}, optional={"limit": st.integers(-1, 10) | json_scalars,
                                                      "window": json_scalars, "white_list": json_values}),
})


@pytest.mark.cases(3000)
@settings(FAST, max_examples=3000)
@given(doc=st.one_of(json_values, st.fixed_dictionaries({"mcpServer": blocks})))
def test_config_documents_fail_only_with_pointed_problems(doc: Any) -> None:
    count("config documents")
    try:
        load_document(doc, source="fuzz")
    except ConfigError as exc:
        assert exc.problems and all(p.pointer == "" or p.pointer.startswith("/") for p in exc.problems)


@pytest.mark.cases(1000)
@settings(FAST, max_examples=1000)
@given(text=st.text(max_size=200) | st.sampled_from(["a: &a [*a]", "x: !!python/object:os.system ls", "{", "- - -",
                                                     "mcpServer: {servers: [{a: 1, a: 2}]}"]))
def test_config_text_never_crashes(text: str) -> None:
    count("config YAML texts")
    try:
        load_text(text, source="fuzz")
    except ConfigError as exc:
        assert exc.problems


# -- JSON-RPC through the core and the 2026 envelope -----------------------------------------------

messages = st.one_of(json_values, st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "1.0"]) | json_scalars},
    optional={"id": st.integers(-(2**66), 2**66) | st.text(max_size=6) | json_scalars,
              "method": st.sampled_from(["initialize", "ping", "tools/list", "tools/call", "logging/setLevel",
                                         "server/discover", "notifications/cancelled", "x/y"]) | json_scalars,
              "params": st.fixed_dictionaries({}, optional={
                  "name": st.sampled_from(["echo", "whoami", "fail", "nope"]) | json_scalars,
                  "arguments": st.fixed_dictionaries({}, optional={"text": json_values}) | json_values,
                  "protocolVersion": st.sampled_from(["2025-06-18", "2026-07-28", ""]) | json_scalars,
                  "level": st.sampled_from(["info", "loud"]) | json_scalars,
                  "requestId": json_scalars, "cursor": json_scalars,
                  "_meta": st.fixed_dictionaries({}, optional={
                      stateless.VERSION_META: st.sampled_from(["2026-07-28", "2025-06-18"]) | json_scalars,
                      stateless.CAPABILITIES_META: json_values})}) | json_values}))


def echo_core() -> McpCore:
    return McpCore(EchoServer(ServerEntry(name="e", path="/e", type="echo", config={})))


@pytest.mark.cases(2500)
@settings(FAST, max_examples=2500)
@given(message=messages)
def test_core_answers_every_request_with_a_well_formed_reply(message: Any) -> None:
    count("JSON-RPC messages (core)")
    from higress_ops.mcp import jsonrpc

    try:
        kind = jsonrpc.kind(message)
    except jsonrpc.RpcError as exc:
        well_formed_error(exc.to_response(None))
        return
    reply = asyncio.run(echo_core().handle(message, SessionRecord(id="s", server="e", transport="sse"),
                                           CallContext()))
    if kind == "request":
        assert reply is not None and reply["id"] == message["id"]
        well_formed_error(reply)
    else:
        assert reply is None


@pytest.mark.cases(1500)
@settings(FAST, max_examples=1500)
@given(message=messages | st.lists(messages, max_size=2),
       method=st.sampled_from(["tools/call", "tools/list", "ping", ""]) | st.text(max_size=5),
       name=st.sampled_from(["echo", "fail"]) | st.text(max_size=4))
def test_stateless_envelope_statuses(message: Any, method: str, name: str) -> None:
    count("2026 envelopes")
    headers = {"mcp-protocol-version": "2026-07-28", "mcp-method": method, "mcp-name": name}
    status, body = asyncio.run(stateless.handle(echo_core(), message, headers, CallContext()))
    assert status in (200, 202, 400, 404)
    if body is not None:
        well_formed_error(body)
        if "error" in body:
            assert status != 200 or body["error"]["code"] not in (-32700, -32600, -32602, -32601)


# -- tool arguments against the real catalog and views schemas --------------------------------------

@pytest.fixture(scope="module")
def ops_core() -> Iterator[McpCore]:
    config = {"istiodURL": "http://127.0.0.1:9", "envoyAdminURL": "http://127.0.0.1:9", "timeoutSeconds": 1,
              "maxResponseBytes": 65536, "namespace": "higress-system"}
    server = OpsServer(ServerEntry(name="ops", path="/o", type="higress-ops", config=config))
    yield McpCore(server)
    asyncio.run(server.aclose())


TOOL_NAMES = [spec.name for spec in OpsServer(ServerEntry(name="o", path="/o", type="higress-ops", config={
    "istiodURL": "http://127.0.0.1:9", "envoyAdminURL": "http://127.0.0.1:9"})).tools()]
argument_values = st.sampled_from(["listeners", "(", "../x", "a&b=c", "json", "Counters", "\r\n", "x" * 300, "",
                                   "names", "full"]) \
    | json_scalars | st.integers(-5, 70000)
arguments = st.dictionaries(st.sampled_from(["resource", "mask", "name_regex", "include_eds", "format", "filter",
                                             "usedonly", "type", "namespace", "offset", "limit", "host", "path",
                                             "port", "proxyID", "compare", "days", "headers", "output", "extensions",
                                             "x"]),
                            argument_values, max_size=4)


@pytest.mark.cases(1500)
@settings(FAST, max_examples=1500)
@given(tool=st.sampled_from(TOOL_NAMES), args=arguments)
def test_tool_arguments_give_a_result_or_a_precise_error(ops_core: McpCore, tool: str, args: dict[str, Any]) -> None:
    count("tool arguments")
    reply = asyncio.run(ops_core.handle({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                         "params": {"name": tool, "arguments": args}},
                                        SessionRecord(id="", server="ops", transport="streamable"), CallContext()))
    assert reply is not None
    well_formed_error(reply)
    if "error" in reply:
        assert reply["error"]["code"] == -32602 and tool in reply["error"]["message"]
    else:
        assert reply["result"]["isError"] in (True, False) and reply["result"]["content"]


# -- raw HTTP against a real serve process -----------------------------------------------------------

HTTP = httpx.Client(timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with serving(echo_config(("e", "/e")), tmp_path_factory.mktemp("fuzz-serve")) as process:
        yield process


# visible ASCII: the client library itself refuses values with edge spaces
header_values = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40)
requests_ = st.fixed_dictionaries({
    "method": st.sampled_from(["GET", "POST", "DELETE", "PUT", "OPTIONS", "HEAD", "PATCH"]),
    "path": st.sampled_from(["/e", "/e/sse", "/e/", "/x", "/e?sessionId=", "/e?sessionId=abc", "/e?a=1&sessionId"]),
    "body": st.binary(max_size=300) | messages.map(lambda m: json.dumps(m).encode()),
    "headers": st.dictionaries(st.sampled_from(["content-type", "accept", "mcp-session-id", "mcp-protocol-version",
                                                "origin", "mcp-method", "mcp-name", "x-istiod-token", "host"]),
                               header_values, max_size=5)})


@pytest.mark.cases(1200)
@settings(FAST, max_examples=1200)
@given(request=requests_)
def test_http_layer_never_answers_5xx(served: ServeProcess, request: dict[str, Any]) -> None:
    count("HTTP requests")
    headers = {k: v for k, v in request["headers"].items() if k != "host" or v}
    try:  # a hang would show as a timeout; 30 s leaves room for a machine busy with the rest of the suite
        # Streamed: a GET of the SSE endpoint may open a stream that never ends (by design), so only the status
        # line and headers are awaited.
        with HTTP.stream(request["method"], served.url(request["path"]), content=request["body"],
                         headers=headers) as reply:
            status = reply.status_code
    except httpx.TimeoutException as exc:
        raise AssertionError(f"no answer within 30 s: {request}") from exc
    assert status < 500, (status, request)


# -- the 2026-07-28 envelope and nested structures, over real HTTP -------------------------------------

def nest(depth: int, kind: str) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if kind == "list" or (kind == "mixed" and level % 2) else {"k": value}
    return value


nested = st.builds(nest, st.integers(0, 3000), st.sampled_from(["list", "dict", "mixed"]))
params_2026 = json_values | nested | st.fixed_dictionaries({
    "_meta": st.fixed_dictionaries({}, optional={
        "io.modelcontextprotocol/protocolVersion": st.sampled_from(["2026-07-28", "2025-06-18"]) | json_scalars,
        "io.modelcontextprotocol/clientCapabilities": json_values | nested}) | json_values,
    "name": st.sampled_from(["echo", "sleep", "nope"]) | json_scalars,
    "arguments": st.fixed_dictionaries({}, optional={"text": st.text(max_size=20) | nested,
                                                     "seconds": st.floats(0, 0.01) | json_scalars}) | json_values})


@pytest.mark.cases(1000)
@settings(FAST, max_examples=1000)
@given(method=st.sampled_from(["tools/call", "tools/list", "ping", "server/discover", "initialize", "x"]),
       params=params_2026, header_method=st.booleans(), version=st.sampled_from(["2026-07-28", "2099-01-01"]),
       rpc_id=st.integers(-5, 5) | st.text(max_size=5) | st.none())
def test_2026_envelope_and_nested_bodies_over_http(served: ServeProcess, method: str, params: Any,
                                                   header_method: bool, version: str, rpc_id: Any) -> None:
    count("2026 envelopes and nested bodies over HTTP")
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if rpc_id is not None:
        body["id"] = rpc_id
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": version, "Mcp-Method": method if header_method else "other"}
    if isinstance(params, dict) and isinstance(params.get("name"), str) and params["name"].isascii() and \
            params["name"].strip() == params["name"] and params["name"].isprintable():
        headers["Mcp-Name"] = params["name"]  # only what an HTTP client can send
    try:
        content = json.dumps(body).encode()
    except RecursionError:  # deeper than the standard library writes: send it by hand
        content = b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":' + b"[" * 3000 + b"]" * 3000 + b"}"
    reply = HTTP.post(served.url("/e"), content=content, headers=headers)
    assert reply.status_code < 500, (reply.status_code, reply.text[:300])
    if reply.content:
        well_formed_error(reply.json())
    else:
        assert reply.status_code == 202  # a notification (no id) is acknowledged without a body
