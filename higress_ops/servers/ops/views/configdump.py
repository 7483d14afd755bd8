"""Reading Envoy's /config_dump JSON the way istioctl's configdump wrapper does.

Every view works on the parsed dict; nothing here talks to the network. Sections are found by their
`@type` suffix, so dumps cut with `resource=` or from an older Envoy still work.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Json = Mapping[str, Any]

CLUSTERS = "ClustersConfigDump"
LISTENERS = "ListenersConfigDump"
ROUTES = "RoutesConfigDump"
SECRETS = "SecretsConfigDump"
ENDPOINTS = "EndpointsConfigDump"


class DumpError(ValueError):
    """The input is not a config dump this view can read."""


def mapping(value: Any) -> Json:
    """`value` when it is an object, else {}: dump fields may be absent or of another type, and this keeps the
    callers' `.get` chains typed (mypy cannot narrow `x.get(k)` from a separate isinstance on the same call)."""
    return value if isinstance(value, Mapping) else {}


def section(dump: Json, kind: str) -> Json:
    """The `configs[]` entry whose @type ends with `kind` (empty when absent)."""
    configs = dump.get("configs") if isinstance(dump, Mapping) else None
    if not isinstance(configs, list):
        raise DumpError("not an Envoy config dump: expected an object with a 'configs' list")
    for entry in configs:
        if isinstance(entry, Mapping) and str(entry.get("@type", "")).endswith("." + kind):
            return entry
    return {}


def _objs(value: Any) -> Iterator[Json]:
    if isinstance(value, list):
        yield from (v for v in value if isinstance(v, Mapping))


def clusters(dump: Json) -> list[Json]:
    """Dynamic active clusters, then static ones (istioctl's order before sorting)."""
    sec = section(dump, CLUSTERS)
    out = [c["cluster"] for c in _objs(sec.get("dynamic_active_clusters")) if isinstance(c.get("cluster"), Mapping)]
    out += [c["cluster"] for c in _objs(sec.get("static_clusters")) if isinstance(c.get("cluster"), Mapping)]
    return out


def listeners(dump: Json) -> list[Json]:
    """Active dynamic listeners, then static ones."""
    sec = section(dump, LISTENERS)
    out = []
    for entry in _objs(sec.get("dynamic_listeners")):
        active = entry.get("active_state")
        if isinstance(active, Mapping) and isinstance(active.get("listener"), Mapping):
            out.append(active["listener"])
    out += [e["listener"] for e in _objs(sec.get("static_listeners")) if isinstance(e.get("listener"), Mapping)]
    return out


def _inner(entries: Any, key: str) -> list[Json]:
    return [e[key] for e in _objs(entries) if isinstance(e.get(key), Mapping)]


def route_configs(dump: Json) -> list[Json]:
    """RDS route configurations, then static ones (inline HCM routes are not here, as in istioctl)."""
    sec = section(dump, ROUTES)
    return _inner(sec.get("dynamic_route_configs"), "route_config") + _inner(
        sec.get("static_route_configs"), "route_config")


def dynamic_secrets(dump: Json) -> list[tuple[str, Json]]:
    """(state, entry) for warming then active SDS secrets, istioctl's order."""
    sec = section(dump, SECRETS)
    out = [("WARMING", s) for s in _objs(sec.get("dynamic_warming_secrets"))]
    out += [("ACTIVE", s) for s in _objs(sec.get("dynamic_active_secrets"))]
    return out


def static_secrets(dump: Json) -> list[Json]:
    return list(_objs(section(dump, SECRETS).get("static_secrets")))


def endpoint_configs(dump: Json) -> list[Json]:
    sec = section(dump, ENDPOINTS)
    return _inner(sec.get("dynamic_endpoint_configs"), "endpoint_config") + _inner(
        sec.get("static_endpoint_configs"), "endpoint_config")


def parse_subset_key(key: str) -> tuple[str, int, str, str]:
    """Istio's `direction|port|subset|hostname` cluster name -> (direction, port, subset, hostname).

    Mirrors istio's model.ParseSubsetKey: a part that is not a number gives port 0, and a name with
    more parts than four gives an empty hostname.
    """
    sep = "_." if key.startswith(("outbound_.", "inbound_.")) else "|"
    parts = key.split(sep, 3)
    direction = parts[0]
    port = 0
    if len(parts) > 1:
        try:
            port = int(parts[1])
        except ValueError:
            port = 0
    subset = parts[2] if len(parts) > 2 else ""
    hostname = parts[3] if len(parts) > 3 and sep not in parts[3] else ""
    return direction, port, subset, hostname


def sort_key(name: str) -> tuple[str, str, int, str]:
    """istioctl's cluster ordering: hostname, subset, port, direction (plain names sort as hostnames)."""
    if len(name.split("|")) > 3:
        direction, port, subset, hostname = parse_subset_key(name)
        return hostname, subset, port, direction
    return name, "", 0, ""


def describe_management(metadata: Any) -> str:
    """The Istio config a resource came from (`name.namespace`), from filter_metadata.istio.config."""
    if not isinstance(metadata, Mapping):
        return ""
    istio = (metadata.get("filter_metadata") or {}).get("istio")
    if not isinstance(istio, Mapping) or "config" not in istio:
        return ""
    path = istio.get("config")
    if not isinstance(path, str):  # Go's GetStringValue gives "" for another type, which renders as <unknown>
        return "<unknown>"
    if path.startswith("/apis/networking.istio.io/"):
        pieces = path.split("/")
        if len(pieces) != 8:
            return ""
        return f"{pieces[7]}.{pieces[5]}"
    return "<unknown>"


def socket_address(address: Any) -> tuple[str, int]:
    """(address, port) of an envoy Address; a pipe gives (path, 0)."""
    if not isinstance(address, Mapping):
        return "", 0
    sock = address.get("socket_address")
    if isinstance(sock, Mapping):
        try:
            port = int(sock.get("port_value") or 0)
        except (TypeError, ValueError):
            port = 0
        return str(sock.get("address", "")), port
    pipe = address.get("pipe")
    if isinstance(pipe, Mapping):
        return str(pipe.get("path", "")), 0
    return "", 0
