"""`higress-ops validate PATH`: check a higress-config before deploying it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from higress_ops.config import ConfigError, McpServerConfig, load_file
from higress_ops.registry import RegistryError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="validate a higress-config ConfigMap (or its `higress` YAML) and list its servers",
        description="Validate a higress-config ConfigMap manifest, or the YAML held in its data.higress, against "
        "the schemas of the mcpServer block and of each server type. Prints one line per server, or every problem "
        "with its JSON pointer (exit 1). Warnings do not fail it (exit 0): servers of a type no installed plugin "
        "serves (the gateway's own higress-api, rag, ...) are skipped, and unknown keys directly under mcpServer "
        "are ignored (Higress may add keys, but a typo is likelier).",
    )
    parser.add_argument("path", metavar="PATH", help="file to read, or '-' for standard input")
    parser.add_argument("--strict", action="store_true", help="treat every warning as an error (exit 1)")
    parser.set_defaults(handler=run)


def print_problems(exc: ConfigError, source: str, prefix: str = "") -> None:
    """Every problem, then the warnings found beside them (an error never hides a warning)."""
    count = len(exc.problems)
    print(f"{prefix}{exc.source or source}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)
    for warning in exc.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_file(args.path, strict=args.strict)
    except ConfigError as exc:
        print_problems(exc, args.path)
        return 1
    except RegistryError as exc:  # a broken installation, not the user's file
        print(f"higress-ops: {exc}", file=sys.stderr)
        return 1
    for line in summary(config):
        print(line)
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not config.enable:
        print("note: mcpServer.enable is false; Higress would not serve these servers", file=sys.stderr)
    return 0


def summary(config: McpServerConfig) -> list[str]:
    """One line per server: name, type, message endpoint, SSE endpoint, hosts; then the skipped ones."""
    if not config.servers and not config.skipped:
        return ["valid: no servers configured"]
    return [
        f"{entry.name}: type={entry.type} path={entry.path} sse={entry.path}{config.sse_path_suffix} "
        f"domains={','.join(entry.domain_list)}"
        for entry in config.servers
    ] + [f"{entry.name}: type={entry.type} path={entry.path} skipped (not served here)" for entry in config.skipped]
