"""The two upstreams of the ops server: Envoy's admin API and istiod's debug port.

Strictly read-only: only GET, only paths the catalog names, never a redirect (another host could be
behind it). One aiohttp connection pool per upstream, on the server's event loop: a tool call's fetch
costs no thread hop. The caller's X-Istiod-Token becomes a bearer token on istiod requests only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from yarl import URL

from higress_ops import jsonfast, spans
from higress_ops.metrics import observe_upstream
from higress_ops.servers.base import CallContext
from higress_ops.servers.held import PER_CALL, ByteLedger, CallBytes

if TYPE_CHECKING:
    from higress_ops.servers.ops.kubeapi import Listed

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 64 * 1024
CONNECTIONS = 8  # per upstream: Envoy's admin API answers one request at a time anyway
TOKEN_HEADER = "x-istiod-token"
Query = Sequence[tuple[str, str]]


class UpstreamError(RuntimeError):
    """An upstream answered badly or not at all; the message says what to do, `reason` is a metric label."""

    def __init__(self, message: str, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Fetched:
    status: int
    content_type: str
    body: bytes

    @property
    def is_json(self) -> bool:
        return "json" in self.content_type

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def _unauthorized(status: int, path: str, namespace: str, via: str = "mcp") -> UpstreamError:
    reason = "401 Unauthorized" if status == 401 else "403 Forbidden"
    send = ("pass it with --istiod-token" if via == "cli"
            else "send it as the X-Istiod-Token header of your MCP connection")
    return UpstreamError(
        f"istiod answered {reason} for {path}. Its debug endpoints need an istio-ca token: create one with "
        f"`kubectl create token higress-gateway -n {namespace} --audience istio-ca --duration 87600h` and {send} "
        "(or set istiodToken in the server config)."
        + (" A 403 means the token's namespace is not allowed." if status == 403 else ""))


class Upstream:
    """One HTTP upstream: a connection pool used only for GETs of `base_url` + a catalog path.

    aiohttp on the server's own event loop: 0.03 ms over a bare http.client GET of Envoy's /server_info, where
    urllib3 in a worker thread cost 0.26 ms (its own layer plus the thread hop). The session is made on first
    use, in the running loop (a session belongs to one loop; the CLI and tests run several).
    """

    def __init__(self, who: str, base_url: str, *, timeout: float = DEFAULT_TIMEOUT,
                 connections: int = CONNECTIONS, shown: str | None = None) -> None:
        self.who = who
        self.label = "istiod" if who.startswith("istiod") else "envoy"  # the metrics' label: never a pod name
        self.base_url = base_url.rstrip("/")
        # Where messages say the upstream is: the configured URL, or nothing for a pod (`who` names it, and a pod
        # IP or a port-forward's loopback port means nothing to the caller).
        self.at = f"{self.who} at {self.base_url}" if shown is None else (f"{self.who} at {shown}" if shown
                                                                          else self.who)
        # What to fix when it cannot be reached: the config key holding the URL, or the pod itself.
        key = "istiodURL" if self.label == "istiod" else "envoyAdminURL"
        self.fix = (f"check {key} in the server config and that the component is running" if shown is None
                    else "check that the pod is running and its port is right")
        self.timeout = timeout
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the session's (aiohttp's own accessor is deprecated)

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or session.closed or self._loop is not loop:
            if session is not None:
                session.detach()  # another loop's pool (tests, the CLI): unusable here, and that loop is gone
            self._loop = loop
            # getaddrinfo even where aiodns is installed: /etc/hosts and the pod's DNS search domains apply.
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=30,
                                               resolver=aiohttp.ThreadedResolver()),
                # The whole GET within `timeout`: one timer per request (a read timeout re-arms one on every
                # read, and lets an upstream that trickles a byte now and then hold a call for ever).
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=min(self.timeout, 5.0)),
                headers={"Accept-Encoding": "identity"}, auto_decompress=False, raise_for_status=False)
        return session

    async def get(self, path: str, query: Query = (), headers: Mapping[str, str] | None = None,
                  held: CallBytes | None = None) -> Fetched:
        """GET base_url + path, timed into the upstream metrics (by catalog path; the query never is a label).
        The body counts against `held`, the call's share of the bytes answers may hold (servers/held.py)."""
        spans.mark("prepare")
        started = time.perf_counter()
        try:
            fetched = await self._get(path, query, headers, held or _unshared())
        except UpstreamError as exc:
            observe_upstream(self.label, path, time.perf_counter() - started, exc.reason)
            raise
        spans.mark("upstream")
        failed = None if fetched.status < 400 else _status_reason(fetched.status)
        observe_upstream(self.label, path, time.perf_counter() - started, failed)
        spans.mark("upstream-metrics")
        return fetched

    async def _get(self, path: str, query: Query, headers: Mapping[str, str] | None, held: CallBytes) -> Fetched:
        if not path.startswith("/") or "?" in path or "#" in path:
            raise ValueError(f"not a catalog path: {path!r}")
        url = URL(self.base_url + path + ("?" + urlencode(list(query)) if query else ""), encoded=True)
        try:
            async with self._client().get(url, headers=dict(headers or {}), allow_redirects=False) as response:
                body = await _read_capped(response, self.who, path, held)
                status, content_type = response.status, response.headers.get("content-type", "")
                location = response.headers.get("location", "")
        except aiohttp.ConnectionTimeoutError:
            raise UpstreamError(f"{self.at} is unreachable (connect timed out); {self.fix}",
                                "connect_timeout") from None
        except TimeoutError:
            raise UpstreamError(f"{self.who} did not answer {path} within {self.timeout:g}s (timeoutSeconds in the "
                                "server config); it may be overloaded, or the URL points at the wrong port",
                                "timeout") from None
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamError(f"{self.at} is unreachable ({_reason(exc)}); {self.fix}", "unreachable") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
            raise UpstreamError(f"{self.who} closed the connection in the middle of {path} ({_reason(exc)})",
                                "disconnected") from None
        except aiohttp.ClientResponseError as exc:  # not HTTP at all, or malformed
            raise UpstreamError(f"{self.at} did not answer {path} with valid HTTP "
                                f"({exc.message[:120]}); check that the URL points at the right port",
                                "invalid_http") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{self.at} is unreachable ({_reason(exc)}); {self.fix}", "unreachable") from None
        if 300 <= status < 400:
            target_host = urlsplit(location).netloc or "the same host"
            raise UpstreamError(f"{self.who} redirected {path} (HTTP {status}) to {target_host}; redirects are never "
                                "followed: point the server config at the real address", "redirect")
        return Fetched(status, content_type, body)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is None or session.closed:
            return
        if self._loop is asyncio.get_running_loop():
            await session.close()
        else:
            session.detach()


