"""`higress-ops tools` and `higress-ops call` as an operator types them, with the product README's examples."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.istio_envoy import istio_gateway
from tests.support.istiod import istiod_double


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("cli")
    with istio_gateway(workdir / "gw") as gw, istiod_double() as istiod:
        path = workdir / "c.yaml"
        path.write_text(json.dumps({"mcpServer": {"enable": True, "servers": [
            {"name": "ops", "path": "/higress-ops", "type": "higress-ops",
             "config": {"istiodURL": istiod.url, "envoyAdminURL": gw.admin_url}}]}}))
        yield path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "higress_ops", *args], capture_output=True, text=True, timeout=60)


def test_tools_lists_every_tool(config: Path) -> None:
    run = cli("tools", "--config", str(config))
    assert run.returncode == 0
    lines = run.stdout.splitlines()
    assert len(lines) == 29 and lines[0].startswith("get-istiod-configz ")
    assert any(line.startswith("get-envoy-certs ") for line in lines)


@pytest.mark.parametrize(("args", "expect"), [
    (["get-envoy-config-dump", '--resource=listeners'], "ListenersConfigDump"),
    (["get-envoy-clusters", "--format=json"], "cluster_statuses"),
    (["get-envoy-stats", "--filter=cluster.*", "--format=json"], '"stats"'),
    (["get-envoy-stats", "--filter", "server.live", "--usedonly"], "server.live"),
    (["get-istiod-configz", "--istiod-token", "good-token"], "VirtualService"),
    (["get-istiod-syncz", "--istiod-token=good-token"], "higress-gateway"),
    (["get-envoy-ready"], "LIVE"),
])
def test_readme_examples_run_as_written(config: Path, args: list[str], expect: str) -> None:
    tool, *rest = args
    run = cli("call", "--config", str(config), tool, *rest)
    assert run.returncode == 0, run.stderr
    assert expect in run.stdout


def test_errors_have_exit_codes(config: Path) -> None:
    no_token = cli("call", "--config", str(config), "get-istiod-syncz")
    assert no_token.returncode == 1 and "kubectl create token" in no_token.stdout
    assert "pass it with --istiod-token" in no_token.stdout and "X-Istiod-Token" not in no_token.stdout
    wrong = cli("call", "--config", str(config), "get-istiod-configz", "--istiod-token=stale-token")
    assert wrong.returncode == 1 and "401 Unauthorized" in wrong.stdout and "--istiod-token" in wrong.stdout
    bad = cli("call", "--config", str(config), "get-envoy-clusters", "--format=xml")
    assert bad.returncode == 2 and "Invalid arguments for tool get-envoy-clusters" in bad.stderr
    unknown = cli("call", "--config", str(config), "get-nothing")
    assert unknown.returncode == 2 and "unknown tool" in unknown.stderr
    loose = cli("call", "--config", str(config), "get-envoy-ready", "stray")
    assert loose.returncode == 2 and "--name=value" in loose.stderr


def test_call_tool_help_prints_its_parameters(config: Path) -> None:
    run = cli("call", "--config", str(config), "find-route", "--help")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert out.startswith("usage: higress-ops call --config PATH find-route --host=...")
    host = next(line for line in out.splitlines() if line.strip().startswith("--host="))
    assert host.split() == ["--host=STRING", "required:", "Host", "header"]
    assert '--path=STRING' in out and 'default "/"' in out
    plain = cli("call", "--help")
    assert plain.returncode == 0 and "`call TOOL --help` lists the tool's parameters" in " ".join(plain.stdout.split())


def test_tools_verbose_lists_parameters(config: Path) -> None:
    run = cli("tools", "--config", str(config), "--verbose")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("get-envoy-proxy-config "))
    params = [line.strip() for line in lines[start + 1:] if line.startswith("    ")][:3]
    assert params[0].startswith("--type=clusters|listeners|routes|endpoints|secrets|ecds|all") and \
        'default "all"' in params[0]
    assert any(line.strip().startswith("--usedonly ") for line in lines)  # a boolean is a bare flag


def test_a_cut_json_result_is_still_json_on_stdout(tmp_path: Path, config: Path) -> None:
    small = tmp_path / "small.yaml"
    doc = json.loads(config.read_text())
    doc["mcpServer"]["servers"][0]["config"]["maxResponseBytes"] = 4096
    small.write_text(json.dumps(doc))
    for args in (["get-envoy-config-dump"], ["get-envoy-proxy-config", "--type=clusters", "--output=json"]):
        run = cli("call", "--config", str(small), *args)
        assert run.returncode == 0, run.stderr
        json.loads(run.stdout)  # what jq would read
        assert "[cut to the 4,096-byte budget" in run.stderr


def test_an_unreachable_upstream_names_the_config_key_to_fix(tmp_path: Path) -> None:
    from tests.support.procs import free_port

    path = tmp_path / "down.yaml"
    path.write_text(json.dumps({"mcpServer": {"servers": [{"name": "ops", "path": "/ops", "type": "higress-ops",
                                                           "config": {"istiodURL": f"http://127.0.0.1:{free_port()}",
                                                                      "envoyAdminURL": f"http://127.0.0.1:{free_port()}"}}]}}))
    for tool, key in (("get-envoy-ready", "envoyAdminURL"), ("get-istiod-version", "istiodURL")):
        result = cli("call", "--config", str(path), tool)
        assert result.returncode == 1
        assert "is unreachable" in result.stdout and f"check {key} in the server config" in result.stdout, tool
