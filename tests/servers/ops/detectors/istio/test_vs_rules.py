"""istio-virtualservice-rules: rules no request reaches (IST0130) and matches earlier ones take (IST0131)."""

from __future__ import annotations

import pytest

from tests.support.lint_world import about

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_unreachable_rules_and_ineffective_matches(findings) -> None:
    found = about(await findings("istio-virtualservice-rules"), "VirtualService shop/rules")
    assert sorted((f["code"], f["severity"], f["message"]) for f in found) == [
        ("IST0130", "warning", 'VirtualService rule "again" not used (all matches used by prior rules).'),
        ("IST0130", "warning", 'VirtualService rule "late" not used (route without matches defined before).'),
        ("IST0131", "info", 'VirtualService rule "again" match "dup" is not used (duplicate/overlapping match in '
                            'rule "api").'),
        ("IST0131", "info", 'VirtualService rule "api-v2" match #0 of prefix /api/v2 is not used '
                            '(duplicate/overlapping match in rule #0 of prefix /api on "api").')]


async def test_rules_that_all_match_differently_are_fine(findings) -> None:
    found = await findings("istio-virtualservice-rules")
    assert {f["object"] for f in found} == {"VirtualService shop/rules"}


async def test_rules_of_this_gateway_are_checked_as_envoy_routes(findings) -> None:
    """shop/cart-override's /override before /override/beta is on this gateway: one finding, on the route."""
    found = await findings("istio-virtualservice-rules", "shadowed-route")
    assert not about(found, "VirtualService shop/cart-override")
    [shadow] = [f for f in found if f["detector"] == "shadowed-route"]
    assert "override-beta" in shadow["object"] and "override" in shadow["message"]
