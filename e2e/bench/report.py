"""The results: percentiles (nearest rank) of a list of seconds in
milliseconds, the JSON document of a run (the machine, the commit, every
case), and the Markdown table printed at the end."""

import json
import math
import os
import platform
import subprocess
import time

from e2e.harness.cluster import REPO


def percentile(sorted_values, p):
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summary(seconds):
    """p50, p90, p99, max and mean in milliseconds (None without samples)."""
    if not seconds:
        return None
    values = sorted(seconds)
    out = {f"p{p}": round(percentile(values, p) * 1000, 1) for p in (50, 90, 99)}
    out["max"] = round(values[-1] * 1000, 1)
    out["mean"] = round(sum(values) / len(values) * 1000, 1)
    out["samples"] = len(values)
    return out


def machine():
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release()}


def commit():
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
                           capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + ("+changes in src/" if dirty else "")


def document(cases, settings):
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": commit(),
        "machine": machine(),
        "settings": vars(settings),
        "cases": cases,
    }


def write(doc, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def ms(value):
    return "-" if value is None else f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def seconds(value):
    return "-" if value is None else f"{value:.1f} s"


def mib(value):
    return "-" if value is None else f"{value:.0f} MiB"


def table(cases):
    rows = [
        "| routes | Gateways | creates/s | statuses written | Envoy serving | p50 | p90 | p99 | max "
        "| errors | portico RSS (peak) | portico CPU per change | Envoy RSS (max) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cases:
        if "error" in c and "additions" not in c:
            rows.append(f"| {c['routes']:,} | {c['gateways']} | failed: {c['error']} |" + " |" * 10)
            continue
        b, lat = c["burst"], c["additions"]["latency_ms"] or {}
        p = c["portico"]
        rows.append(
            f"| {c['routes']:,} | {c['gateways']} | {b['creates_per_second']:,.0f} "
            f"| {seconds(b['statuses_seconds'])} | {seconds(b['serving_seconds'])} "
            f"| {ms(lat.get('p50'))} | {ms(lat.get('p90'))} | {ms(lat.get('p99'))} | {ms(lat.get('max'))} "
            f"| {c['errors']} | {mib(p['rss_mib'])} ({mib(p['peak_rss_mib'])}) "
            f"| {ms(p['cpu_ms_per_change'])} | {mib(c['envoy']['rss_mib_max'])} |"
        )
    return "\n".join(rows)