async def _read_capped(response: aiohttp.ClientResponse, who: str, path: str, held: CallBytes) -> bytes:
    """The body, each part counted before it is kept: over the call's or the process's share, the read stops
    there (a Content-Length over it is refused before reading at all)."""
    length = response.content_length
    if length is not None:
        _take(held, length, who, path)
        return await response.read()
    chunks: list[bytes] = []
    content = response.content
    while chunk := await content.readany():  # whatever arrived, whole: iter_chunked's slicing cost ~0.05 ms/call
        _take(held, len(chunk), who, path)
        chunks.append(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def _take(held: CallBytes, size: int, who: str, path: str) -> None:
    over = held.take(size)
    if over == "call":
        raise UpstreamError(f"{who} sent more than the {held.ledger.per_call >> 20} MiB one call may read for {path}; "
                            "refusing to read on (narrow the request)", "too_large")
    if over == "process":
        raise UpstreamError(f"this replica is already holding {held.ledger.total >> 20} MiB of upstream answers for "
                            f"calls in progress, so {path} was not read (on); retry in a few seconds", "busy")


def json_of(body: bytes | bytearray, who: str, path: str) -> Any:
    """The parsed body; invalid JSON is an UpstreamError naming who sent it (here or in the view process)."""
    try:
        return jsonfast.loads(body)
    except ValueError:
        text = body.decode("utf-8", errors="replace")[:120].strip()
        raise UpstreamError(f"{who} returned invalid JSON for {path}: {text!r}") from None


def _unshared() -> CallBytes:
    """A call outside any host (the CLI): only the per-call bound applies."""
    return ByteLedger(PER_CALL, PER_CALL).open()


def _status_reason(status: int) -> str:
    """A bounded label: the statuses an operator acts on by name, the rest by class."""
    return f"http_{status}" if status in (401, 403, 404, 503) else f"http_{status // 100}xx"


def _reason(exc: BaseException) -> str:
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "Connection reset",
                   "Server disconnected", "Response payload is not completed", "Connection broken"):
        if marker in text:
            return marker
    return type(exc).__name__


