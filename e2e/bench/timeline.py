"""Where an added route's time goes, from its create call to its first 200:
the bench's wall clock (create sent, create answered, first 200) set
against portico's debug events in its log, which the bench turns on
(`LOG`):

- `published` (portico::translator): a translation's outputs handed to the
  xDS hub, with how long translating (`translate`) and publishing
  (`publish`, the hub's snapshot) took;
- `pushed` (portico::xds::server): a stream's responses for a new snapshot
  queued, with their types and the snapshot version (it may be logged
  before `published`: the stream runs while the translator finishes);
- `answered` (portico::xds::server): Envoy's ACK or NACK of one type of a
  snapshot version.

Per addition: the first full translation published after the create was
answered, the first route push of a snapshot after it, and Envoy's answer
to that push. The stages add up to the latency (their medians over the
additions need not); an addition whose events are not all found is left
out.
"""

import re
import statistics
from datetime import datetime

# What portico logs for the bench: its usual info, and the three events above.
LOG = "info,portico::translator=debug,portico::xds::server=debug"

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LINE = re.compile(r"^(\S+Z)\s+DEBUG\s+(\S+?):\s+(published|pushed|answered)\b(.*)$")
FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\[[^\]]*\]|\S+)')
DURATION = re.compile(r"^([0-9.]+)(ns|µs|us|ms|s)$")
UNIT = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}

# The stages, in order: they add up to the addition's latency.
STAGES = [
    ("create call", "API server persists the route and answers"),
    ("create answered to translation start", "watch event, 10 ms batch, snapshot, translator busy"),
    ("translation", "full translation of the snapshot"),
    ("publish and push", "xDS snapshots built from the outputs; the Gateway's stream wakes and queues its responses"),
    ("route pushed to first 200", "sent; Envoy decodes and applies it, its workers take it; the next request"),
]
# Not a stage: Envoy's ACK of the push, as portico read it (an ACK read late,
# after the first 200, says portico was busy, not Envoy).
ACK = ("route pushed to Envoy's ACK read", "includes Envoy applying the routes on its main thread")


def seconds(text):
    m = DURATION.match(text)
    return float(m.group(1)) * UNIT[m.group(2)] if m else None


def events(log, since, until):
    """(wall time, name, fields) of the debug events between `since` and
    `until` (seconds since the epoch), in log order."""
    out = []
    for raw in log.splitlines():
        m = LINE.match(ANSI.sub("", raw))
        if not m:
            continue
        at = datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
        if not since <= at <= until:
            continue
        fields = {k: v.strip('"') for k, v in FIELD.findall(m.group(4))}
        out.append((at, m.group(3), fields))
    return out


def stages(addition, evs):
    """The stages of one addition (`gateway`: its id; `sent`, `answered`,
    `first_200`: wall times), or None when its events are not all in the
    log."""
    sent, answered, first_200 = addition["sent"], addition["answered"], addition["first_200"]
    published = next((e for e in evs if e[0] > answered and e[1] == "published"
                      and e[2].get("how") == "Full"), None)
    if published is None:
        return None
    translate, publish = seconds(published[2].get("translate", "")), seconds(published[2].get("publish", ""))
    if translate is None or publish is None:
        return None
    # The stream may log its push before the translator logs `published`.
    start = published[0] - translate - publish
    gateway = addition["gateway"]
    pushed = next((e for e in evs if e[0] >= start + translate and e[1] == "pushed"
                   and e[2].get("gateway") == gateway and "Route" in e[2].get("types", "")), None)
    if pushed is None:
        return None
    acked = next((e for e in evs if e[0] >= pushed[0] and e[1] == "answered"
                  and e[2].get("gateway") == gateway and e[2].get("kind") == "Route"
                  and e[2].get("snapshot") == pushed[2].get("snapshot")), None)
    if acked is None:
        return None
    values = [answered - sent, start - answered, translate, pushed[0] - start - translate,
              first_200 - pushed[0]]
    out = dict(zip((name for name, _ in STAGES), values))
    out[ACK[0]] = acked[0] - pushed[0]
    return out


def breakdown(additions, log):
    """Median milliseconds of each stage over the additions whose events
    were found, with the count of those."""
    if not additions:
        return None
    evs = events(log, min(a["sent"] for a in additions) - 1, max(a["first_200"] for a in additions) + 1)
    found = [s for s in (stages(a, evs) for a in additions) if s is not None]
    if not found:
        return {"samples": 0}
    out = {name: round(statistics.median(s[name] for s in found) * 1000, 1) for name, _ in STAGES + [ACK]}
    out["samples"] = len(found)
    return out


def table(case_breakdowns):
    """Markdown: one row per stage, one column per case."""
    cases = [(label, b) for label, b in case_breakdowns if b and b.get("samples")]
    if not cases:
        return ""
    rows = ["| stage (median) | " + " | ".join(label for label, _ in cases) + " | what |",
            "| --- | " + " | ".join("---:" for _ in cases) + " | --- |"]
    for name, what in STAGES + [ACK]:
        rows.append(f"| {name} | " + " | ".join(f"{b[name]:.1f} ms" for _, b in cases) + f" | {what} |")
    rows.append("| additions measured | " + " | ".join(str(b["samples"]) for _, b in cases) + " | |")
    return "\n".join(rows)
