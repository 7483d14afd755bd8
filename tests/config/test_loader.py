"""The higress-config loader: the product README's example loads, and every bad input says where and why."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from higress_ops.config import ConfigError, McpServerConfig, Problem, load_document, load_file, load_text

REPO = Path(__file__).resolve().parents[2]
README_EXAMPLE = REPO / "examples" / "higress-config.yaml"
LOCAL_EXAMPLE = REPO / "examples" / "local.yaml"
PRODUCT_README = Path(__file__).parent / "fixtures" / "product-readme.zh.md"  # an excerpt, kept verbatim
DEFAULT_DESCRIPTION = "Higress Ops MCP Server, which provides debug interfaces for Istio and Envoy components."


def _readme_higress_text() -> str:
    return yaml.safe_load(README_EXAMPLE.read_text(encoding="utf-8"))["data"]["higress"]


def _product_readme_yaml() -> str:
    """The one ```yaml block of the product README excerpt kept in tests/config/fixtures."""
    text = PRODUCT_README.read_text(encoding="utf-8")
    blocks = re.findall(r"^```yaml\n(.*?)^```$", text, flags=re.S | re.M)
    assert len(blocks) == 1, f"{PRODUCT_README.name}: expected one yaml block, found {len(blocks)}"
    return blocks[0]


def test_readme_example_is_the_product_readmes_configmap_verbatim() -> None:
    assert README_EXAMPLE.read_text(encoding="utf-8").strip() == _product_readme_yaml().strip()


def test_schema_default_description_is_the_product_readmes() -> None:
    assert f'默认为 "{DEFAULT_DESCRIPTION}"' in PRODUCT_README.read_text(encoding="utf-8")


@pytest.mark.parametrize("form", ["manifest", "bare"])
def test_readme_example_loads(form: str) -> None:
    config = load_file(README_EXAMPLE) if form == "manifest" else load_text(_readme_higress_text())
    assert isinstance(config, McpServerConfig)
    assert config.enable is True
    assert config.sse_path_suffix == "/sse"
    assert config.redis is not None
    assert config.redis.address == "redis-stack-server.higress-system.svc.cluster.local:6379"
    assert (config.redis.username, config.redis.password, config.redis.db) == ("", "", 0)
    (rule,) = config.match_list
    assert (rule.domain, rule.path, rule.type, rule.upstream_type) == ("*", "/higress-ops", "prefix", "rest")
    (server,) = config.servers
    assert (server.name, server.path, server.type, server.domain_list) == (
        "higress-ops-mcp-server", "/higress-ops", "higress-ops", ("*",))
    assert server.config["istiodURL"] == "http://higress-controller.higress-system.svc.cluster.local:15014"
    assert server.config["envoyAdminURL"] == "http://127.0.0.1:15000"
    assert server.config["description"] == "Higress Ops MCP Server for Istio and Envoy debugging"
    assert config.server("higress-ops-mcp-server") is server


def test_local_example_gets_schema_defaults() -> None:
    config = load_file(LOCAL_EXAMPLE)
    assert config.redis is None
    assert config.enable_user_level_server is False
    (server,) = config.servers
    assert server.path == "/higress-ops"
    assert dict(server.config) == {
        "istiodURL": "http://127.0.0.1:15014",
        "envoyAdminURL": "http://127.0.0.1:15000",
        "namespace": "higress-system",
        "description": DEFAULT_DESCRIPTION,
        "maxResponseBytes": 65536,
        "timeoutSeconds": 10,
    }
    assert [r.path for r in config.match_list] == ["/higress-ops"]


def test_nested_defaults_and_gateway_keys_ignored() -> None:
    doc = {
        "tracing": {"enable": False},  # belongs to the gateway
        "mcpServer": {
            "redis": {"address": "r:6379", "passwordSecret": {"name": "redis", "key": "password"}},
            "match_list": [{"match_rule_path": "^/a.*$", "match_rule_type": "regex"}],
            "servers": [{"name": "e", "path": "/e", "type": "echo"}],
            "rate_limit": {"limit": 10},
        },
    }
    before = copy.deepcopy(doc)
    config = load_document(doc)
    assert doc == before, "the caller's document must not be modified"
    assert config.enable is False and config.sse_path_suffix == "/sse"
    assert config.redis is not None and config.redis.db == 0
    assert config.redis.password_secret is not None
    assert (config.redis.password_secret.name, config.redis.password_secret.namespace) == ("redis", "")
    assert config.match_list[0].domain == "*" and config.match_list[0].upstream_type == "rest"
    assert dict(config.servers[0].config) == {"greeting": "hello", "description": "Echo test server"}
    assert (config.rate_limit.limit, config.rate_limit.window, config.rate_limit.white_list) == (10, 0, ())


def test_redis_password_is_not_in_repr() -> None:
    config = load_document({"mcpServer": {"redis": {"address": "r:6379", "password": "s3cret-pw"}}})
    assert config.redis is not None and config.redis.password == "s3cret-pw"
    assert "s3cret-pw" not in repr(config)


# ---- invalid documents ---------------------------------------------------------------------------------------

def _base() -> dict[str, Any]:
    return {"mcpServer": {"enable": True, "servers": [{
        "name": "ops", "path": "/ops", "type": "higress-ops",
        "config": {"istiodURL": "http://istiod:15014", "envoyAdminURL": "http://127.0.0.1:15000"},
    }]}}


def _edit(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    doc = _base()
    change(doc)
    return doc


def _mcp(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["mcpServer"]


def _cfg(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["mcpServer"]["servers"][0]["config"]


S0 = "/mcpServer/servers/0"
RULE = {"match_rule_path": "/ops", "match_rule_type": "prefix"}

INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("missing istiodURL", _edit(lambda d: _cfg(d).pop("istiodURL")),
     f"{S0}/config/istiodURL", "'istiodURL' is a required property"),
    ("missing envoyAdminURL", _edit(lambda d: _cfg(d).pop("envoyAdminURL")),
     f"{S0}/config/envoyAdminURL", "'envoyAdminURL' is a required property"),
    ("non-http istiodURL", _edit(lambda d: _cfg(d).update(istiodURL="ftp://istiod:15014")),
     f"{S0}/config/istiodURL", "'ftp://istiod:15014' must be an http(s) URL"),
    ("envoyAdminURL not a string", _edit(lambda d: _cfg(d).update(envoyAdminURL=15000)),
     f"{S0}/config/envoyAdminURL", "15000 is not of type 'string'"),
    ("typo in a server config key", _edit(lambda d: _cfg(d).update(timeoutSecond=3)),
     f"{S0}/config/timeoutSecond", "unknown key 'timeoutSecond'; did you mean 'timeoutSeconds'?"),
    ("maxResponseBytes too small", _edit(lambda d: _cfg(d).update(maxResponseBytes=10)),
     f"{S0}/config/maxResponseBytes", "10 is less than the minimum of 1024"),
    ("timeoutSeconds zero", _edit(lambda d: _cfg(d).update(timeoutSeconds=0)),
     f"{S0}/config/timeoutSeconds", "0 is less than or equal to the minimum of 0"),
    ("istiodToken not a string", _edit(lambda d: _cfg(d).update(istiodToken=12345)),
     f"{S0}/config/istiodToken", "<hidden> is not of type 'string'"),
    ("istiodToken with a pasted newline", _edit(lambda d: _cfg(d).update(istiodToken="eyJhbGc.secret-part\n")),
     f"{S0}/config/istiodToken", "<hidden> contains a control character (a pasted newline?); a token is one line"),
    ("no mcpServer block", {"tracing": {}}, "/mcpServer", "'mcpServer' is a required property"),
    ("servers not a list", _edit(lambda d: _mcp(d).update(servers={"name": "ops"})),
     "/mcpServer/servers", "{'name': 'ops'} is not of type 'array'"),
    ("server without name", _edit(lambda d: _mcp(d)["servers"][0].pop("name")),
     f"{S0}/name", "'name' is a required property"),
    ("server without type", _edit(lambda d: _mcp(d)["servers"][0].pop("type")),
     f"{S0}/type", "'type' is a required property"),
    ("error_text not text", _edit(lambda d: _mcp(d).update(rate_limit={"limit": 1, "window": 1, "error_text": 5})),
     "/mcpServer/rate_limit/error_text", "5 is not of type 'string'"),
    ("duplicate server name", _edit(lambda d: _mcp(d)["servers"].append(
        {**copy.deepcopy(_mcp(d)["servers"][0]), "path": "/other"})),
     "/mcpServer/servers/1/name", "duplicate server name 'ops' (also at /mcpServer/servers/0/name)"),
    ("duplicate server path", _edit(lambda d: _mcp(d)["servers"].append(
        {**copy.deepcopy(_mcp(d)["servers"][0]), "name": "other"})),
     "/mcpServer/servers/1/path", "duplicate server path '/ops' (also at /mcpServer/servers/0/path)"),
    ("path without leading slash", _edit(lambda d: _mcp(d)["servers"][0].update(path="ops")),
     f"{S0}/path", "path must start with '/': 'ops'"),
    ("empty domain_list", _edit(lambda d: _mcp(d)["servers"][0].update(domain_list=[])),
     f"{S0}/domain_list", "[] should be non-empty"),
    ("typo in a server entry key", _edit(lambda d: _mcp(d)["servers"][0].update(domains=["*"])),
     f"{S0}/domains", "unknown key 'domains'"),
    ("match rule without type", _edit(lambda d: _mcp(d).update(match_list=[{"match_rule_path": "/ops"}])),
     "/mcpServer/match_list/0/match_rule_type", "'match_rule_type' is a required property"),
    ("match rule type not in enum", _edit(lambda d: _mcp(d).update(match_list=[{**RULE, "match_rule_type": "glob"}])),
     "/mcpServer/match_list/0/match_rule_type",
     "'glob' is not one of ['exact', 'prefix', 'suffix', 'contains', 'regex']"),
    ("upstream_type not in enum", _edit(lambda d: _mcp(d).update(match_list=[{**RULE, "upstream_type": "grpc"}])),
     "/mcpServer/match_list/0/upstream_type", "'grpc' is not one of ['rest', 'sse', 'streamable']"),
    ("path rewrite without sse", _edit(lambda d: _mcp(d).update(match_list=[{**RULE, "enable_path_rewrite": True}])),
     "/mcpServer/match_list/0/enable_path_rewrite", "enable_path_rewrite is only allowed with upstream_type: sse"),
    ("regex rule that does not compile",
     _edit(lambda d: _mcp(d).update(match_list=[{"match_rule_path": "^/ops(", "match_rule_type": "regex"}])),
     "/mcpServer/match_list/0/match_rule_path", "invalid regular expression: missing ), unterminated subpattern"),
    ("prefix rule without leading slash",
     _edit(lambda d: _mcp(d).update(match_list=[{**RULE, "match_rule_path": "ops"}])),
     "/mcpServer/match_list/0/match_rule_path", "an prefix rule's path must start with '/': 'ops'"),
    ("user-level servers without redis", _edit(lambda d: _mcp(d).update(enable_user_level_server=True)),
     "/mcpServer/enable_user_level_server", "enable_user_level_server needs a redis block"),
    ("passwordSecret without key",
     _edit(lambda d: _mcp(d).update(redis={"address": "r:6379", "passwordSecret": {"name": "s"}})),
     "/mcpServer/redis/passwordSecret/key", "'key' is a required property"),
    ("passwordSecret without name",
     _edit(lambda d: _mcp(d).update(redis={"address": "r:6379", "passwordSecret": {"key": "k"}})),
     "/mcpServer/redis/passwordSecret/name", "'name' is a required property"),
    ("redis without address", _edit(lambda d: _mcp(d).update(redis={"db": 1})),
     "/mcpServer/redis", "give exactly one of address (one server), sentinel or cluster; found none"),
    ("redis address without port", _edit(lambda d: _mcp(d).update(redis={"address": "redis"})),
     "/mcpServer/redis/address", "'redis' must be host:port"),
    ("negative redis db", _edit(lambda d: _mcp(d).update(redis={"address": "r:6379", "db": -1})),
     "/mcpServer/redis/db", "-1 is less than the minimum of 0"),
    ("redis password not a string", _edit(lambda d: _mcp(d).update(redis={"address": "r:1", "password": 424242})),
     "/mcpServer/redis/password", "<hidden> is not of type 'string'"),
    ("enable not a boolean", _edit(lambda d: _mcp(d).update(enable="yes")),
     "/mcpServer/enable", "'yes' is not of type 'boolean'"),
    ("sse_path_suffix without slash", _edit(lambda d: _mcp(d).update(sse_path_suffix="sse")),
     "/mcpServer/sse_path_suffix", "'sse' must be a non-empty path suffix starting with '/'"),
    ("negative rate limit", _edit(lambda d: _mcp(d).update(rate_limit={"limit": -1})),
     "/mcpServer/rate_limit/limit", "-1 is less than the minimum of 0"),
    ("third-party type's own schema", _edit(lambda d: _mcp(d)["servers"][0].update(type="echo", config={"x": 1})),
     f"{S0}/config/x", "unknown key 'x'"),
    ("document is a list", [1, 2], "", "expected a mapping with an mcpServer key, got list"),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("doc", "where", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_document(doc: dict[str, Any], where: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_document(doc)
    matches = [p for p in caught.value.problems if p.pointer == where and p.message.startswith(message)]
    assert matches, f"expected {where}: {message!r}; got {caught.value.problems}"
    assert f"{where}: {matches[0].message}" in str(caught.value).splitlines() or where == ""
    # The same document as YAML text gives the same problems.
    with pytest.raises(ConfigError) as again:
        load_text(yaml.safe_dump(doc))
    assert again.value.problems == caught.value.problems


def test_invalid_documents_cover_twenty_cases() -> None:
    assert len(INVALID) >= 20


def test_every_problem_reported_at_once() -> None:
    doc = _base()
    _cfg(doc).pop("istiodURL")
    _mcp(doc)["enable_user_level_server"] = True
    _mcp(doc)["servers"].append({"name": "ops", "path": "x", "type": "nope"})
    _mcp(doc)["sse_path_suffx"] = "/x"
    with pytest.raises(ConfigError) as caught:
        load_document(doc)
    assert [p.pointer for p in caught.value.problems] == [
        "/mcpServer/enable_user_level_server",
        "/mcpServer/servers/0/config/istiodURL",
        "/mcpServer/servers/1/name",
        "/mcpServer/servers/1/path",
    ]
    lines = str(caught.value).splitlines()
    assert len(lines) == 4
    assert "/mcpServer/servers/0/config/istiodURL: 'istiodURL' is a required property" in lines
    # The errors do not hide the warnings found beside them.
    assert [p.pointer for p in caught.value.warnings] == ["/mcpServer/servers/1", "/mcpServer/sse_path_suffx"]
    with pytest.raises(ConfigError) as strict:
        load_document(doc, strict=True)
    assert [p.pointer for p in strict.value.problems][-2:] == ["/mcpServer/servers/1/type", "/mcpServer/sse_path_suffx"]
    assert strict.value.warnings == []


def test_secret_values_never_echoed() -> None:
    doc = _base()
    _cfg(doc)["istiodToken"] = ["eyJhbGciOiJSUzI1NiJ9.secret"]
    _mcp(doc)["redis"] = {"address": "r:1", "password": {"pw": "hunter2"}}
    with pytest.raises(ConfigError) as caught:
        load_document(doc)
    assert "secret" not in str(caught.value) and "hunter2" not in str(caught.value)
    assert len(caught.value.problems) == 2


# ---- YAML text -----------------------------------------------------------------------------------------------

def test_yaml_syntax_error_has_line_and_column() -> None:
    with pytest.raises(ConfigError) as caught:
        load_text("mcpServer:\n  enable: true\n  servers: [\n", source="bad.yaml")
    (problem,) = caught.value.problems
    assert problem.pointer == ""
    assert problem.message.startswith("YAML syntax error at line 4, column 1 of bad.yaml")


def test_yaml_error_inside_configmap_uses_file_lines() -> None:
    text = README_EXAMPLE.read_text(encoding="utf-8").replace("match_rule_path: /higress-ops",
                                                               "match_rule_path: /higress-ops: x")
    lines = text.splitlines()
    line = next(i for i, t in enumerate(lines, 1) if "/higress-ops: x" in t)
    column = lines[line - 1].index(": x") + 1
    with pytest.raises(ConfigError) as caught:
        load_text(text, source="cm.yaml")
    (problem,) = caught.value.problems
    assert problem.message == (f"YAML syntax error at line {line}, column {column} of cm.yaml: "
                               "mapping values are not allowed here")


def test_duplicate_yaml_key_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_text("mcpServer:\n  enable: true\n  enable: false\n")
    assert caught.value.problems == [
        Problem("", "YAML syntax error at line 3, column 3 of <text>: duplicate key 'enable'")]


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    lines.append("mcpServer: {servers: *g}")
    with pytest.raises(ConfigError, match="more than 100000 values"):
        load_text("\n".join(lines))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the document is empty; it needs an mcpServer block"),
        ("mcpServer:\n  servers: [{name: a, path: /a, type: higress-ops, config: {istiodURL: 'http://i',"
         " envoyAdminURL: 'http://e', timeoutSeconds: .nan}}]\n", ".nan is not a usable value"),
        ("apiVersion: v1\nkind: ConfigMap\ndata: {other: x}\n", "must hold the Higress config in data.higress"),
        ("apiVersion: v1\nkind: ConfigMap\ndata: {higress: {mcpServer: {}}}\n", "data.higress must be YAML text"),
    ],
)
def test_document_shape_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_text(text)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_file(tmp_path / "missing.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_file(binary)


@pytest.mark.parametrize("text", [
    "mcpServer: {servers: " + "[" * 50_000 + "]" * 50_000 + "}",  # over Python's recursion limit while parsing
    "mcpServer:\n  servers: " + "[" * 100 + "]" * 100,  # parses, but deeper than any config needs
    "mcpServer: " + "{a: " * 100 + "1" + "}" * 100,
])
def test_deeply_nested_yaml_is_a_config_problem(text: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_text(text)
    problem = error.value.problems[0]
    assert "nests" in problem.message and len(str(problem)) < 500
    if text.startswith("mcpServer:\n  servers: "):
        assert problem.pointer.startswith("/mcpServer/servers/0/0/0")


def test_unknown_keys_under_mcpserver_are_warnings_with_a_did_you_mean() -> None:
    doc = _base()
    _mcp(doc).update({"sse_path_suffx": "/events", "ratelimit": {}, "zz_future_higress_key": True})
    config = load_document(doc)
    assert config.sse_path_suffix == "/sse"  # the typo is not taken for the real key
    assert config.warnings == (
        "/mcpServer/ratelimit: unknown key, ignored; did you mean rate_limit?",
        "/mcpServer/sse_path_suffx: unknown key, ignored; did you mean sse_path_suffix?",
        "/mcpServer/zz_future_higress_key: unknown key, ignored; known keys: enable, enable_user_level_server, "
        "match_list, rate_limit, redis, servers, sse_path_suffix",
    )
    assert load_document(_base()).warnings == ()
    assert config == load_document(_base()), "warnings are not part of what a reload compares"
