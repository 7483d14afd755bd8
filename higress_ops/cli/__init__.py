"""`higress-ops` command line. Each subcommand lives in its own module with `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from higress_ops import __version__

# module name -> registers one or more subcommands; imported lazily only to build the parser
_COMMAND_MODULES = ("validate", "serve", "tools", "analyze")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="higress-ops",
        description="Higress Ops MCP Server: MCP tools over Istiod debug endpoints and the Envoy admin API.",
    )
    parser.add_argument("--version", action="version", version=f"higress-ops {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"higress_ops.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"higress_ops.cli.{name}":
                raise
            continue  # subcommand not built yet
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:  # `higress-ops tools ... | head`: the reader is done, so are we
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return 0
