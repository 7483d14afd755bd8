"""`istioctl proxy-config ecds` (ECDS NAME, TYPE), and what Higress's Wasm plugins need beside it.

Extension configs come from every EcdsConfigDump in the dump (one per filter kind), sorted as istioctl
does: by type URL, then name. Whether a config loaded is not in the dump (Envoy 1.40 shows a rejected
config there just like an accepted one), so the load state comes from the
`extension_config_discovery.<kind>.<name>.*` counters: a config whose updates were all rejected never
loaded, and requests through its filter chain fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views.table import Table

HEADERS = ("ECDS NAME", "TYPE")
WASM_HEADERS = ("PLUGIN", "VM", "RUNTIME", "SOURCE", "STATE")
STATS_FILTER = r"^extension_config_discovery\..+\.(update_success|update_rejected|config_fail)$"
_PREFIX = "type.googleapis.com/"


def entries(dump: cd.Json) -> list[cd.Json]:
    """Every ECDS entry (`ecds_filter`, `error_state`, ...) of every EcdsConfigDump, sorted like istioctl."""
    configs = dump.get("configs") if isinstance(dump, Mapping) else None
    if not isinstance(configs, list):
        raise cd.DumpError("not an Envoy config dump: expected an object with a 'configs' list")
    out: list[cd.Json] = []
    for section in configs:
        if not isinstance(section, Mapping):
            continue
        if str(section.get("@type", "")).endswith(".EcdsConfigDump"):
            out += [e for e in section.get("ecds_filters") or [] if isinstance(e, Mapping)]
        elif str(section.get("@type", "")).endswith(".EcdsFilterConfig"):  # a resource=ecds_filters answer
            out.append(section)
    return sorted(out, key=lambda e: (type_url(e), name(e)))


def _config(entry: cd.Json) -> cd.Json:
    cfg = entry.get("ecds_filter")
    return cfg if isinstance(cfg, Mapping) else {}


def name(entry: cd.Json) -> str:
    return str(_config(entry).get("name", ""))


def type_url(entry: cd.Json) -> str:
    typed = _config(entry).get("typed_config")
    return str(typed.get("@type", "")) if isinstance(typed, Mapping) else ""


def counters(stats: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """extension config name -> {update_success, update_rejected, config_fail} from the ECDS stats."""
    out: dict[str, dict[str, int]] = {}
    for stat, value in stats.items():
        if not stat.startswith("extension_config_discovery."):
            continue
        rest, _, counter = stat.rpartition(".")
        kind_and_name = rest[len("extension_config_discovery."):]
        _, _, ext = kind_and_name.partition(".")  # http_filter, network_filter, listener_filter, ...
        out.setdefault(ext, {})[counter] = value
    return out


def load_state(entry: cd.Json, stats: Mapping[str, dict[str, int]]) -> str:
    error = entry.get("error_state")
    if isinstance(error, Mapping) and error:
        return f"FAILED: {str(error.get('details', '') or 'update rejected')[:200]}"
    c = stats.get(name(entry), {})
    if c.get("update_success", 0) == 0 and (c.get("update_rejected", 0) or c.get("config_fail", 0)):
        return f"FAILED: {c.get('update_rejected', 0) or c.get('config_fail', 0)} update(s) rejected, none loaded"
    if c.get("update_rejected", 0) or c.get("config_fail", 0):
        return f"LOADED (a later update was rejected {c.get('update_rejected', 0) or c.get('config_fail', 0)}x)"
    return "LOADED" if c else "UNKNOWN (no ECDS counters)"


def table(dump: cd.Json) -> Table:
    return Table(HEADERS, [{"ECDS NAME": name(e), "TYPE": type_url(e).removeprefix(_PREFIX)} for e in entries(dump)])


def _wasm_source(code: Any) -> str:
    if not isinstance(code, Mapping):
        return ""
    if isinstance(code.get("local"), Mapping):
        local = code["local"]
        return f"local {local.get('filename') or '(inline bytes)'}"
    remote = code.get("remote")
    if isinstance(remote, Mapping):
        uri = str((remote.get("http_uri") or {}).get("uri", ""))
        return ("OCI " if uri.startswith("oci://") else "HTTP ") + uri
    return ""


def wasm_rows(dump: cd.Json, stats: Mapping[str, int]) -> list[dict[str, Any]]:
    """One row per Wasm extension config: plugin, VM id, runtime, where the code comes from, load state."""
    by_name = counters(stats)
    out = []
    for e in entries(dump):
        if not type_url(e).endswith(".wasm.v3.Wasm"):
            continue
        plugin = (_config(e).get("typed_config") or {}).get("config") or {}
        vm = cd.mapping(plugin.get("vm_config"))
        out.append({"PLUGIN": str(plugin.get("name") or name(e)), "VM": str(vm.get("vm_id", "")),
                    "RUNTIME": str(vm.get("runtime", "")).removeprefix("envoy.wasm.runtime."),
                    "SOURCE": _wasm_source(vm.get("code")), "STATE": load_state(e, by_name)})
    return out


def failures(dump: cd.Json, stats: Mapping[str, int]) -> list[str]:
    """'name (type): state' for each extension config that did not load, for get-gateway-health."""
    by_name = counters(stats)
    return [f"{name(e)} ({type_url(e).removeprefix(_PREFIX) or 'no config'}): {state}" for e in entries(dump)
            if (state := load_state(e, by_name)).startswith("FAILED")]
