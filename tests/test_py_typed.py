"""py.typed: a third-party server type is type-checked against our McpServer contract in its own project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = '''
from collections.abc import Mapping, Sequence
from typing import Any

from higress_ops.config.model import ServerEntry
from higress_ops.servers.base import CallContext, McpServer, ServerType, ToolResult, ToolSpec


class Echo:
    name = "echo"
    version = "1"
    instructions: str | None = None

    def tools(self) -> Sequence[ToolSpec]:
        return []

    async def call_tool(self, name: str, arguments: Mapping[str, Any], ctx: CallContext) -> ToolResult:
        return ToolResult.text(name)

    async def aclose(self) -> None:
        return None


def build(entry: ServerEntry) -> McpServer:
    return Echo()


SERVER_TYPE = ServerType(name="echo", build=build, config_schema={})
'''
GOOD_CALL = "async def call_tool(self, name: str, arguments: Mapping[str, Any], ctx: CallContext) -> ToolResult:"


def mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "plugin.py").write_text(source)
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / ".cache"),
                           "plugin.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)


def test_a_plugin_that_keeps_the_contract_passes_strict(tmp_path: Path) -> None:
    run = mypy(tmp_path, PLUGIN)
    assert run.returncode == 0, run.stdout


@pytest.mark.parametrize("wrong", [
    {GOOD_CALL: "async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:"},  # no ctx
    {GOOD_CALL: GOOD_CALL.replace("-> ToolResult:", "-> str:"), "return ToolResult.text(name)": "return name"},
    {"    async def aclose(self) -> None:\n        return None\n": ""},  # no aclose
])
def test_a_plugin_that_breaks_the_contract_is_caught(tmp_path: Path, wrong: dict[str, str]) -> None:
    source = PLUGIN
    for old, new in wrong.items():
        assert old in source
        source = source.replace(old, new)
    run = mypy(tmp_path, source)
    assert run.returncode == 1, run.stdout
    assert 'Incompatible return value type (got "Echo", expected "McpServer")' in run.stdout, run.stdout
