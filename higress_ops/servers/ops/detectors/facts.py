"""One tool call's upstream documents, each fetched at most once and shared by every detector and the view.

A detector asks for what it reads (`await facts.clusters_json()`); the first ask fetches and later or concurrent
asks get the same answer, or the same UpstreamError. Every fetch reads the call's target (`ctx`) and is as small
as Envoy allows: one FieldMask request per config dump section (Envoy applies a mask to one config type), the
routed clusters' configs by an anchored name_regex (RE2's program-size limit of 100 holds about two escaped names),
stats by one filter each. Work over the documents that may take long (megabytes of dump) goes through `compute`,
off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from higress_ops.servers.base import CallContext
from higress_ops.servers.ops.detectors.base import Focus, in_scope
from higress_ops.servers.ops.views import certs as cert_view
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views import ecds, proxy_status
from higress_ops.servers.ops.views import endpoints as eps
from higress_ops.servers.ops.views import gateway_health as gh
from higress_ops.servers.ops.views import host_health as hh
from higress_ops.servers.ops.views import routes as rt
from higress_ops.servers.ops.views.configdump import DumpError
from higress_ops.servers.ops.views.routes import RouteAt
from higress_ops.servers.ops.views.source import Source, UpstreamError

if TYPE_CHECKING:  # the inventory reads these facts; it is made on first use
    from higress_ops.servers.ops.objects.inventory import Inventory

T = TypeVar("T")
SECTION_FIELDS = {
    "clusters": "static_clusters,dynamic_active_clusters,dynamic_warming_clusters",
    "listeners": "static_listeners,dynamic_listeners",
    "routes": "static_route_configs,dynamic_route_configs",
    "secrets": "static_secrets,dynamic_active_secrets,dynamic_warming_secrets",
}
ECDS_FIELDS = "ecds_filters"
CONFIG_NAMES = 50  # cluster configs fetched by name in one call, at most (two small requests each)


_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()


def _one_thread() -> anyio.CapacityLimiter:
    """The event loop's limiter for `compute` (a limiter belongs to the loop it was made on)."""
    loop = asyncio.get_running_loop()
    limiter = _LIMITERS.get(loop)
    if limiter is None:
        limiter = _LIMITERS[loop] = anyio.CapacityLimiter(1)
    return limiter


_OF_THE_CALL: contextvars.ContextVar[list[Facts] | None] = contextvars.ContextVar("facts_of_the_call", default=None)


@contextlib.contextmanager
def released_after_the_call() -> Iterator[None]:
    """Every Facts made inside lets its documents go when the block ends. A failed read's exception, kept for
    later asks, holds the frames that awaited it, which hold the Facts: a cycle that only the garbage collector
    frees, holding every document of the call until a full collection (~100 ms on a 12 MB dump's call)."""
    made: list[Facts] = []
    token = _OF_THE_CALL.set(made)
    try:
        yield
    finally:
        _OF_THE_CALL.reset(token)
        for facts in made:
            facts.release()


