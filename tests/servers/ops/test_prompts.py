"""The diagnostic playbooks through the official SDK client, on every transport, against a real
`higress-ops serve`."""

from __future__ import annotations

import pytest
from mcp.shared.exceptions import MCPError

from tests.support.sdk_clients import TRANSPORTS
from tests.support.serve import ServeProcess

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_prompts_on_every_transport(server: ServeProcess, transport: str) -> None:
    async with TRANSPORTS[transport](server) as client:
        listed = (await client.list_prompts()).prompts
        assert [p.name for p in listed] == ["diagnose-404", "diagnose-503", "check-cert-expiry",
                                            "check-config-sync", "gateway-health"]
        host = next(a for a in listed[0].arguments or [] if a.name == "host")
        assert host.required is True
        got = await client.get_prompt("diagnose-404", {"host": "httpbin.example.com", "path": "/missing"})
        text = got.messages[0].content.text  # type: ignore[union-attr]
        assert got.messages[0].role == "user" and "GET httpbin.example.com/missing" in text and "`find-route`" in text
        with pytest.raises(MCPError, match="needs the argument 'host'"):
            await client.get_prompt("diagnose-503", {})
