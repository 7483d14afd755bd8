"""The baseline: the official MCP SDK's own server (MCPServer, streamable HTTP, JSON responses) with the same
tool (the same answer: extensions by name, compact JSON through the same JSON library), run as
`python -m bench.sdk_server ENVOY_ADMIN_URL PORT`."""

from __future__ import annotations

import sys

import anyio
import requests
import uvicorn
from mcp.server.mcpserver import MCPServer

from higress_ops import jsonfast
from higress_ops.servers.ops.server_info import reshape

server = MCPServer("sdk-baseline")
_session = requests.Session()
ENVOY = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:15000"


@server.tool(name="get-envoy-server-info")
async def server_info() -> str:
    """Envoy's /server_info."""
    def fetch() -> str:
        body = _session.get(f"{ENVOY}/server_info", timeout=10).content
        info, note = reshape(jsonfast.loads(body), {})
        return jsonfast.dumps(info).decode() + "\n" + note

    return await anyio.to_thread.run_sync(fetch)


if __name__ == "__main__":
    app = server.streamable_http_app(streamable_http_path="/mcp", json_response=True)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