class Facts:
    """The documents of one call. Not shared between calls: a call reads the gateway as it is now."""

    def __init__(self, src: Source, ctx: CallContext, *, days: int = 30) -> None:
        self.src = src
        self.ctx = ctx
        self.days = days  # certificates expiring within this many days count as expiring
        self._memo: dict[tuple[Any, ...], asyncio.Future[Any]] = {}
        self.notes: dict[str, list[str]] = {}  # detector -> what it could not read, said beside its findings
        self._wanted: dict[str, None] = {}  # the /stats filters of this call, fetched together by counters()
        self._objects: Inventory | None = None
        made = _OF_THE_CALL.get()
        if made is not None:
            made.append(self)

    def release(self) -> None:
        """The call is over: drop its documents and the objects made from them (they refer back to these)."""
        self._memo.clear()
        self._objects = None

    def note(self, detector: str, text: str) -> None:
        if text and text not in self.notes.setdefault(detector, []):
            self.notes[detector].append(text)

    async def _once(self, key: tuple[Any, ...], fetch: Callable[[], Awaitable[T]]) -> T:
        future = self._memo.get(key)
        if future is None:
            future = self._memo[key] = asyncio.ensure_future(fetch())
        result: T = await future
        return result

    async def once(self, key: tuple[Any, ...], make: Callable[[], Awaitable[T]]) -> T:
        """Anything derived from this call's documents, made at most once per call (the objects layer's
        parsed Ingresses, Services, ...)."""
        return await self._once(("derived", *key), make)

    @staticmethod
    async def compute(fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread: pure-Python work over a big document lets the loop serve others. One
        such thread at a time: they hold the GIL anyway, and each more one takes its share of it from the loop
        (analyze's dozen detectors at once made a concurrent ping 10x slower)."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=_one_thread())

    # ------------------------------------------------------------------ Envoy

    async def envoy(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        key = ("envoy", path, tuple(sorted((params or {}).items())))
        return await self._once(key, lambda: self.src.envoy_json(path, params, self.ctx))

    async def dump(self, *kinds: str) -> cd.Json:
        """Only the config dump sections asked for (`clusters`, `listeners`, `routes`, `secrets`), merged."""
        configs: list[Any] = []
        for kind in kinds:
            part = await self.envoy("/config_dump", {"mask": SECTION_FIELDS[kind]})
            configs += part.get("configs", []) if isinstance(part, dict) else []
        return {"configs": configs}

    async def clusters_json(self) -> Any:
        return await self.envoy("/clusters", {"format": "json"})

    async def stats(self, regex: str) -> dict[str, int]:
        """name -> value of the used counters and gauges matching `regex` (Envoy's RE2 partial match)."""
        return gh.stat_values(await self.envoy("/stats", {"format": "json", "usedonly": "", "filter": regex}))

    def want(self, *patterns: str) -> None:
        """Register /stats filters before the first `counters()`: the call fetches their union once."""
        if ("counters",) in self._memo and any(p not in self._wanted for p in patterns):
            raise RuntimeError("counters were already fetched: register every filter before the first read")
        self._wanted.update(dict.fromkeys(p for p in patterns if p))

    async def counters(self) -> dict[str, int]:
        """The used counters and gauges matching any registered filter, from one /stats request (Envoy's
        /stats filter, unlike config_dump's name_regex, takes a long RE2 alternation)."""
        async def fetch() -> dict[str, int]:
            if not self._wanted:
                return {}
            regex = "|".join(f"(?:{p})" for p in self._wanted)
            return await self.stats(regex)
        return await self._once(("counters",), fetch)

    async def cluster_healths(self) -> dict[str, hh.ClusterHealth]:
        """Every cluster as the load balancer sees it (host flags, counters), computed once per call; panic
        thresholds come from the configs this call has fetched, else Envoy's default."""
        async def build() -> dict[str, hh.ClusterHealth]:
            statuses = eps.cluster_statuses(await self.clusters_json())
            return await self.compute(lambda: {str(cs.get("name", "")): hh.cluster_health(cs, str(cs.get("name", "")))
                                               for cs in statuses})
        return await self._once(("cluster_healths",), build)

    async def routes(self) -> list[RouteAt]:
        """Every route of the routes section with where it is: (route config, virtual host, index, route)."""
        async def build() -> list[RouteAt]:
            dump = await self.dump("routes")
            return await self.compute(lambda: list(rt.all_routes(dump)))
        return await self._once(("routes",), build)

    async def certs(self) -> Any:
        return await self.envoy("/certs")

    async def cert_rows(self) -> list[dict[str, Any]]:
        """check-certs' rows (each certificate, its secret, status within `days`, the chains serving it), once."""
        async def build() -> list[dict[str, Any]]:
            certs_json, dump = await self.certs(), await self.dump("secrets", "listeners")
            return await self.compute(lambda: cert_view.table(certs_json, dump, self.days).rows)
        return await self._once(("cert_rows",), build)

    async def cluster_configs(self, names: list[str]) -> dict[str, Any]:
        """The named clusters' configs (at most CONFIG_NAMES), never the whole clusters section."""
        found: dict[str, Any] = {}
        for name in sorted(set(names))[:CONFIG_NAMES]:
            config = await self._once(("cluster_config", name), partial(self._cluster_config, name))
            if config is not None:
                found[name] = config
        return found

    async def with_own_thresholds(self, names: list[str]) -> dict[str, Any]:
        """The named clusters' configs (at most CONFIG_NAMES), each one's ClusterHealth (cluster_healths) given
        the panic threshold its config sets: what Envoy balances with, where the default would be a guess."""
        configs = await self.cluster_configs(names)
        healths = await self.cluster_healths()
        for name, config in configs.items():
            if name in healths:
                healths[name].threshold = hh.panic_threshold(config)
        return configs

    async def flagged_hosts(self, flags: frozenset[str], focus: Focus | None,
                            detailed: int = 10) -> list[tuple[str, hh.ClusterHealth, Any, list[dict[str, Any]]]]:
        """The clusters in scope with hosts carrying any of `flags` (Envoy's health flags), each as (name, health,
        its config or None, those hosts); the first `detailed` are read with their config and own threshold."""
        healths = await self.cluster_healths()
        found = {n: [h for h in healths[n].hosts if flags & set(h["flags"])] for n in in_scope(healths, focus)}
        found = {n: hosts for n, hosts in found.items() if hosts}
        configs = await self.with_own_thresholds(list(found)[:detailed]) if found else {}
        return [(n, healths[n], configs.get(n), hosts) for n, hosts in found.items()]

    async def _cluster_config(self, name: str) -> Any:
        regex = re.escape(name) if len(name) <= 60 else re.escape(name[:60]) + ".*"
        for fld in ("static_clusters", "dynamic_active_clusters"):
            part = await self.src.envoy_json("/config_dump", {"resource": fld, "name_regex": regex}, self.ctx)
            for entry in part.get("configs", []) if isinstance(part, dict) else []:
                cluster = entry.get("cluster") if isinstance(entry, dict) else None
                if isinstance(cluster, dict) and cluster.get("name") == name:
                    return cluster
        return None

    async def response_codes(self, names: list[str]) -> dict[str, int]:
        """The clusters' `upstream_rq_<code>` counters, one short filter per cluster (RE2 size limit)."""
        found: dict[str, int] = {}
        for name in names[:10]:
            found.update(await self.stats(r"^cluster\." + re.escape(name[:40]) + r".*\.upstream_rq_[0-9]+$"))
        return found

    async def ecds(self) -> tuple[Any, dict[str, int]]:
        """The ECDS section and its load counters (the dump alone cannot tell a rejected config from a loaded one)."""
        try:
            dump = await self.envoy("/config_dump", {"mask": ECDS_FIELDS})
        except UpstreamError as exc:  # Envoy answers 400 to the mask when no listener uses ECDS at all
            if "HTTP 400" not in str(exc):
                raise
            dump = {"configs": []}
        return dump, await self.stats(ecds.STATS_FILTER)

    async def node(self) -> cd.Json:
        """The bootstrap node: id, cluster and metadata (pilot-agent puts the pod's LABELS, NAMESPACE, NAME)."""
        dump = await self.envoy("/config_dump", {"mask": "bootstrap.node"})
        return cd.mapping(cd.mapping(cd.section(dump, "BootstrapConfigDump").get("bootstrap")).get("node"))

    async def node_id(self) -> str:
        node = await self.envoy("/config_dump", {"mask": "bootstrap.node.id"})
        return str(cd.section(node, "BootstrapConfigDump").get("bootstrap", {}).get("node", {}).get("id", ""))

    # ------------------------------------------------------------------ istiod

    async def istiod(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """istiodURL's answer (raises UpstreamError: a detector that needs istiod says why it could not ask)."""
        key = ("istiod", path, tuple(sorted((params or {}).items())))
        return await self._once(key, lambda: self.src.istiod_json(path, params, self.ctx))

    async def istiod_each(self, path: str) -> list[tuple[str, Any]]:
        """(istiod name, JSON or UpstreamError) from every istiod pod."""
        return await self._once(("istiod_each", path), lambda: self.src.istiod_json_each(path, None, self.ctx))

    async def istiod_nacks(self) -> tuple[list[str] | None, str]:
        """This proxy's NACKs as istiod recorded them, or None and why istiod was not asked or did not answer."""
        proxy = proxy_status.proxy_name(await self.node_id())
        found, answered = [], False
        for name, answer in await self.istiod_each("/debug/syncz"):
            if not isinstance(answer, UpstreamError):
                with contextlib.suppress(DumpError):
                    found += proxy_status.rows(answer, name)
                    answered = True
        if not answered:
            return None, "istiod did not answer syncz: get-istiod-proxy-status says why"
        mine = [r for r in found if r["NAME"] == proxy]
        return [f"{col}: {err}" for r in mine for col, err in r["errors"].items()], ("" if mine else
                                                                                    "istiod does not list this proxy")

    # ------------------------------------------------------------------ Kubernetes API, and the objects

    async def kube(self, kind: str, namespace: str, labels: str = "", fields: str = "") -> Any:
        """A list of kubeapi.KINDS `kind` (a kubeapi.Listed); raises kubeapi.KubeError saying what is missing."""
        return await self._once(("kube", kind, namespace, labels, fields),
                                lambda: self.src.kube_list(kind, namespace, labels, fields))

    async def kube_object(self, kind: str, namespace: str, name: str) -> Any:
        """One object, or None when it does not exist."""
        return await self._once(("kube_get", kind, namespace, name),
                                lambda: self.src.kube_get(kind, namespace, name))

    @property
    def objects(self) -> Inventory:
        """The Ingresses, Services, endpoints, Istio resources ... behind Envoy's config, from whichever source
        answers (objects/inventory.py)."""
        if self._objects is None:
            from higress_ops.servers.ops.objects.inventory import Inventory

            self._objects = Inventory(self)
        return self._objects
