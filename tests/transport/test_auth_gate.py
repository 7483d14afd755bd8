"""In-process tier: authentication on every transport and endpoint, session binding to the principal, and
DNS-rebinding checks, against the real app with a real issuer (OIDC) and the API-server double (kubernetes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from higress_ops.auth import Authenticator
from higress_ops.auth.kubernetes import KubernetesAuth, Right
from higress_ops.auth.oidc import OidcAuth
from higress_ops.config.kube_source import api_client
from higress_ops.sessions.base import SessionRecord
from tests.support.apiserver import ApiServer, api_server
from tests.support.asgi import ADMIN, BOTH, INIT, InProcess, in_process, rpc, stateless
from tests.support.oidc import Issuer, oidc_issuer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with oidc_issuer() as running:
        yield running


@pytest.fixture(scope="module")
def api() -> Iterator[ApiServer]:
    with api_server() as server:
        server.users.update({"alice-k": {"username": "alice"}, "bob-k": {"username": "bob"},
                             "carol-k": {"username": "carol"}})
        server.grants.update({("alice", "create", "pods", "portforward", "higress-system"),
                              ("bob", "create", "pods", "portforward", "higress-system")})
        yield server


class Mode:
    """One auth mode: how to build it and the Authorization headers of alice, bob and a denied caller."""

    def __init__(self, name: str, build: Any, alice: str, bob: str, denied: str | None) -> None:
        self.name, self.build, self.alice, self.bob, self.denied = name, build, alice, bob, denied


@pytest.fixture(params=["kubernetes", "oidc"])
def mode(request: pytest.FixtureRequest, issuer: Issuer, api: ApiServer, tmp_path: Path) -> Mode:
    if request.param == "oidc":
        return Mode("oidc", lambda: OidcAuth(issuer.url, "higress-ops"), f"Bearer {issuer.issue('alice')}",
                    f"Bearer {issuer.issue('bob')}", None)
    kubeconfig = str(api.kubeconfig(tmp_path / "kubeconfig"))
    return Mode("kubernetes", lambda: KubernetesAuth(api_client(None, kubeconfig), Right()),
                "Bearer alice-k", "Bearer bob-k", "Bearer carol-k")


@asynccontextmanager
async def app(auth: Authenticator, **settings: Any) -> AsyncIterator[InProcess]:
    async with in_process(auth=auth, **settings) as client:
        yield client


def endpoints(session_id: str, legacy_id: str) -> list[tuple[str, str, dict[str, Any] | None, dict[str, str]]]:
    """(method, url, json, headers) for every MCP endpoint: legacy SSE GET and POST, streamable POST
    (initialize and in-session), GET and DELETE, and the 2026-07-28 envelope."""
    in_session = {**BOTH, "Mcp-Session-Id": session_id}
    body, headers_2026 = stateless("tools/list")
    return [("GET", "/e/sse", None, {"Accept": "text/event-stream"}),
            ("POST", f"/e?sessionId={legacy_id}", rpc("ping"), {"Content-Type": "application/json"}),
            ("POST", "/e", INIT, BOTH),
            ("POST", "/e", rpc("ping"), in_session),
            ("GET", "/e", None, {"Accept": "text/event-stream", "Mcp-Session-Id": session_id}),
            ("DELETE", "/e", None, {"Mcp-Session-Id": session_id}),
            ("POST", "/e", body, headers_2026)]


async def send(http: httpx.AsyncClient, method: str, url: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    return await http.request(method, url, json=body, headers=headers)


async def test_every_endpoint_refuses_missing_bad_and_denied_credentials(mode: Mode) -> None:
    async with app(mode.build()) as client:
        sid = await client.initialize({"Authorization": mode.alice})
        legacy = "legacy-session-1"
        await client.host.store.create(SessionRecord(id=legacy, server="e", transport="sse",
                                                     principal=f"{mode.name}:alice"))
        for method, url, body, headers in endpoints(sid, legacy):
            missing = await send(client.http, method, url, body, headers)
            assert missing.status_code == 401, (method, url, missing.text)
            challenge = missing.headers["www-authenticate"]
            assert challenge.startswith("Bearer ")
            assert ("resource_metadata=" in challenge) == (mode.name == "oidc")
            assert missing.json()["error"]["message"].startswith("Unauthorized")
            bad = await send(client.http, method, url, body, {**headers, "Authorization": "Bearer garbage"})
            assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]
            if mode.denied:
                denied = await send(client.http, method, url, body, {**headers, "Authorization": mode.denied})
                assert denied.status_code == 403 and "may not create pods/portforward" in denied.text
        # With good credentials the GET streams are endless: the end-to-end tier reads those.
        for method, url, body, headers in [e for e in endpoints(sid, legacy) if e[0] != "GET"]:
            ok = await send(client.http, method, url, body, {**headers, "Authorization": mode.alice})
            assert ok.status_code in (200, 202), (method, url, ok.status_code, ok.text)
            if method == "DELETE":
                sid = await client.initialize({"Authorization": mode.alice})


async def test_a_session_belongs_to_its_principal(mode: Mode) -> None:
    async with app(mode.build()) as client:
        alice, bob = {"Authorization": mode.alice}, {"Authorization": mode.bob}
        sid = await client.initialize(alice)
        in_session = {**BOTH, "Mcp-Session-Id": sid}
        for who in (bob,):
            assert (await client.http.post("/e", json=rpc("ping"), headers={**in_session, **who})).status_code == 404
            assert (await client.http.delete("/e", headers={"Mcp-Session-Id": sid, **who})).status_code == 404
            stream = await client.http.get("/e", headers={"Accept": "text/event-stream", "Mcp-Session-Id": sid,
                                                          **who})
            assert stream.status_code == 404  # and so it could not end alice's stream either
        assert (await client.http.post("/e", json=rpc("ping"), headers={**in_session, **alice})).status_code == 200
        legacy = "legacy-of-alice"
        await client.host.store.create(SessionRecord(id=legacy, server="e", transport="sse",
                                                     principal=f"{mode.name}:alice"))
        crossed = await client.http.post(f"/e?sessionId={legacy}", json=rpc("ping"),
                                         headers={"Content-Type": "application/json", **bob})
        assert crossed.status_code == 404 and "Session not found" in crossed.text
        own = await client.http.post(f"/e?sessionId={legacy}", json=rpc("ping"),
                                     headers={"Content-Type": "application/json", **alice})
        assert own.status_code == 202


async def test_protected_resource_metadata_names_the_issuer(issuer: Issuer) -> None:
    async with app(OidcAuth(issuer.url, "higress-ops")) as client:
        reply = await client.http.get("/.well-known/oauth-protected-resource/e")
        assert reply.status_code == 200
        assert reply.json()["resource"] == "http://127.0.0.1:8080/e"
        assert reply.json()["authorization_servers"] == [issuer.url]
        challenge = (await client.http.post("/e", json=INIT, headers=BOTH)).headers["www-authenticate"]
        assert 'resource_metadata="http://127.0.0.1:8080/.well-known/oauth-protected-resource/e"' in challenge
        assert (await client.http.get("/.well-known/oauth-protected-resource/nope")).status_code == 404


@pytest.mark.parametrize(("domains", "host", "resource"), [
    (["*"], "evil.example", None),  # a catch-all lets the host in but names nothing: never reflected
    (["*.example.com"], "mcp.example.com", "http://mcp.example.com/e"),
    (["*.example.com"], 'x".example.com', None),  # not a host name: never written into a header or a URL
    (["mcp.example.com"], "mcp.example.com:8443", "http://mcp.example.com:8443/e"),
])
async def test_resource_metadata_reflects_only_a_named_host(issuer: Issuer, domains: list[str], host: str,
                                                            resource: str | None) -> None:
    config = {"mcpServer": {"enable": True, "servers": [{"name": "e", "path": "/e", "type": "echo",
                                                         "domain_list": domains, "config": {}}]}}
    async with in_process(config, auth=OidcAuth(issuer.url, "higress-ops"), loopback=False) as client:
        reply = await client.http.get("/.well-known/oauth-protected-resource/e", headers={"Host": host})
        challenge = (await client.http.post("/e", json=INIT, headers={**BOTH, "Host": host})).headers.get(
            "www-authenticate", "")
        if resource is None:
            assert reply.status_code == 404 and "--public-url" in reply.text and "resource_metadata" not in challenge
        else:
            assert reply.status_code == 200 and reply.json()["resource"] == resource
            assert f'resource_metadata="{resource.removesuffix("/e")}/.well-known/oauth-protected-resource/e"' in \
                challenge


async def test_admin_endpoints_live_on_the_admin_port_only(issuer: Issuer) -> None:
    async with app(OidcAuth(issuer.url, "higress-ops")) as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.http.get(ADMIN + path)).status_code == 200  # no credentials needed there
            assert (await client.http.get(path)).status_code == 401  # the MCP port: authenticate first
        assert (await client.http.get(ADMIN + "/e")).status_code == 404  # and no MCP on the admin port


async def test_authorization_never_reaches_a_tool(issuer: Issuer) -> None:
    async with app(OidcAuth(issuer.url, "higress-ops")) as client:
        token = issuer.issue("alice")
        body, headers = stateless("tools/call", name="whoami", arguments={})
        reply = await client.http.post("/e", json=body, headers={**headers, "Authorization": f"Bearer {token}",
                                                                 "X-Istiod-Token": "istiod-tok"})
        assert reply.status_code == 200
        assert reply.json()["result"]["content"][0]["text"] == "istiod-tok"  # whoami echoes X-Istiod-Token
        assert token not in reply.text


@pytest.mark.parametrize(("host", "origin", "allowed", "expected"), [
    ("127.0.0.1:8080", None, (), 200),
    ("localhost:9999", "http://localhost:3000", (), 200),
    ("[::1]:8080", None, (), 200),
    ("evil.example", None, (), 403),  # a rebound name still says who it is
    ("127.0.0.1:8080", "http://evil.example", (), 403),  # a page elsewhere calling in
    ("127.0.0.1:8080", "null", (), 403),
    ("ops.internal:8080", "https://ops.internal", ("ops.internal",), 200),
    ("evil.example", None, ("*.internal",), 403),
])
async def test_loopback_bind_answers_only_loopback_names(host: str, origin: str | None, allowed: tuple[str, ...],
                                                         expected: int) -> None:
    async with in_process(allowed_hosts=allowed) as client:
        headers = {**BOTH, "Host": host, **({"Origin": origin} if origin else {})}
        reply = await client.http.post("/e", json=INIT, headers=headers)
        assert reply.status_code == expected, reply.text
        if expected == 403:
            assert "jsonrpc" in reply.json() and "Forbidden" in reply.json()["error"]["message"]


async def test_non_loopback_bind_follows_domain_list() -> None:
    config = {"mcpServer": {"enable": True, "servers": [{"name": "e", "path": "/e", "type": "echo", "domain_list": [
        "mcp.example.com"], "config": {"greeting": "hi"}}]}}
    async with in_process(config, loopback=False) as client:
        ok = await client.http.post("/e", json=INIT, headers={**BOTH, "Host": "mcp.example.com",
                                                               "Origin": "https://mcp.example.com"})
        assert ok.status_code == 200
        origin = await client.http.post("/e", json=INIT, headers={**BOTH, "Host": "mcp.example.com",
                                                                   "Origin": "https://evil.example"})
        assert origin.status_code == 403
        assert (await client.http.post("/e", json=INIT, headers={**BOTH, "Host": "other.example"})).status_code == 404


def ops_block(istiod_url: str) -> dict[str, Any]:
    return {"mcpServer": {"enable": True, "servers": [{"name": "ops", "path": "/ops", "type": "higress-ops", "config": {
        "istiodURL": istiod_url, "envoyAdminURL": "http://127.0.0.1:9", "istiodToken": "config-token"}}]}}


async def syncz(client: InProcess, headers: dict[str, str]) -> httpx.Response:
    body, base = stateless("tools/call", name="get-istiod-syncz", arguments={})
    return await client.http.post("/ops", json=body, headers={**base, **headers})


async def test_the_config_token_acts_only_for_authenticated_or_loopback_callers(issuer: Issuer) -> None:
    from higress_ops.auth import NoAuth
    from tests.support.istiod import istiod_double

    with istiod_double(tokens={"config-token", "header-token"}) as istiod:
        bearer = f"Bearer {issuer.issue('alice')}"
        async with in_process(ops_block(istiod.url), auth=OidcAuth(issuer.url, "higress-ops")) as client:
            assert (await syncz(client, {"Authorization": bearer})).json()["result"]["isError"] is False
            await syncz(client, {"Authorization": bearer, "X-Istiod-Token": "header-token"})
        async with in_process(ops_block(istiod.url), auth=NoAuth()) as client:  # loopback, no auth
            await syncz(client, {})
        async with in_process(ops_block(istiod.url), auth=NoAuth(), loopback=False) as client:  # --auth none, exposed
            reply = await syncz(client, {"Host": "anything"})
            assert reply.json()["result"]["isError"] is True and "401" in reply.text
        sent = [r.headers.get("authorization") for r in istiod.requests if r.path == "/debug/syncz"]
        # The OIDC bearer never reached istiod: only istiod tokens did, and none for an anonymous network caller.
        assert sent == ["Bearer config-token", "Bearer header-token", "Bearer config-token", None]
