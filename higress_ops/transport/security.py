"""The one gate every MCP request passes before any transport handler: DNS-rebinding checks on Host and
Origin, then authentication. The principal it returns travels in the call context and the session record.

Host/Origin: a server bound to loopback answers only to loopback host names (a page on evil.example whose
name rebinds to 127.0.0.1 still sends `Host: evil.example`); on other binds the server's `domain_list` and
`--allowed-host` decide. Comparing Host with Origin alone proves nothing: the attacker controls both.

Failed authentications are counted per client address: past FAILED_LOGINS in a window, that address gets 429
with Retry-After before its credentials are looked at, so junk tokens cost the API server or the issuer
nothing more. A request without credentials is not counted (MCP clients start that way to discover the
authorization server).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from starlette.requests import Request

from higress_ops.auth import AuthBusy, Authenticator, AuthFailed, AuthUnavailable, Principal
from higress_ops.config.model import RateLimit
from higress_ops.mcp import jsonrpc
from higress_ops.ratelimit import MemoryRateLimiter
from higress_ops.transport import guards
from higress_ops.transport.peers import Network, client_address
from higress_ops.transport.routing import host_matches, strip_port

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
METADATA_PREFIX = "/.well-known/oauth-protected-resource"
FAILED_LOGINS = RateLimit(limit=30, window=60)  # failed authentications per client address per window
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:[0-9]{1,5})?")  # a Host fit for a URL


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


    def names(self, host: str, domains: Iterable[str]) -> bool:
        """Whether the operator named `host` (port stripped): a loopback name on a loopback bind, an
        --allowed-host or a domain_list entry; a catch-all '*' lets a host in but names none."""
        if any(p != "*" and host_matches(p, host) for p in self.allowed_hosts):
            return True
        if self.loopback:
            return host in LOOPBACK_HOSTS
        return not self.allowed_hosts and any(d.strip() != "*" and host_matches(d, host) for d in domains)


def parse_public_url(url: str) -> str:
    """`--public-url`: scheme://host[:port], how clients reach this server (e.g. behind TLS termination)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") or parts.query or \
            parts.fragment or "@" in parts.netloc or not _HOST.fullmatch(parts.netloc.lower()):
        raise ValueError(f"{url!r} is not scheme://host[:port] (e.g. https://mcp.example.com)")
    return f"{parts.scheme}://{parts.netloc.lower()}"


class Gate:
    def __init__(self, hosts: HostPolicy, auth: Authenticator, trusted: tuple[Network, ...] = (),
                 failed_logins: RateLimit = FAILED_LOGINS, public_url: str | None = None) -> None:
        self.hosts = hosts
        self.auth = auth
        self.public_url = public_url
        self.trusted = trusted
        self.failures = MemoryRateLimiter(failed_logins, max_callers=50_000)

    async def admit(self, request: Request, domains: Iterable[str], server_path: str) -> Principal:
        """The caller's principal, or guards.Rejected with the 401/403/429/503 to send."""
        self.hosts.check(request.headers, domains)
        if self.auth.mode == "none":
            return await self.auth.authenticate(None)
        authorization = request.headers.get("authorization")
        address = client_address(request, self.trusted)
        wait = self.failures.used_up("auth", address) if len(self.failures) else 0
        if wait:
            rule = self.failures.rule
            raise guards.Rejected(429, f"Too Many Requests: {rule.limit} failed authentications from this client in "
                                       f"{rule.window}s; retry in {wait}s", jsonrpc.INVALID_REQUEST,
                                  {"Retry-After": str(wait)})
        try:
            return await self.auth.authenticate(authorization, address)
        except AuthFailed as exc:
            if authorization:
                await self.failures.check("auth", address)
            raise guards.Rejected(exc.status, exc.message, jsonrpc.INVALID_REQUEST,
                                  {"WWW-Authenticate": self._challenge(request, domains, server_path, exc)}) from None
        except AuthBusy as exc:
            raise guards.Rejected(exc.status, exc.message, jsonrpc.INVALID_REQUEST if exc.status == 429 else
                                  jsonrpc.INTERNAL_ERROR, {"Retry-After": str(exc.retry_after)}) from None
        except AuthUnavailable as exc:
            raise guards.Rejected(503, f"Service Unavailable: {exc}", jsonrpc.INTERNAL_ERROR,
                                  {"Retry-After": "2"}) from None

    def resource_base(self, request: Request, domains: Iterable[str]) -> str | None:
        """scheme://host for the URLs the server hands out (the RFC 9728 resource and its metadata URL):
        --public-url, else the Host the client used when the operator named it (HostPolicy.names); never a
        Host that only a catch-all let in, so a request cannot choose what a cacheable answer says."""
        if self.public_url:
            return self.public_url
        raw = request.headers.get("host", "").strip().lower()
        if not _HOST.fullmatch(raw) or not self.hosts.names(strip_port(raw), domains):
            return None
        return f"{request.url.scheme}://{raw}"

    def _challenge(self, request: Request, domains: Iterable[str], server_path: str, exc: AuthFailed) -> str:
        parts = ['Bearer realm="higress-ops"']
        base = self.resource_base(request, domains)
        url = f"{base}{METADATA_PREFIX}{server_path}"
        if base is not None and self.auth.resource_metadata(url) is not None:  # modes with an authorization server
            parts.append(f'resource_metadata="{url}"')
        if exc.error:
            parts.append(f'error="{exc.error}"')
        return ", ".join(parts)
