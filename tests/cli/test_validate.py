"""`higress-ops validate` as a user runs it: a real subprocess, exit codes, stdout and stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).parent / "higress-ops"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=REPO)


def test_valid_manifest_prints_one_line_per_server() -> None:
    result = run("validate", "examples/higress-config.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "higress-ops-mcp-server: type=higress-ops path=/higress-ops sse=/higress-ops/sse domains=*"]
    assert result.stderr == ""


def test_stdin_and_multiple_servers() -> None:
    text = (REPO / "examples" / "local.yaml").read_text(encoding="utf-8") + (
        "    - name: echo\n      path: /echo\n      type: echo\n      domain_list: [a.example.com, '*.b.com']\n")
    result = run("validate", "-", stdin=text.replace("sse_path_suffix: /sse", "sse_path_suffix: /events"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "higress-ops-mcp-server: type=higress-ops path=/higress-ops sse=/higress-ops/events domains=*",
        "echo: type=echo path=/echo sse=/echo/events domains=a.example.com,*.b.com",
    ]


def test_invalid_config_lists_every_problem_on_stderr(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mcpServer:\n  servers:\n    - {name: a, path: /a, type: higress-ops, config: {}}\n"
                   "    - {name: b, path: /b, type: grpc}\n")
    result = run("validate", str(bad))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [  # the warning is printed with the errors, not hidden by them
        f"{bad}: 2 problems",
        "  /mcpServer/servers/0/config/envoyAdminURL: 'envoyAdminURL' is a required property",
        "  /mcpServer/servers/0/config/istiodURL: 'istiodURL' is a required property",
        "warning: /mcpServer/servers/1: server 'b' skipped: no plugin here serves type 'grpc' (the gateway's own MCP "
        "filter serves it)",
    ]
    strict = run("validate", "--strict", str(bad))
    assert strict.returncode == 1 and strict.stderr.splitlines()[0] == f"{bad}: 3 problems"
    assert "  /mcpServer/servers/1/type: unknown server type 'grpc'; registered types: " in strict.stderr


def test_user_mistakes_never_print_a_traceback(tmp_path: Path) -> None:
    for args, stdin in (((str(tmp_path / "missing.yaml"),), None), (("-",), "mcpServer: [\n"), (("-",), "")):
        result = run("validate", *args, stdin=stdin)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert "problem" in result.stderr.splitlines()[0]


def test_help_and_version() -> None:
    result = run("validate", "--help")
    assert result.returncode == 0 and "usage: higress-ops validate" in result.stdout and "PATH" in result.stdout
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("higress-ops ")


def test_a_typo_under_mcpserver_is_a_warning_not_an_error() -> None:
    text = (REPO / "examples" / "local.yaml").read_text(encoding="utf-8").replace(
        "sse_path_suffix: /sse", "sse_path_suffx: /events")
    assert "sse_path_suffx" in text
    result = run("validate", "-", stdin=text)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "higress-ops-mcp-server: type=higress-ops path=/higress-ops sse=/higress-ops/sse domains=*"]
    assert result.stderr.splitlines() == [
        "warning: /mcpServer/sse_path_suffx: unknown key, ignored; did you mean sse_path_suffix?"]


REAL = REPO / "tests" / "config" / "fixtures" / "higress-config.yaml"
SKIPPED = ["higress-api-mcp-server", "rag-mcp-server", "nacos-registry"]


def test_the_real_higress_config_validates_with_one_warning_per_skipped_server() -> None:
    result = run("validate", str(REAL))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "higress-ops-mcp-server: type=higress-ops path=/higress-ops sse=/higress-ops/sse domains=*",
        "higress-api-mcp-server: type=higress-api path=/higress-api skipped (not served here)",
        "rag-mcp-server: type=rag path=/rag skipped (not served here)",
        "nacos-registry: type=nacos-mcp-registry path=/nacos skipped (not served here)",
    ]
    warnings = result.stderr.splitlines()
    assert len(warnings) == 3
    for index, (name, kind) in enumerate(zip(SKIPPED, ["higress-api", "rag", "nacos-mcp-registry"], strict=True)):
        assert f"warning: /mcpServer/servers/{index if index == 0 else index + 1}: server {name!r} skipped: no " \
               f"plugin here serves type {kind!r} (the gateway's own MCP filter serves it)" in warnings
    strict = run("validate", "--strict", str(REAL))
    assert strict.returncode == 1 and strict.stderr.splitlines()[0].endswith(": 3 problems")
    assert strict.stderr.count("--strict") == 3


def test_tools_lists_the_served_server_and_says_which_were_skipped() -> None:
    listed = run("tools", "--config", str(REAL))
    assert listed.returncode == 0 and listed.stdout.splitlines()[0].startswith("get-istiod-configz")
    assert [line.split("'")[1] for line in listed.stderr.splitlines()] == SKIPPED
    chosen = run("tools", "--config", str(REAL), "--server", "rag-mcp-server")
    assert chosen.returncode == 1 and "'rag-mcp-server' has type 'rag', which no plugin here serves" in chosen.stderr
