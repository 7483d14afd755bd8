"""From text to a validated McpServerConfig.

Accepts a ConfigMap manifest whose `data.higress` holds YAML text, or that `higress` YAML on its own.
Every problem is collected before failing, each with a JSON pointer into the `higress` document.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from higress_ops.config import yamltext
from higress_ops.config.errors import ConfigError, Problem, pointer
from higress_ops.config.hostport import AddressError, parse_host_port
from higress_ops.config.model import (
    MatchRule,
    McpServerConfig,
    RateLimit,
    RedisConfig,
    SecretRef,
    SentinelAuth,
    ServerEntry,
)
from higress_ops.config.schema import load_schema, validate

if TYPE_CHECKING:  # the registry imports server contracts that import config.model: import it late
    from higress_ops.registry import Registry

BLOCK_SCHEMA = "schemas/mcp-server.schema.json"


def load_file(path: str | Path, *, registry: Registry | None = None, strict: bool = False) -> McpServerConfig:
    """Load a file, or standard input for '-'."""
    source = str(path)
    if source == "-":
        return load_text(sys.stdin.read(), source="<stdin>", registry=registry, strict=strict)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError.single("", f"cannot read {source}: {exc.strerror or exc}", source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError.single("", f"{source} is not UTF-8 text: {exc.reason}", source) from None
    return load_text(text, source=source, registry=registry, strict=strict)


def load_text(text: str, *, source: str = "<text>", registry: Registry | None = None,
              strict: bool = False) -> McpServerConfig:
    doc = _parse_yaml(text, source, where="")
    if isinstance(doc, Mapping) and doc.get("kind") == "ConfigMap":
        doc = _from_configmap(doc, text, source)
    return load_document(doc, registry=registry, source=source, strict=strict)


def load_document(doc: Any, *, registry: Registry | None = None, source: str = "<document>",
                  strict: bool = False) -> McpServerConfig:
    """Validate an already-parsed `higress` document (the Kubernetes source uses this).

    What a real higress-config may hold but this server does not serve (a `type` no plugin registers, a key
    under mcpServer that a newer Higress added) is a warning; `strict` makes every warning an error."""
    from higress_ops.registry import default_registry

    registry = registry or default_registry()
    if doc is None:
        raise ConfigError.single("", "the document is empty; it needs an mcpServer block", source)
    if not isinstance(doc, Mapping):
        raise ConfigError.single("", f"expected a mapping with an mcpServer key, got {type(doc).__name__}", source)
    deep = _too_deep(doc, MAX_DEPTH)
    if deep is not None:
        raise ConfigError.single(pointer(deep), f"nests deeper than {MAX_DEPTH} levels; a Higress config needs a "
                                                "handful", source)
    doc = {"mcpServer": _deepcopy(doc.get("mcpServer"))} if "mcpServer" in doc else {}
    problems = validate(doc, load_schema(BLOCK_SCHEMA))
    block = doc.get("mcpServer")
    warnings: list[Problem] = []
    skipped: set[int] = set()
    if isinstance(block, dict):
        problems += _check_servers(block, registry, warnings, skipped, strict) + _check_block(block)
        warnings += _unknown_keys(block, strict)
    if strict:
        problems, warnings = problems + warnings, []
    if problems:
        raise ConfigError(sorted(set(problems)), source, warnings=sorted(set(warnings)))
    return _build(block, tuple(str(w) for w in sorted(set(warnings))), skipped)


def _unknown_keys(block: Mapping[str, Any], strict: bool = False) -> list[Problem]:
    """Keys directly under mcpServer that the schema does not name: allowed (newer Higress releases add keys),
    but a typo like `sse_path_suffx` would otherwise pass silently, so each gets a warning and a did-you-mean."""
    known = sorted(load_schema(BLOCK_SCHEMA)["$defs"]["mcpServer"]["properties"])
    warnings = []
    for key in sorted(str(k) for k in block if k not in known):
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(known)}"
        what = "unknown key (--strict)" if strict else "unknown key, ignored"
        warnings.append(Problem(pointer(("mcpServer", key)), f"{what}{hint}"))
    return warnings


MAX_DEPTH = 64


def _too_deep(doc: Any, limit: int) -> tuple[str | int, ...] | None:
    """The path of the first value nested deeper than `limit`, found without recursion (which it guards)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(doc, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > limit:
            return path
        if isinstance(value, Mapping):
            stack.extend((child, (*path, str(key))) for key, child in value.items())
        elif isinstance(value, list):
            stack.extend((child, (*path, index)) for index, child in enumerate(value))
    return None


def _deepcopy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _deepcopy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deepcopy(v) for v in value]
    return value


