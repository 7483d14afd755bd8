"""`higress-ops serve` refusing to start, as an operator sees it: exit code and one clear line, never "serving"."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support.procs import free_port
from tests.support.serve import ServeProcess, echo_config, write_config

CLI = Path(sys.executable).parent / "higress-ops"


def serve(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), "serve", "--config", str(config), *args], capture_output=True, text=True,
                          timeout=30)


@pytest.mark.parametrize("port", ["0", "65536", "-1", "http", "80.5"])
def test_port_outside_1_to_65535_is_refused_before_anything_starts(tmp_path: Path, port: str) -> None:
    run = serve(write_config(tmp_path / "c.yaml", echo_config(("e", "/e"))), "--port", port)
    assert run.returncode == 2
    assert run.stderr.splitlines()[-1].startswith("higress-ops serve: error: argument --port: ")
    assert "1-65535" in run.stderr and "Traceback" not in run.stderr and "serving" not in run.stderr


@pytest.mark.parametrize("flag", ["--port", "--admin-port"])
def test_a_taken_port_is_one_line_and_exit_1_before_serving(tmp_path: Path, flag: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--port": str(free_port()), "--admin-port": str(free_port()), flag: str(port)}
        run = serve(write_config(tmp_path / "c.yaml", echo_config(("e", "/e"))), "--host", "127.0.0.1",
                    *(item for pair in ports.items() for item in pair))
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr.splitlines() == [f"higress-ops serve: cannot listen on 127.0.0.1:{port}: address already in "
                                       f"use; another process is listening there: stop it or choose another {flag}"]


def test_serve_logs_a_warning_for_an_unknown_key_and_serves(tmp_path: Path) -> None:
    config = echo_config(("e", "/e"))
    config["mcpServer"]["sse_path_suffx"] = "/events"
    process = ServeProcess(write_config(tmp_path / "c.yaml", config), tmp_path).start()
    try:
        assert requests.get(process.admin("/readyz"), timeout=5).status_code == 200
        warnings = [json.loads(line) for line in process.log().splitlines() if "config warning" in line]
        assert [w["level"] for w in warnings] == ["warning"]
        assert "did you mean sse_path_suffix?" in warnings[0]["msg"]
    finally:
        process.stop()


def test_the_listening_line_gives_the_urls_and_which_upstream_answered(tmp_path: Path) -> None:
    from tests.support.istiod import istiod_double

    envoy_port = free_port()  # nothing listens there
    with istiod_double() as istiod:
        config = {"mcpServer": {"servers": [{"name": "ops", "path": "/ops", "type": "higress-ops", "config": {
            "istiodURL": f"http://127.0.0.1:{istiod.port}", "envoyAdminURL": f"http://127.0.0.1:{envoy_port}"}}]}}
        process = ServeProcess(write_config(tmp_path / "c.yaml", config), tmp_path).start()
        try:
            (line,) = [json.loads(line) for line in process.log().splitlines() if '"msg": "listening"' in line]
        finally:
            process.stop()
    assert line["urls"] == {"ops": {"legacy_sse": f"{process.base}/ops/sse", "streamable_http": f"{process.base}/ops"}}
    assert line["upstreams"]["ops"]["istiod"] == "answered"
    assert line["upstreams"]["ops"]["envoy"].startswith(f"no answer at http://127.0.0.1:{envoy_port}/ready (")
    assert line["upstreams"]["ops"]["envoy"].endswith("check envoyAdminURL in the server config")


def test_serve_help_shows_every_default() -> None:
    from higress_ops.cli import build_parser

    parser = build_parser()
    serve_parser = next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith("serve"))
    missing = [action.option_strings[0] for action in serve_parser._actions
               if action.option_strings and action.default not in (None, False, [], "==SUPPRESS==")
               and "default" not in (action.help or "")]
    assert missing == []
    assert "(default 8080)" in serve_parser.format_help().replace("\n", " ")
