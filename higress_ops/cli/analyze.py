"""`higress-ops analyze`: the analyze tool's lint from a shell, every finding at once (istioctl analyze's flags and
exit code: 79 when a finding is at least as severe as --failure-threshold, so a CI step can gate on it).

It builds the server from the config, as `call` does, reads the same Envoy a tool call would (`--pod` for another
gateway pod) and runs the same detectors with the same argument checks; it prints all findings rather than
pages of 2,000 tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from higress_ops.cli.tools import fail, server_of
from higress_ops.config import ConfigError
from higress_ops.registry import RegistryError
from higress_ops.servers.base import CallContext
from higress_ops.servers.ops import detectors
from higress_ops.servers.ops.detectors import Severity
from higress_ops.servers.ops.server import OpsServer
from higress_ops.servers.ops.upstream import UpstreamError
from higress_ops.servers.ops.views import analyze

FOUND_ISSUES = 79  # istioctl's ExitAnalyzerFoundIssues


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "analyze", help="lint the live configuration of a gateway (like istioctl analyze)",
        description="Run every detector over the gateway's Envoy, istiod and (when the server reads it) the "
        "Kubernetes API, and print the findings worst first: severity, Istio's message code, the object to edit, "
        "what is wrong and the fix. Exit 79 when a finding is at least as severe as --failure-threshold, 1 when "
        "the gateway's Envoy could not be read, 2 for bad arguments.")
    parser.add_argument("--config", metavar="PATH", help="higress-config manifest or its YAML (required)")
    parser.add_argument("--server", default=None, metavar="NAME", help="servers[] entry (default: the first)")
    parser.add_argument("--istiod-token", default=None, help="sent to istiod as a bearer token (as X-Istiod-Token)")
    parser.add_argument("--pod", default=None, help="the gateway pod to read (default: the server's default one)")
    parser.add_argument("--output-threshold", default="info", choices=analyze.SEVERITIES,
                        help="the least severe findings to print (default info)")
    parser.add_argument("--failure-threshold", default="error", choices=analyze.SEVERITIES,
                        help="findings this severe or worse make the exit code 79 (default error)")
    parser.add_argument("--detector", action="append", default=[], metavar="NAME",
                        help="run only this detector (repeatable; --list-detectors names them)")
    parser.add_argument("--suppress", "-S", action="append", default=[], metavar="RULE",
                        help="istioctl's suppression rule CODE=Kind namespace/name, '*' for any part (repeatable)")
    parser.add_argument("--kind", action="append", default=[], help="only findings about this kind (repeatable)")
    parser.add_argument("--namespace", default="", help="only findings about objects in this namespace")
    parser.add_argument("--days", type=int, default=30,
                        help="certificates expiring within this many days are findings (default 30)")
    parser.add_argument("--output", "-o", default="text", choices=("text", "json"), help="text (default) or json")
    parser.add_argument("--list-detectors", "-L", action="store_true", help="list the detectors and exit")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.list_detectors:
        width = max(len(d.name) for d in detectors.ANALYZE)
        for d in detectors.ANALYZE:
            print(f"{d.name:<{width}}  {d.title} (reads {', '.join(d.sources)})")
        return 0
    if args.config is None:
        print("higress-ops analyze: --config PATH is required", file=sys.stderr)
        return 2
    try:  # every finding, so the exit code sees those below --output-threshold too (as istioctl's does)
        sel = analyze.selection({"detectors": args.detector, "suppress": args.suppress, "kinds": args.kind,
                                 "namespace": args.namespace, "days": args.days})
    except ValueError as exc:
        print(f"higress-ops analyze: {exc}", file=sys.stderr)
        return 2
    try:
        server = server_of(args)
    except (ConfigError, RegistryError, ValueError) as exc:
        return fail(exc, args.config)
    if not isinstance(server, OpsServer):
        print(f"higress-ops analyze: server {server.name!r} is not of type higress-ops", file=sys.stderr)
        asyncio.run(server.aclose())
        return 2
    return asyncio.run(_analyze(server, sel, args))


async def _analyze(server: OpsServer, sel: analyze.Selection, args: argparse.Namespace) -> int:
    try:
        try:
            target = await server.upstreams.gateways.target(args.pod)
        except UpstreamError as exc:
            print(f"higress-ops analyze: {exc}", file=sys.stderr)
            return 1
        headers = {"x-istiod-token": args.istiod_token} if args.istiod_token else {}
        ctx = CallContext(headers=headers, via="cli", target=target.name)
        try:  # no Envoy, no analysis: the detectors that need none would make it look clean
            await server.upstreams.envoy_json("/config_dump", {"mask": "bootstrap.node.id"}, ctx)
        except UpstreamError as exc:
            print(f"higress-ops analyze: {exc}", file=sys.stderr)
            return 1
        out = await analyze.outcome(sel, server.upstreams, ctx)
        await out.link(0, len(out.findings))
    finally:
        await server.aclose()
    keep = [i for i, f in enumerate(out.findings) if f.severity <= Severity[args.output_threshold.upper()]]
    shown = analyze.Outcome([out.findings[i] for i in keep], out.ran, out.skipped, out.notes,
                            edits={n: out.edits.get(i, []) for n, i in enumerate(keep)})
    if args.output == "json":
        print(json.dumps({"counts": shown.counts(), "findings": analyze.structured(shown, 0, len(shown.findings))[
            "findings"],
                          "not_checked": out.skipped, "notes": out.notes}, indent=2, ensure_ascii=False))
    else:
        print(analyze.summary(shown))
        for i, f in enumerate(shown.findings):
            print("\n".join(analyze.finding_lines(f, shown.edits.get(i, ()))))
        for line in analyze.trailer(shown):
            print(line, file=sys.stderr)
    origin = f"pod {target.name}" if target.pod is not None else f"the Envoy at {target.name}"
    print(f"[analyzed {origin}]", file=sys.stderr)
    worst = out.worst()
    return FOUND_ISSUES if worst is not None and worst <= Severity[args.failure_threshold.upper()] else 0