class Upstreams:
    """Envoy admin + istiod, as the catalog handler and the views (their `Source` protocol) use them."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        timeout = float(config.get("timeoutSeconds", DEFAULT_TIMEOUT))
        from higress_ops.config.model import PodFleet
        from higress_ops.servers.ops.targets import Fleet  # it builds on Upstream, defined above

        self.gateways = Fleet("Envoy admin", PodFleet.of(config, "gateways"), config["envoyAdminURL"],
                              "envoyAdminURL", timeout=timeout)
        self.istiods = Fleet("istiod", PodFleet.of(config, "istiods"), config["istiodURL"], "istiodURL",
                             timeout=timeout)
        self.envoy = self.gateways.local
        self.istiod = self.istiods.local  # istiodURL: the Service, for every istiod tool but the aggregated ones
        self.namespace = str(config.get("namespace", "higress-system"))
        from higress_ops.servers.ops.kubeapi import KubeApi  # it builds on UpstreamError, defined above

        self.kube = KubeApi(config, timeout=timeout)
        self.kube_namespaces = self.kube.namespaces
        self.max_bytes = int(config.get("maxResponseBytes", DEFAULT_MAX_BYTES))
        self._fallback_token = str(config.get("istiodToken") or "")

    def istiod_headers(self, ctx: CallContext) -> dict[str, str]:
        fallback = self._fallback_token if ctx.use_server_token else ""
        token = (ctx.headers.get(TOKEN_HEADER) or fallback).strip()
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in token):
            raise UpstreamError("the istiod token contains a control character (a pasted newline?); send it as "
                                "one line in X-Istiod-Token or istiodToken")
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def fetch(self, upstream: str, path: str, query: Query, ctx: CallContext, *,
                    ok: Sequence[int] = (200,), via: Upstream | None = None) -> Fetched:
        """GET with upstream-specific auth and status handling. Envoy: the call's target (`ctx.target`, else
        the default one); istiod: istiodURL unless `via` names one istiod pod."""
        if upstream == "istiod":
            client = via or self.istiod
            fetched = await client.get(path, query, self.istiod_headers(ctx), ctx.held)
            if fetched.status in (401, 403):
                raise _unauthorized(fetched.status, path, self.namespace, ctx.via)
        else:
            client = via or (await self.gateways.target(ctx.target)).upstream
            fetched = await client.get(path, query, None, ctx.held)
        if fetched.status not in ok:
            who = client.who
            detail = fetched.text().strip()[:300] or "(empty body)"
            raise UpstreamError(f"{who} answered HTTP {fetched.status} for {path}: {detail}")
        return fetched

    async def fetch_json(self, upstream: str, path: str, query: Query, ctx: CallContext, *,
                         via: Upstream | None = None) -> Any:
        fetched = await self.fetch(upstream, path, query, ctx, via=via)
        # On the loop: parsing is one C call that holds the GIL, so a worker thread would stall the loop just
        # the same. The server's view tools run in the view process (views/offload.py), which parses there.
        who = via.who if via is not None else ("istiod" if upstream == "istiod" else "Envoy admin")
        return json_of(fetched.body, who, path)

    # The views' Source protocol.
    async def envoy_json(self, path: str, params: Mapping[str, str] | None = None,
                         ctx: CallContext | None = None) -> Any:
        """The call's target Envoy (`ctx.target`); without a context, the default target."""
        return await self.fetch_json("envoy", path, list((params or {}).items()), ctx or CallContext())

    async def istiod_json(self, path: str, params: Mapping[str, str] | None, ctx: CallContext) -> Any:
        return await self.fetch_json("istiod", path, list((params or {}).items()), ctx)

    async def istiod_json_each(self, path: str, params: Mapping[str, str] | None,
                               ctx: CallContext) -> list[tuple[str, Any]]:
        """(istiod, JSON or the UpstreamError) from every istiod pod of the `istiods` block, or from istiodURL."""
        answers = []
        for name, who, answer in await self.istiod_fetch_each(path, params, ctx):
            if isinstance(answer, Fetched):
                try:
                    answers.append((name, json_of(answer.body, who, path)))
                except UpstreamError as exc:
                    answers.append((name, exc))
            else:
                answers.append((name, answer))
        return answers

    async def istiod_fetch_each(self, path: str, params: Mapping[str, str] | None,
                                ctx: CallContext) -> list[tuple[str, str, Fetched | UpstreamError]]:
        """(istiod, who it is in messages, its answer or the UpstreamError) from every istiod, concurrently."""
        query = list((params or {}).items())
        targets = await self.istiods.targets()

        async def one(upstream: Upstream) -> Fetched | UpstreamError:
            try:
                return await self.fetch("istiod", path, query, ctx, via=upstream)
            except UpstreamError as exc:
                return exc

        answers = await asyncio.gather(*(one(t.upstream) for t in targets))
        return [(t.name, t.upstream.who, answer) for t, answer in zip(targets, answers, strict=True)]

    async def kube_list(self, kind: str, namespace: str, labels: str = "", fields: str = "") -> Listed:
        """The Kubernetes API's objects (kubeapi.KubeApi: read-only, bounded, cached a few seconds)."""
        return await self.kube.list(kind, namespace, labels=labels, fields=fields)

    async def kube_get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return await self.kube.get(kind, namespace, name)

    async def aclose(self) -> None:
        await self.gateways.aclose()
        await self.istiods.aclose()

    async def __aenter__(self) -> Upstreams:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
