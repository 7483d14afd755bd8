"""istiod-status: what istiod wrote in its resources' status (its own analysis messages, negative conditions)."""

from __future__ import annotations

import pytest

from tests.support.lint_world import about

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_negative_conditions_and_status_messages(findings) -> None:
    found = await findings("istiod-status")
    [route] = about(found, "HTTPRoute shop/store", "IST0171")
    assert route["message"] == ("A condition with a negative status is present: type=ResolvedRefs, "
                                "reason=BackendNotFound, message=backend(nothere.shop.svc.cluster.local) not found.")
    [old] = about(found, "VirtualService shop/old", "IST0002")
    assert old["severity"] == "warning"
    assert old["message"] == "istiod's own analysis reports Deprecated on this resource"
    assert old["fix"].endswith("ist0002/")


async def test_a_status_message_an_analyzer_explains_is_shown_once(findings) -> None:
    found = about(await findings("istiod-status", "istio-virtualservice-gateways"), "VirtualService shop/reviews",
                  "IST0101")
    assert [f["detector"] for f in found] == ["istio-virtualservice-gateways"]
    alone = about(await findings("istiod-status"), "VirtualService shop/reviews", "IST0101")
    assert [f["detector"] for f in alone] == ["istiod-status"]
