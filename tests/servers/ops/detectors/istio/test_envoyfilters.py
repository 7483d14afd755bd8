"""istio-envoyfilters: patch operations Istio ignores or may apply out of order (IST0151 to IST0155)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_each_bad_operation(findings) -> None:
    found = {f["object"]: f for f in await findings("istio-envoyfilters")}
    assert {name: (f["code"], f["severity"]) for name, f in found.items()} == {
        "EnvoyFilter higress-system/bad-add": ("IST0153", "error"),
        "EnvoyFilter higress-system/bad-remove": ("IST0154", "error"),
        "EnvoyFilter higress-system/bad-replace": ("IST0152", "error"),
        "EnvoyFilter higress-system/relative": ("IST0151", "warning"),
        # INSERT_AFTER on a filter that an earlier patch (of another EnvoyFilter) limits to some proxy versions
        "EnvoyFilter higress-system/versioned-late": ("IST0155", "warning")}
    assert found["EnvoyFilter higress-system/bad-add"]["evidence"] == [
        "spec.configPatches[0]: applyTo HTTP_ROUTE, operation ADD"]
