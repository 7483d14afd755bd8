"""Which server a request is for: Higress host patterns, `match_list` rules, then exact server paths.

Facts from Higress (pkg/ingress/kube/configmap/mcp_server.go, plugins/golang-filter/mcp-session):
the port is stripped from the host first; a domain is "*" (any), "*.x.com" (suffix), "api.*" (prefix)
or exact; path rules are exact, prefix, suffix, contains or regex (unanchored, like Go's MatchString);
an empty match_list matches every request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from higress_ops.config.model import MatchRule

Endpoint = Literal["message", "sse"]
T = TypeVar("T")


def strip_port(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [v6]:port
        end = host.find("]")
        return host[: end + 1] if end >= 0 else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_matches(pattern: str, host: str) -> bool:
    """Higress's domain match on a host whose port is already stripped."""
    pattern = pattern.strip().lower()
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return host.endswith(pattern[1:])
    if pattern.endswith("*"):
        return host.startswith(pattern[:-1])
    return host == pattern


def _path_matcher(rule: MatchRule) -> Callable[[str], bool]:
    target = rule.path
    if rule.type == "exact":
        return lambda path: path == target
    if rule.type == "prefix":
        return lambda path: path.startswith(target)
    if rule.type == "suffix":
        return lambda path: path.endswith(target)
    if rule.type == "contains":
        return lambda path: target in path
    pattern = re.compile(target)  # the schema already proved it compiles
    return lambda path: pattern.search(path) is not None


@dataclass(frozen=True)
class _Rule:
    domain: str
    matches_path: Callable[[str], bool]


class MatchList:
    """The `match_list`: which requests the MCP session layer handles at all."""

    def __init__(self, rules: Iterable[MatchRule]) -> None:
        self._rules = [_Rule(rule.domain, _path_matcher(rule)) for rule in rules]

    def matches(self, host: str, path: str) -> bool:
        if not self._rules:
            return True
        return any(host_matches(rule.domain, host) and rule.matches_path(path) for rule in self._rules)


@dataclass(frozen=True)
class _Target(Generic[T]):
    domains: tuple[str, ...]
    endpoint: Endpoint
    value: T


class RouteTable(Generic[T]):
    """Exact-path lookup of (server, endpoint), then the server's domain_list; built once per config."""

    def __init__(self, match_list: MatchList) -> None:
        self.match_list = match_list
        self._by_path: dict[str, list[_Target[T]]] = {}

    def add(self, path: str, domains: tuple[str, ...], endpoint: Endpoint, value: T) -> None:
        self._by_path.setdefault(path, []).append(_Target(domains, endpoint, value))

    def find(self, host: str, path: str) -> tuple[Endpoint, T] | None:
        targets = self._by_path.get(path)
        if not targets:
            return None
        bare = strip_port(host)
        if not self.match_list.matches(bare, path):
            return None
        for target in targets:
            if any(host_matches(domain, bare) for domain in target.domains):
                return target.endpoint, target.value
        return None
