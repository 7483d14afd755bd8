"""Figures the hardening tests measure, collected into docs/reliability.md by the run that measured them.

Each test calls `record(section, name, value)`; figures land in `.reliability/*.jsonl` (one file per process,
so xdist workers never collide), and at the end of the session `render()` merges them into
docs/reliability.json (the latest figure per name) and rewrites docs/reliability.md from it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SPOOL = REPO / ".reliability"
STORE = REPO / "docs" / "reliability.json"
DOC = REPO / "docs" / "reliability.md"
INTRO = """# Reliability

Written by the test run (`tests/hardening/`, `tests/test_ratelimit.py`, `tests/replicas/`): every figure below was
measured by the tests named beside it, on the machine that ran them, and is refreshed each time they run.
"""


def record(section: str, name: str, value: Any, test: str = "") -> None:
    SPOOL.mkdir(exist_ok=True)
    line = {"section": section, "name": name, "value": value, "test": test or os.environ.get(
        "PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0], "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with (SPOOL / f"{os.getpid()}.jsonl").open("a") as out:
        out.write(json.dumps(line) + "\n")


def render() -> None:
    if not SPOOL.exists():
        return
    store: dict[str, dict[str, Any]] = json.loads(STORE.read_text()) if STORE.exists() else {}
    for path in sorted(SPOOL.glob("*.jsonl")):
        for raw in path.read_text().splitlines():
            item = json.loads(raw)
            store[f"{item['section']}::{item['name']}"] = item
        path.unlink()
    STORE.write_text(json.dumps(store, indent=1, sort_keys=True) + "\n")
    sections: dict[str, list[dict[str, Any]]] = {}
    for item in store.values():
        sections.setdefault(item["section"], []).append(item)
    lines = [INTRO]
    for section in sorted(sections):
        lines += [f"## {section}", "", "| figure | value | measured by | when |", "|---|---|---|---|"]
        for item in sorted(sections[section], key=lambda i: i["name"]):
            lines.append(f"| {item['name']} | {item['value']} | `{item['test']}` | {item['at']} |")
        lines.append("")
    DOC.write_text("\n".join(lines))
