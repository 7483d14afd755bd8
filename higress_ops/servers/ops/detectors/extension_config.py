"""Extension configs (ECDS filters, Higress's Wasm plugins) that never loaded: Envoy 1.40 shows a rejected config
in the dump like an accepted one, so the load state comes from the `extension_config_discovery` counters
(ecds.py); requests through a filter chain waiting for one get 500."""

from __future__ import annotations

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.views import ecds


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    dump, stats = await facts.ecds()
    return [Finding(DETECTOR.name, Severity.ERROR, Ref("extension_config", line.split(" (", 1)[0]), line,
                    "fix the plugin's module or config (WasmPlugin url, sha256, its config)")
            for line in ecds.failures(dump, stats)]


DETECTOR = Detector("extension-config", "Extension configs (ECDS / Wasm) that failed to load", detect,
                    next_tool="get-envoy-proxy-config type=ecds")
