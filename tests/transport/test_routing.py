"""Higress's host patterns and match_list rules, and how servers are found by host and path."""

from __future__ import annotations

import pytest

from higress_ops.config.model import MatchRule
from higress_ops.transport.routing import MatchList, RouteTable, host_matches, strip_port


@pytest.mark.parametrize(("host", "bare"), [("a.com:8080", "a.com"), ("A.COM", "a.com"), ("[::1]:80", "[::1]"),
                                            ("::1", "::1"), ("a.com", "a.com")])
def test_strip_port(host: str, bare: str) -> None:
    assert strip_port(host) == bare


@pytest.mark.parametrize(("pattern", "host", "hit"), [
    ("*", "anything", True), ("*.x.com", "api.x.com", True), ("*.x.com", "x.com", False),
    ("api.*", "api.x.com", True), ("api.*", "web.x.com", False), ("a.com", "a.com", True),
    ("a.com", "b.a.com", False), ("A.com", "a.com", True),
])
def test_host_patterns(pattern: str, host: str, hit: bool) -> None:
    assert host_matches(pattern, host) is hit


@pytest.mark.parametrize(("kind", "rule_path", "path", "hit"), [
    ("exact", "/ops", "/ops", True), ("exact", "/ops", "/ops/sse", False),
    ("prefix", "/ops", "/ops/sse", True), ("prefix", "/ops", "/x/ops", False),
    ("suffix", "/sse", "/ops/sse", True), ("suffix", "/sse", "/ops", False),
    ("contains", "ops", "/x/ops/y", True), ("contains", "ops", "/x", False),
    ("regex", "^/o.s(/sse)?$", "/ops/sse", True), ("regex", "^/o.s$", "/ops/sse", False),
    ("regex", "p", "/ops", True),  # unanchored, like Go's MatchString
])
def test_rule_types(kind: str, rule_path: str, path: str, hit: bool) -> None:
    rules = MatchList([MatchRule(domain="*", path=rule_path, type=kind)])  # type: ignore[arg-type]
    assert rules.matches("h", path) is hit


def test_empty_match_list_matches_everything() -> None:
    assert MatchList([]).matches("any", "/whatever")


def test_route_table_by_path_then_domain() -> None:
    table: RouteTable[str] = RouteTable(MatchList([MatchRule(domain="*.x.com", path="/", type="prefix")]))
    table.add("/ops", ("api.x.com",), "message", "api")
    table.add("/ops", ("*",), "message", "fallback")
    table.add("/ops/sse", ("*",), "sse", "fallback")
    assert table.find("api.x.com:443", "/ops") == ("message", "api")
    assert table.find("web.x.com", "/ops") == ("message", "fallback")
    assert table.find("web.x.com", "/ops/sse") == ("sse", "fallback")
    assert table.find("other.org", "/ops") is None  # outside match_list
    assert table.find("api.x.com", "/nope") is None
