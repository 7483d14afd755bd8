"""Figures the hardening tests measure, kept out of tracked files until an operator publishes them.

Each test calls `record(section, name, value)`; figures land in `build/reliability/spool/*.jsonl` (one file per
process, so xdist workers never collide), and at the end of the session `render()` merges them into
`build/reliability/reliability.json` (the latest figure per name) and `reliability.md`. A test run never writes a
tracked file: `scripts/reliability` runs the measuring tests and then `publish()` merges the build figures into
docs/reliability.json and rewrites docs/reliability.md from it.

    python -m tests.hardening.report publish   # what scripts/reliability calls after its test run
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "reliability"
SPOOL = BUILD / "spool"
DOCS = REPO / "docs"
INTRO = """# Reliability

Measured by the tests named beside each figure, on the machine that ran them. A test run writes its figures under
`build/reliability/` (not tracked); `scripts/reliability` runs every test file that records figures and publishes
them here, keeping the latest one per name.
"""


def record(section: str, name: str, value: Any, test: str = "") -> None:
    SPOOL.mkdir(parents=True, exist_ok=True)
    line = {"section": section, "name": name, "value": value, "test": test or os.environ.get(
        "PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0], "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with (SPOOL / f"{os.getpid()}.jsonl").open("a") as out:
        out.write(json.dumps(line) + "\n")


def render(build: Path = BUILD) -> None:
    """Merge this run's spooled figures into build/reliability/ (never into docs/)."""
    spool = build / "spool"
    if not spool.exists():
        return
    store = _read(build / "reliability.json")
    for path in sorted(spool.glob("*.jsonl")):
        for raw in path.read_text().splitlines():
            item = json.loads(raw)
            store[f"{item['section']}::{item['name']}"] = item
        path.unlink()
    _write(store, build)


def publish(build: Path = BUILD, docs: Path = DOCS) -> int:
    """Merge the build figures into docs/reliability.json and rewrite docs/reliability.md; returns the count."""
    fresh = _read(build / "reliability.json")
    if fresh:
        _write({**_read(docs / "reliability.json"), **fresh}, docs)
    return len(fresh)


def _read(path: Path) -> dict[str, dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else {}


def _write(store: dict[str, dict[str, Any]], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reliability.json").write_text(json.dumps(store, indent=1, sort_keys=True) + "\n")
    sections: dict[str, list[dict[str, Any]]] = {}
    for item in store.values():
        sections.setdefault(item["section"], []).append(item)
    lines = [INTRO]
    for section in sorted(sections):
        lines += [f"## {section}", "", "| figure | value | measured by | when |", "|---|---|---|---|"]
        for item in sorted(sections[section], key=lambda i: i["name"]):
            lines.append(f"| {item['name']} | {item['value']} | `{item['test']}` | {item['at']} |")
        lines.append("")
    (folder / "reliability.md").write_text("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:] != ["publish"]:
        sys.exit("usage: python -m tests.hardening.report publish")
    count = publish()
    print(f"docs/reliability.md: {count} figure(s) from {BUILD.relative_to(REPO)}" if count else
          f"no figures under {BUILD.relative_to(REPO)}: run the measuring tests first (scripts/reliability)")
    sys.exit(0 if count else 1)
