"""The one gate every MCP request passes before any transport handler: DNS-rebinding checks on Host and
Origin, then authentication. The principal it returns travels in the call context and the session record.

Host/Origin: a server bound to loopback answers only to loopback host names (a page on evil.example whose
name rebinds to 127.0.0.1 still sends `Host: evil.example`); on other binds the server's `domain_list` and
`--allowed-host` decide. Comparing Host with Origin alone proves nothing: the attacker controls both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from starlette.requests import Request

from higress_ops.auth import Authenticator, AuthFailed, AuthUnavailable, Principal
from higress_ops.mcp import jsonrpc
from higress_ops.transport import guards
from higress_ops.transport.routing import host_matches, strip_port

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
METADATA_PREFIX = "/.well-known/oauth-protected-resource"


def is_loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind.strip("[]")).is_loopback
    except ValueError:
        return False


class HostPolicy:
    def __init__(self, *, loopback: bool, allowed_hosts: Iterable[str] = (), allowed_origins: Iterable[str] = ()):
        self.loopback = loopback
        self.allowed_hosts = tuple(h.strip().lower() for h in allowed_hosts if h.strip())
        self.allowed_origins = {o.strip().rstrip("/").lower() for o in allowed_origins}

    def _host_allowed(self, host: str, domains: Iterable[str]) -> bool:
        if any(host_matches(pattern, host) for pattern in self.allowed_hosts):
            return True
        if self.loopback:
            return host in LOOPBACK_HOSTS
        return not self.allowed_hosts and any(host_matches(domain, host) for domain in domains)

    def check(self, headers: Mapping[str, str], domains: Iterable[str]) -> None:
        domains = tuple(domains)
        host = strip_port(headers.get("host", ""))
        if not self._host_allowed(host, domains):
            hint = "localhost, 127.0.0.1 or [::1]" if self.loopback else "a host of the server's domain_list"
            raise guards.Rejected(403, f"Forbidden: Host {host[:100]!r} is not served here (expected {hint}; "
                                       "allow more with serve --allowed-host)")
        origin = headers.get("origin")
        if origin is None:
            return  # not a browser: nothing to rebind
        origin = origin.strip().rstrip("/").lower()
        if "*" in self.allowed_origins or origin in self.allowed_origins:
            return
        parts = urlsplit(origin)
        if parts.scheme in ("http", "https") and parts.netloc and self._host_allowed(strip_port(parts.netloc),
                                                                                      domains):
            return
        raise guards.Rejected(403, f"Forbidden: Origin {origin[:100]!r} is not allowed; allow it with serve "
                                   "--allowed-origin or --allowed-host")


def public_base(request: Request) -> str:
    """scheme://host the client used, for URLs the server hands out (Host was already checked)."""
    return f"{request.url.scheme}://{request.headers.get('host', 'localhost')}"


def metadata_url(request: Request, server_path: str) -> str:
    return f"{public_base(request)}{METADATA_PREFIX}{server_path}"


class Gate:
    def __init__(self, hosts: HostPolicy, auth: Authenticator) -> None:
        self.hosts = hosts
        self.auth = auth

    async def admit(self, request: Request, domains: Iterable[str], server_path: str) -> Principal:
        """The caller's principal, or guards.Rejected with the 401/403/503 to send."""
        self.hosts.check(request.headers, domains)
        try:
            return await self.auth.authenticate(request.headers.get("authorization"))
        except AuthFailed as exc:
            raise guards.Rejected(exc.status, exc.message, jsonrpc.INVALID_REQUEST,
                                  {"WWW-Authenticate": self._challenge(request, server_path, exc)}) from None
        except AuthUnavailable as exc:
            raise guards.Rejected(503, f"Service Unavailable: {exc}", jsonrpc.INTERNAL_ERROR,
                                  {"Retry-After": "2"}) from None

    def _challenge(self, request: Request, server_path: str, exc: AuthFailed) -> str:
        parts = ['Bearer realm="higress-ops"']
        url = metadata_url(request, server_path)
        if self.auth.resource_metadata(url) is not None:  # only modes with an authorization server publish it
            parts.append(f'resource_metadata="{url}"')
        if exc.error:
            parts.append(f'error="{exc.error}"')
        return ", ".join(parts)
