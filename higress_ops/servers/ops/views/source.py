"""Where views get their JSON: Envoy admin and istiod, fetched and parsed off the event loop.

`Source` is the small surface views need. The ops server's own upstream clients can provide it
directly (methods `envoy_json` / `istiod_json`); `HttpSource` is a plain implementation over the two
configured URLs, used when they do not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlencode

import anyio
import requests

from higress_ops.servers.base import CallContext

DEFAULT_MAX_BYTES = 64 * 1024


class UpstreamError(RuntimeError):
    """An upstream answered badly or not at all; the message says what to do."""


@runtime_checkable
class Source(Protocol):
    max_bytes: int

    async def envoy_json(self, path: str, params: Mapping[str, str] | None = None) -> Any: ...

    async def istiod_json(self, path: str, params: Mapping[str, str] | None, ctx: CallContext) -> Any: ...


class HttpSource:
    def __init__(self, envoy_url: str, istiod_url: str, *, timeout: float = 15.0,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.envoy_url = envoy_url.rstrip("/")
        self.istiod_url = istiod_url.rstrip("/")
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._session = requests.Session()

    async def envoy_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return await anyio.to_thread.run_sync(self._get, "Envoy admin", self.envoy_url, path, params, {})

    async def istiod_json(self, path: str, params: Mapping[str, str] | None, ctx: CallContext) -> Any:
        headers = {}
        token = ctx.headers.get("x-istiod-token", "")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return await anyio.to_thread.run_sync(self._get, "istiod", self.istiod_url, path, params, headers)

    def _get(self, who: str, base: str, path: str, params: Mapping[str, str] | None,
             headers: dict[str, str]) -> Any:
        url = base + path + ("?" + urlencode(params) if params else "")
        shown = base + path  # never print headers: they may carry the token
        try:
            resp = self._session.get(url, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise UpstreamError(f"{who} at {shown} is unreachable ({type(exc).__name__}); check the URL in the "
                                "server config and that the component is running") from None
        if resp.status_code == 401:
            raise UpstreamError(f"{who} answered 401 for {path}: send a valid istio-ca token in X-Istiod-Token")
        if resp.status_code == 403:
            raise UpstreamError(f"{who} answered 403 for {path}: the token is not allowed for this namespace")
        if resp.status_code != 200:
            raise UpstreamError(f"{who} answered HTTP {resp.status_code} for {path}: {resp.text[:200].strip()}")
        try:
            return resp.json()
        except (ValueError, json.JSONDecodeError):
            raise UpstreamError(f"{who} returned non-JSON for {path}: {resp.text[:120].strip()!r}") from None

    def close(self) -> None:
        self._session.close()


def as_source(upstreams: Any) -> Source:
    """The ops server's upstreams as a Source: directly when they have the methods, else over their URLs."""
    if isinstance(upstreams, Source):
        return upstreams
    config = getattr(upstreams, "config", None)
    envoy = getattr(upstreams, "envoy_admin_url", None) or (config or {}).get("envoyAdminURL")
    istiod = getattr(upstreams, "istiod_url", None) or (config or {}).get("istiodURL")
    if not envoy or not istiod:
        raise TypeError(f"cannot read Envoy/istiod from {type(upstreams).__name__}")
    max_bytes = int(getattr(upstreams, "max_response_bytes", 0) or (config or {}).get("maxResponseBytes", 0)
                    or DEFAULT_MAX_BYTES)
    return HttpSource(envoy, istiod, max_bytes=max_bytes)
