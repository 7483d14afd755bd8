"""End-to-end: a real `serve --auth oidc` against the local issuer. Over-long subjects are refused rather than
cut into someone else's identity, a misconfigured provider is a 503 that says so, and the Protected Resource
Metadata follows the Host/Origin policy and never reflects a Host into its cacheable `resource`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.hardening.report import record
from tests.support.oidc import Issuer, oidc_issuer
from tests.support.serve import ServeProcess, echo_config, serving

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
BOTH = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
METADATA = "/.well-known/oauth-protected-resource/e"


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with oidc_issuer() as running:
        yield running


def oidc_serve(issuer: Issuer, workdir: Path, *args: str) -> AbstractContextManager[ServeProcess]:
    return serving(echo_config(("e", "/e")), workdir, "--auth", "oidc", "--oidc-issuer", issuer.url,
                   "--oidc-audience", "higress-ops", *args)


@pytest.fixture(scope="module")
def server(issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with oidc_serve(issuer, tmp_path_factory.mktemp("oidc-served")) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {**BOTH, "Authorization": f"Bearer {token}"}


async def test_subjects_sharing_a_prefix_stay_two_identities(server: ServeProcess, issuer: Issuer) -> None:
    prefix = "s" * 250
    async with httpx.AsyncClient(timeout=10) as http:
        alice, mallory = issuer.issue(prefix + "alice"), issuer.issue(prefix + "mallo")  # 255 characters each
        opened = await http.post(server.url("/e"), json=INIT, headers=bearer(alice))
        assert opened.status_code == 200
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        assert (await http.post(server.url("/e"), json=ping, headers={**bearer(mallory), **session})).status_code == 404
        for longer in (prefix + "alice-and-more", prefix + "alice-and-else"):  # cut to 256, these were one
            refused = await http.post(server.url("/e"), json=INIT, headers=bearer(issuer.issue(longer)))
            assert refused.status_code == 401 and "longer than the 255 characters" in refused.text
    record("Client authentication", "OIDC subjects sharing a 250-character prefix", "two identities (another's "
           "session: 404); subjects over OIDC's 255 characters: 401 (before: cut to 256, one identity)")


async def test_a_misconfigured_provider_is_a_503(issuer: Issuer, tmp_path: Path) -> None:
    issuer.discovery = {"issuer": 42, "jwks_uri": f"{issuer.url}/jwks"}
    try:
        with oidc_serve(issuer, tmp_path) as server:
            async with httpx.AsyncClient(timeout=10) as http:
                reply = await http.post(server.url("/e"), json=INIT, headers=bearer(issuer.issue("alice")))
            assert reply.status_code == 503 and reply.headers["retry-after"]
            assert "identity provider is misconfigured" in reply.text and "Traceback" not in server.log()
    finally:
        issuer.discovery = None
    record("Client authentication", "an OIDC discovery document whose issuer is a number",
           "503 'the identity provider is misconfigured' with Retry-After (before: 500)")


async def test_resource_metadata_follows_the_host_policy(server: ServeProcess) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        own = await http.get(server.url(METADATA))
        assert own.status_code == 200 and own.json()["resource"] == server.url("/e")
        for headers in ({"Host": "evil.example"}, {"Origin": "http://evil.example"}):
            refused = await http.get(server.url(METADATA), headers=headers)
            assert refused.status_code == 403 and "evil.example/e" not in refused.text  # before: 200 with resource http://evil.example/e
    record("Client authentication", "Protected Resource Metadata with Host: evil.example",
           "403 like every MCP endpoint (before: 200 and a cacheable resource of http://evil.example/e)")


async def test_a_public_url_names_the_resource(issuer: Issuer, tmp_path: Path) -> None:
    with oidc_serve(issuer, tmp_path, "--public-url", "https://mcp.example.com") as server:
        async with httpx.AsyncClient(timeout=10) as http:
            metadata = (await http.get(server.url(METADATA))).json()
            assert metadata["resource"] == "https://mcp.example.com/e"  # behind TLS termination: what clients use
            challenge = (await http.post(server.url("/e"), json=INIT, headers=BOTH)).headers["www-authenticate"]
            assert f'resource_metadata="https://mcp.example.com{METADATA}"' in challenge