def _parse_yaml(text: str, source: str, where: str, line_offset: int = 0, col_offset: int = 0) -> Any:
    try:
        return yamltext.parse(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = ""
        if mark is not None:
            position = f" at line {mark.line + 1 + line_offset}, column {mark.column + 1 + col_offset}"
        raise ConfigError.single(where, f"YAML syntax error{position} of {source}: {exc.problem or exc}",
                                 source) from None
    except yaml.YAMLError as exc:
        raise ConfigError.single(where, f"YAML error in {source}: {exc}", source) from None
    except RecursionError:
        raise ConfigError.single(where, f"{source} nests too deeply to read; a Higress config needs a handful of "
                                        "levels", source) from None


def _from_configmap(manifest: Mapping[str, Any], text: str, source: str) -> Any:
    data = manifest.get("data")
    if not isinstance(data, Mapping) or "higress" not in data:
        raise ConfigError.single("", f"{source}: a ConfigMap here must hold the Higress config in data.higress", source)
    inner = data["higress"]
    if not isinstance(inner, str):
        raise ConfigError.single("", f"{source}: data.higress must be YAML text (use `higress: |`)", source)
    # Report YAML errors inside data.higress with the file's own line numbers.
    match = re.search(r"^(\s*)higress:\s*[|>][-+0-9]*\s*$", text, re.MULTILINE)
    offset, indent = 0, 0
    if match:
        offset = text.count("\n", 0, match.end()) + 1
        following = text[match.end() + 1:].lstrip("\n").splitlines()
        indent = len(following[0]) - len(following[0].lstrip()) if following else 0
    return _parse_yaml(inner, source, where="", line_offset=offset, col_offset=indent)


def _check_servers(block: dict[str, Any], registry: Registry, warnings: list[Problem], skipped: set[int],
                   strict: bool) -> list[Problem]:
    """Names and paths unique over every entry (served or not: they share the gateway's paths); each served
    entry's config checked by its type's schema. An entry of a type no plugin serves is added to `skipped`, with
    a warning: a real higress-config holds the gateway's own types (higress-api, rag, nginx-migration, ...)."""
    problems: list[Problem] = []
    seen_names: dict[str, int] = {}
    seen_paths: dict[str, int] = {}
    servers = block.get("servers")
    for i, server in enumerate(servers if isinstance(servers, list) else []):  # a non-list: the schema says so
        if not isinstance(server, dict):
            continue
        base = ("mcpServer", "servers", i)
        for key, seen in (("name", seen_names), ("path", seen_paths)):
            value = server.get(key)
            if isinstance(value, str):
                if value in seen:
                    problems.append(Problem(pointer((*base, key)), f"duplicate server {key} {value!r} (also at "
                                            f"{pointer(('mcpServer', 'servers', seen[value], key))})"))
                else:
                    seen[value] = i
        path = server.get("path")
        if isinstance(path, str) and path and not path.startswith("/"):
            problems.append(Problem(pointer((*base, "path")), f"path must start with '/': {path!r}"))
        type_name = server.get("type")
        if not isinstance(type_name, str) or not isinstance(server.get("config", {}), dict):
            continue
        try:
            server_type = registry.get(type_name)
        except KeyError as exc:  # UnknownServerType, whose message lists the registered types
            skipped.add(i)
            if strict:
                problems.append(Problem(pointer((*base, "type")), f"{exc} (--strict: a type no plugin serves is "
                                                                  "an error instead of a skipped server)"))
            else:
                warnings.append(Problem(pointer(base), f"server {server.get('name')!r} skipped: no plugin here "
                                                       f"serves type {type_name!r} (the gateway's own MCP filter "
                                                       "serves it)"))
            continue
        server.setdefault("config", {})
        problems += validate(server["config"], server_type.config_schema, base=(*base, "config"))
    return problems


def _check_block(block: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    rules = block.get("match_list")
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        base = ("mcpServer", "match_list", i)
        if rule.get("match_rule_type") == "regex" and isinstance(rule.get("match_rule_path"), str):
            try:
                re.compile(rule["match_rule_path"])
            except re.error as exc:
                problems.append(Problem(pointer((*base, "match_rule_path")), f"invalid regular expression: {exc}"))
        path = rule.get("match_rule_path")
        if rule.get("match_rule_type") in ("exact", "prefix") and isinstance(path, str) and not path.startswith("/"):
            problems.append(Problem(pointer((*base, "match_rule_path")),
                                    f"an {rule['match_rule_type']} rule's path must start with '/': {path!r}"))
        if rule.get("enable_path_rewrite") is True and rule.get("upstream_type", "rest") != "sse":
            problems.append(Problem(pointer((*base, "enable_path_rewrite")),
                                    "enable_path_rewrite is only allowed with upstream_type: sse"))
    if isinstance(block.get("redis"), dict):
        problems += _check_redis(block["redis"])
    if block.get("enable_user_level_server") is True and not block.get("redis"):
        problems.append(Problem("/mcpServer/enable_user_level_server",
                                "enable_user_level_server needs a redis block (sessions are per user in Redis)"))
    return problems


REDIS_MODES = ("address", "sentinel", "cluster")


def _check_redis(redis: dict[str, Any]) -> list[Problem]:
    """What the schema cannot say: one mode only, ports in range, db 0 on a cluster, a CA only with TLS."""
    base = ("mcpServer", "redis")
    given = [mode for mode in REDIS_MODES if mode in redis]
    if len(given) != 1:
        found = f"found {' and '.join(given)}" if given else "found none"
        return [Problem(pointer(base), f"give exactly one of address (one server), sentinel or cluster; {found}")]
    problems: list[Problem] = []
    mode = given[0]
    addresses: list[tuple[tuple[str | int, ...], Any]]
    if mode == "address":
        addresses = [((*base, "address"), redis["address"])]
    else:  # a wrong shape (not an object, not a list) is the schema's to report
        listed = redis[mode].get("addresses") if isinstance(redis[mode], dict) else None
        addresses = [((*base, mode, "addresses", i), a) for i, a in enumerate(listed)] \
            if isinstance(listed, list) else []
    well_formed = re.compile(load_schema(BLOCK_SCHEMA)["$defs"]["hostPort"]["pattern"])
    for where, address in addresses:
        if isinstance(address, str) and well_formed.search(address):  # a malformed one: the schema said so
            try:
                parse_host_port(address, pointer(where))
            except AddressError as exc:
                problems.append(Problem(pointer(where), str(exc).split(": ", 1)[1]))
    if mode == "cluster" and redis.get("db", 0) != 0:
        problems.append(Problem(pointer((*base, "db")), "must be 0 with cluster: Redis Cluster has only db 0"))
    for ca in ("caFile", "caSecret"):
        if ca in redis and redis.get("tls") is not True:
            problems.append(Problem(pointer((*base, ca)), f"{ca} is only used with tls: true"))
    if "caFile" in redis and "caSecret" in redis:
        problems.append(Problem(pointer((*base, "caSecret")), "give caFile or caSecret, not both"))
    return problems


def _secret(ref: dict[str, Any] | None) -> SecretRef | None:
    return SecretRef(name=ref["name"], key=ref["key"], namespace=ref["namespace"]) if ref else None


def _redis(r: dict[str, Any]) -> RedisConfig:
    common: dict[str, Any] = dict(
        username=r["username"], password=r["password"], db=r["db"], tls=r["tls"], ca_file=r.get("caFile", ""),
        secret=r.get("secret", ""),
        password_secret=_secret(r.get("passwordSecret")), ca_secret=_secret(r.get("caSecret")))
    if "sentinel" in r:
        s = r["sentinel"]
        auth = SentinelAuth(username=s["username"], password=s["password"],
                            password_secret=_secret(s.get("passwordSecret")))
        return RedisConfig(mode="sentinel", addresses=tuple(s["addresses"]), master_name=s["masterName"],
                           sentinel_auth=auth, **common)
    if "cluster" in r:
        return RedisConfig(mode="cluster", addresses=tuple(r["cluster"]["addresses"]), **common)
    return RedisConfig(address=r["address"], **common)


def _build(block: dict[str, Any], warnings: tuple[str, ...] = (), skipped: set[int] | None = None) -> McpServerConfig:
    redis = _redis(block["redis"]) if block.get("redis") else None
    rate = block.get("rate_limit") or {}
    skip = skipped or set()
    entries = [ServerEntry(name=s["name"], path=s["path"], type=s["type"], domain_list=tuple(s["domain_list"]),
                           config=s.get("config", {})) for s in block["servers"]]
    return McpServerConfig(
        enable=block["enable"],
        sse_path_suffix=block["sse_path_suffix"],
        redis=redis,
        match_list=tuple(
            MatchRule(domain=m["match_rule_domain"], path=m["match_rule_path"], type=m["match_rule_type"],
                      upstream_type=m["upstream_type"], enable_path_rewrite=m["enable_path_rewrite"],
                      path_rewrite_prefix=m["path_rewrite_prefix"])
            for m in block["match_list"]
        ),
        servers=tuple(entry for i, entry in enumerate(entries) if i not in skip),
        enable_user_level_server=block["enable_user_level_server"],
        rate_limit=RateLimit(limit=rate.get("limit", 0), window=rate.get("window", 0),
                             white_list=tuple(rate.get("white_list", ())), error_text=rate.get("error_text", "")),
        warnings=warnings,
        skipped=tuple(entry for i, entry in enumerate(entries) if i in skip),
    )
