"""`higress-ops tools` and `higress-ops call`: the server's tools from a shell, without an MCP client.

`call` builds the server from the config and runs one tool through the same MCP core as `serve`, so
arguments are validated the same way; the product README's examples run as written after the tool name:
`higress-ops call --config c.yaml get-envoy-config-dump --resource=listeners`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from higress_ops.cli.validate import print_problems
from higress_ops.config import ConfigError, McpServerConfig, load_file
from higress_ops.mcp.core import McpCore
from higress_ops.registry import RegistryError, default_registry
from higress_ops.servers.base import CallContext, McpServer, ToolSpec
from higress_ops.sessions.base import SessionRecord


def register(subparsers: Any) -> None:
    tools = subparsers.add_parser("tools", help="list a server's tools, one line each",
                                  description="List the tools of one configured server with one-line descriptions.")
    _common(tools)
    tools.add_argument("--verbose", "-v", action="store_true", help="also list each tool's parameters")
    tools.set_defaults(handler=run_tools)
    call = subparsers.add_parser(
        "call", help="run one tool and print its result", add_help=False,
        description="Run one tool of a configured server and print its result (exit 1 when the result is an "
        "error, 2 when the arguments are invalid). Tool arguments follow the tool name as --name=value or "
        "--name value; a bare --flag means true. `call TOOL --help` lists the tool's parameters. A JSON result "
        "goes to stdout alone (notes about paging or cuts go to stderr), so it can be piped to jq.")
    call.add_argument("-h", "--help", action="store_true", help="show this help, or with TOOL the tool's own")
    _common(call, config_required=False)  # checked in run_call, so `call --help` needs no config
    call.add_argument("--istiod-token", default=None, help="sent to istiod as a bearer token (as X-Istiod-Token)")
    call.add_argument("--raw", action="store_true", help="print the MCP result object as JSON")
    call.add_argument("tool", metavar="TOOL", nargs="?")
    call.set_defaults(handler=run_call, accepts_extra=True, parser=call)


def _common(parser: argparse.ArgumentParser, *, config_required: bool = True) -> None:
    parser.add_argument("--config", required=config_required, metavar="PATH",
                        help="higress-config manifest or its YAML")
    parser.add_argument("--server", default=None, metavar="NAME", help="servers[] entry (default: the first)")


def server_of(args: argparse.Namespace) -> McpServer:
    """The configured server `--server` names (the first by default), built as `serve` builds it."""
    config: McpServerConfig = load_file(args.config)
    for warning in config.warnings:  # a skipped server among them: the listing says why it is not here
        print(f"warning: {warning}", file=sys.stderr)
    skipped = next((e for e in config.skipped if e.name == args.server), None)
    if skipped is not None:
        raise SystemExit(f"higress-ops: server {skipped.name!r} has type {skipped.type!r}, which no plugin here "
                         "serves (the gateway's own MCP filter serves it)")
    if not config.servers:
        raise ConfigError.single("/mcpServer/servers", "no servers of a type served here are configured",
                                 args.config)
    try:
        entry = config.server(args.server) if args.server else config.servers[0]
    except KeyError:
        names = ", ".join(e.name for e in config.servers)
        raise SystemExit(f"higress-ops: no server named {args.server!r}; configured: {names}") from None
    return default_registry().build(entry)


def fail(exc: Exception, source: str) -> int:
    """Print a config or registry error for the user; the exit code 1."""
    if isinstance(exc, ConfigError):
        print_problems(exc, source)
    else:
        print(f"higress-ops: {exc}", file=sys.stderr)
    return 1


def run_tools(args: argparse.Namespace) -> int:
    try:
        server = server_of(args)
    except (ConfigError, RegistryError, ValueError) as exc:
        return fail(exc, args.config)
    specs = list(server.tools())
    width = max(len(s.name) for s in specs) if specs else 0
    for spec in specs:
        first = spec.description.split(". ")[0].rstrip(".")
        print(f"{spec.name:<{width}}  {first}")
        if args.verbose:
            for line in parameter_lines(spec.input_schema):
                print(f"    {line}")
    asyncio.run(server.aclose())
    return 0


def parameter_lines(schema: Mapping[str, Any]) -> list[str]:
    """One line per parameter from a tool's input schema: --name=TYPE, required or default, description."""
    props: Mapping[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    rows = []
    for name, prop in props.items():
        kind = "|".join(str(v) for v in prop["enum"] if v != "") if prop.get("enum") else str(
            prop.get("type", "value")).upper()
        flag = f"--{name}" if prop.get("type") == "boolean" else f"--{name}={kind}"
        if name in required:
            when = "required"
        elif "default" in prop:
            when = f"default {json.dumps(prop['default'])}"
        else:
            when = "optional"
        bounds = (f", {prop['minimum']}..{prop['maximum']}" if "minimum" in prop and "maximum" in prop else "")
        rows.append((flag, f"{when}{bounds}", str(prop.get("description", ""))))
    if not rows:
        return ["(no parameters)"]
    width = max(len(flag) for flag, _, _ in rows)
    return [f"{flag:<{width}}  {when}" + (f": {text}" if text else "") for flag, when, text in rows]


def _tool_help(spec: ToolSpec) -> str:
    required = [f"--{n}=..." for n in spec.input_schema.get("required", [])]
    usage = " ".join(["usage: higress-ops call --config PATH", spec.name, *required, "[--name=value ...]"])
    return "\n".join([usage, "", spec.description, "", "parameters:",
                      *(f"  {line}" for line in parameter_lines(spec.input_schema))]) + "\n"


def parse_tool_args(extra: Sequence[str], schema: Mapping[str, Any]) -> dict[str, Any]:
    """--name=value / --name value / --flag, coerced by the tool's input schema."""
    props: Mapping[str, Any] = schema.get("properties", {})
    out: dict[str, Any] = {}
    items = list(extra)
    while items:
        item = items.pop(0)
        if not item.startswith("--") or len(item) == 2:
            raise ValueError(f"unexpected argument {item!r}: tool arguments look like --name=value")
        name, sep, value = item[2:].partition("=")
        kind = props.get(name, {}).get("type")
        if not sep:
            if kind == "boolean" and (not items or items[0].startswith("--")):
                value = "true"
            elif items:
                value = items.pop(0)
            else:
                raise ValueError(f"--{name} needs a value")
        out[name] = _coerce(name, value, kind)
    return out


def _coerce(name: str, value: str, kind: str | None) -> Any:
    try:
        if kind == "boolean":
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return value.lower() in ("true", "1", "yes")
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
        if kind in ("object", "array"):
            return json.loads(value)
    except ValueError:
        raise ValueError(f"--{name}: {value!r} is not a valid {kind}") from None
    return value


def run_call(args: argparse.Namespace) -> int:
    if args.help and not args.tool:
        args.parser.print_help()
        return 0
    if args.tool is None or args.config is None:
        args.parser.print_usage(sys.stderr)
        missing = "--config PATH" if args.config is None else "TOOL"
        print(f"higress-ops call: {missing} is required (`higress-ops tools --config PATH` lists the tools)",
              file=sys.stderr)
        return 2
    try:
        server = server_of(args)
    except (ConfigError, RegistryError, ValueError) as exc:
        return fail(exc, args.config)
    return asyncio.run(_call(server, args))


async def _call(server: McpServer, args: argparse.Namespace) -> int:
    core = McpCore(server)
    try:
        spec = next((s for s in server.tools() if s.name == args.tool), None)
        if spec is None:
            print(f"higress-ops: unknown tool {args.tool!r}; `higress-ops tools --config ...` lists them",
                  file=sys.stderr)
            return 2
        if args.help or "--help" in args.extra or "-h" in args.extra:
            print(_tool_help(spec), end="")
            return 0
        try:
            arguments = parse_tool_args(args.extra, spec.input_schema)
        except ValueError as exc:
            print(f"higress-ops: {exc}", file=sys.stderr)
            return 2
        headers = {"x-istiod-token": args.istiod_token} if args.istiod_token else {}
        reply = await core.handle({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                   "params": {"name": args.tool, "arguments": arguments}},
                                  SessionRecord(id="cli", server=server.name, transport="streamable"),
                                  CallContext(headers=headers, via="cli"))
    finally:
        await core.aclose()
        await server.aclose()
    assert reply is not None
    if "error" in reply:
        print(f"higress-ops: {reply['error']['message']}", file=sys.stderr)
        return 2
    result = reply["result"]
    if args.raw:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 1 if result.get("isError") else 0
    parts = [(part.get("text", ""), _as_json(part.get("text", ""))) for part in result.get("content", [])]
    has_json = any(value is not None for _, value in parts)
    for text, value in parts:
        if value is not None:
            print(json.dumps(value, indent=2, ensure_ascii=False))
        else:  # beside JSON, notes (paging, cuts) go to stderr so stdout stays one JSON document
            print(text, file=sys.stderr if has_json else sys.stdout)
    return 1 if result.get("isError") else 0


def _as_json(text: str) -> Any:
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return None
