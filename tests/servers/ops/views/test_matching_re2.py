"""Envoy's safe_regex is RE2: find-route matches with RE2 semantics, in linear time."""

from __future__ import annotations

import pytest

from higress_ops.servers.ops.views.matching import _full_match

pytestmark = pytest.mark.timeout(10)  # Python's backtracking `re` would take years on these


@pytest.mark.parametrize(("pattern", "value", "expected"), [
    ("(a+)+$", "a" * 5000 + "!", False),  # catastrophic backtracking for `re`; linear for RE2
    ("(x+x+)+y", "x" * 5000, False),
    ("/api/v[0-9]+/.*", "/api/v2/users", True),
    ("/api/v[0-9]+/.*", "/api/vx/users", False),
    ("(?i)/Api", "/api", True),
    ("(unclosed", "(unclosed", False),  # a pattern Envoy would refuse matches nothing
    (r"/(\w+)/\1", "/a/a", False),  # backreferences are not RE2: refused, as Envoy refuses them
])
def test_safe_regex_is_a_linear_time_full_match(pattern: str, value: str, expected: bool) -> None:
    assert _full_match(pattern, value) is expected
