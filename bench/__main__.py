"""`python -m bench [--scale smoke|quick|full] [--only P1,P3] [--out DIR] [--readme]`: run the benchmarks,
write bench/results/<time>.json and latest.json, print a summary, and with --readme refresh the README table.

Every figure is a ratio (or a difference) against a baseline measured in the same run."""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import analyze, capacity, cross_replica, large_dump, latency, port_forward

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS: dict[str, Callable[[Path, str], dict[str, Any]]] = {
    "P1P2": latency.run, "P3": cross_replica.run, "P4": capacity.run, "P5": large_dump.run, "P6": port_forward.run,
    "P7": analyze.run}
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
SPANS_START, SPANS_END = "<!-- spans:start -->", "<!-- spans:end -->"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scale", choices=["smoke", "quick", "full"], default="full")
    parser.add_argument("--only", default="", help="comma-separated: P1P2,P3,P4,P5,P6,P7")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--readme", action="store_true", help="write the summary table into README.md")
    args = parser.parse_args()
    chosen = [name for name in BENCHMARKS if not args.only or name in args.only.split(",")]
    results: dict[str, Any] = {"scale": args.scale, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "machine": {"cpus": _cpus(), "python": platform.python_version()}}
    with tempfile.TemporaryDirectory(prefix="higress-ops-bench-") as tmp:
        for name in chosen:
            print(f"[bench] {name} ({args.scale}) ...", flush=True)
            started = time.monotonic()
            workdir = Path(tmp) / name
            workdir.mkdir(parents=True)
            try:
                results.update(BENCHMARKS[name](workdir, args.scale))
            except Exception as exc:  # one broken benchmark must not lose the others' figures
                results[name] = {"error": f"{type(exc).__name__}: {exc}", "met": False}
            print(f"[bench] {name} done in {time.monotonic() - started:.1f}s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = results["started"].replace(":", "").replace("-", "")
    text = json.dumps(results, indent=2)
    (args.out / f"{stamp}-{args.scale}.json").write_text(text)
    (args.out / "latest.json").write_text(text)
    table = summary_table(results)
    steps = span_table(results)
    print(table + ("\n\n" + steps if steps else ""))
    if args.readme:
        readme = ROOT / "README.md"
        content = readme.read_text()
        for start, end, text in ((START, END, table), (SPANS_START, SPANS_END, steps)):
            if text and start in content and end in content:
                head, rest = content.split(start, 1)
                content = head + start + "\n" + text + "\n" + end + rest.split(end, 1)[1]
        readme.write_text(content)
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _f(value: Any, unit: str = "") -> str:
    return f"{value:.2f}{unit}" if isinstance(value, float) else str(value)


def summary_table(r: dict[str, Any]) -> str:
    rows = ["| benchmark | baseline | higress-ops | official SDK server | target | met |", "|---|---|---|---|---|---|"]
    if "P1" in r and "ratio_higress_ops" in r["P1"]:
        p1 = r["P1"]
        base = (f"direct GET {_f(p1['direct']['median_ms'], ' ms')}; bare Python hop "
                f"{_f(p1['bare-hop']['median_ms'], ' ms')} ({_f(p1['ratio_bare_hop'])}x)")
        sdk = f"{_f(p1['sdk']['median_ms'], ' ms')} ({_f(p1['ratio_sdk'])}x)"
        rows.append(f"| P1 latency, tools/call get-envoy-server-info (defaults: no auth, memory sessions) | {base} | "
                    f"{_f(p1['higress-ops']['median_ms'], ' ms')} ({_f(p1['ratio_higress_ops'])}x) | {sdk} | "
                    f"<= 1.25x | {p1['ratio_higress_ops'] <= 1.25} |")
        rows.append(f"| P1 latency, same call with --auth kubernetes (verdict cached) and Redis sessions | direct GET "
                    f"{_f(p1['direct']['median_ms'], ' ms')} | {_f(p1['secured']['median_ms'], ' ms')} "
                    f"({_f(p1['ratio_secured'])}x) | | <= 1.35x | {p1['ratio_secured'] <= 1.35} |")
    if "P2" in r and "ratio_higress_ops" in r["P2"]:
        p2 = r["P2"]
        rows.append(f"| P2 throughput, 16 clients | direct {_f(p2['direct']['calls_per_s'], '/s')} | "
                    f"{_f(p2['higress-ops']['calls_per_s'], '/s')} ({_f(p2['ratio_higress_ops'])}x, "
                    f"{p2['failed_calls']} failed) | {_f(p2['sdk']['calls_per_s'], '/s')} ({_f(p2['ratio_sdk'])}x) | "
                    f">= 0.95x, 0 failed | {p2['met']} |")
    for key, label in (("P3", "via Redis"), ("P3_cluster", "via Redis Cluster")):
        if key in r and "added_p99_ms" in r[key]:
            p3 = r[key]
            rows.append(f"| P3 cross-replica delivery, {p3['sessions']} streams | same replica p99 "
                        f"{_f(p3['same_p99_ms'], ' ms')} | {label} p99 {_f(p3['cross_p99_ms'], ' ms')} "
                        f"({p3['added_p99_ms']:+.2f} ms) | | <= +5 ms | {p3['met']} |")
    if "P4" in r and "rss_per_session_kb" in r["P4"]:
        p4 = r["P4"]
        rows.append(f"| P4 {p4['sessions']:,} idle SSE sessions | RSS {_f(p4['rss_before_mb'], ' MB')} | "
                    f"{_f(p4['rss_per_session_kb'], ' KB')}/session, keep-alives "
                    f"{_f(p4['keepalive_cpu_at_default_15s'] * 100, '%')} of a core | | <= 15 KB, < 10% | "
                    f"{p4['met']} |")
    if "P5" in r and "ratio" in r["P5"]:
        p5 = r["P5"]
        views = p5.get("views", {})
        pings = ", ".join(f"{name.replace('_', ' ')} {_f(v['concurrent_ping_p99_ms'], ' ms')}"
                          for name, v in views.items())
        rows.append(f"| P5 routes view of a {_f(p5['dump_mb'], ' MB')} dump ({p5['clusters_and_routes']:,} "
                    f"clusters) | get+json.loads {_f(p5['baseline_median_ms'], ' ms')} | "
                    f"{_f(p5['higress_ops_median_ms'], ' ms')} ({_f(p5['ratio'])}x); ping p99 during {pings}; "
                    f"raw dump tool {_f(p5['raw_dump_median_ms'], ' ms')}, ping p99 "
                    f"{_f(p5['raw_dump_concurrent_ping_p99_ms'], ' ms')} | | <= 0.1x, pings <= 20 ms | {p5['met']} |")
    if "P6" in r and "ratio_pooled" in r["P6"]:
        p6 = r["P6"]
        rows.append(f"| P6 get-envoy-ready through pods/portforward | direct access "
                    f"{_f(p6['direct']['median_ms'], ' ms')} | pooled {_f(p6['pooled']['median_ms'], ' ms')} "
                    f"({_f(p6['ratio_pooled'])}x, {p6['pooled_streams_opened']} stream(s) for {p6['pooled_calls']} "
                    f"calls); a new port-forward per call {_f(p6['fresh']['median_ms'], ' ms')} "
                    f"({_f(p6['ratio_fresh'])}x) | | streams pooled | {p6['met']} |")
    if "P7" in r and "ratio" in r["P7"]:
        p7 = r["P7"]
        rows.append(f"| P7 analyze, {p7['routes']:,}-route Higress gateway ({p7['findings']:,} findings) | "
                    f"get+json.loads of its documents {_f(p7['baseline_median_ms'], ' ms')} | "
                    f"{_f(p7['higress_ops_median_ms'], ' ms')} ({_f(p7['ratio'])}x), first page "
                    f"{p7['first_page_bytes']:,} bytes, ping p99 {_f(p7['concurrent_ping_p99_ms'], ' ms')} | | "
                    f"<= 6,000 bytes, <= 1.5x | {p7['met']} |")
    for name in BENCHMARKS:
        if isinstance(r.get(name), dict) and "error" in r[name]:
            rows.append(f"| {name} | failed: {r[name]['error'][:80]} | | | | False |")
    return "\n".join(rows)


def span_table(r: dict[str, Any]) -> str:
    """Where one P1 call's time goes inside serve (serve --spans; bench/latency.py)."""
    spans = r.get("P1_spans")
    if not isinstance(spans, dict) or not spans.get("steps"):
        return ""
    median = {row["step"]: row["median_us"] for row in spans["steps"]}
    own = median.get("total", 0.0) - median.get("upstream", 0.0)  # serve's own work: all but the upstream GET
    rows = [f"Per step inside serve, {spans['calls']} calls of get-envoy-server-info (medians; the client saw "
            f"{spans['client_median_us']:,.0f} µs per call; `upstream` is the GET to Envoy, Envoy's own time "
            "included; the share is of serve's own work, the total without it):", "",
            "| step | median µs | mean µs | share of serve's own work |", "|---|---|---|---|"]
    for row in spans["steps"]:
        share = f"{row['median_us'] / own * 100:.1f}%" if own > 0 and row["step"] not in ("upstream", "total") else ""
        rows.append(f"| {row['step']} | {row['median_us']:,.1f} | {row['mean_us']:,.1f} | {share} |")
    return "\n".join(rows)

if __name__ == "__main__":
    raise SystemExit(main())
