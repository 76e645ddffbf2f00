"""Resident memory and CPU time of a process, from /proc: `VmRSS` and
`VmHWM` (its peak) of /proc/PID/status, utime + stime of /proc/PID/stat;
and the inotify limit many Envoys need, from /proc/sys."""

import os
from contextlib import contextmanager
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def memory_mib(pid):
    """(resident, peak resident) in MiB, or (None, None) once it is gone."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if ":" in line
        )
    except OSError:
        return None, None
    kib = lambda key: int(fields[key].split()[0]) if key in fields else None  # noqa: E731
    rss, hwm = kib("VmRSS"), kib("VmHWM")
    return (rss / 1024 if rss is not None else None), (hwm / 1024 if hwm is not None else None)


def cpu_seconds(pid):
    """User plus system CPU time so far, in seconds (None once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces: fields count from after its ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def find(pid, command):
    """`pid` or its first descendant whose command name is `command` (the
    Envoy of a fleet Pod runs under `ip netns exec`, `unshare` and `sh`,
    which exec it, but a shell may also fork)."""
    queue = [pid]
    while queue:
        p = queue.pop(0)
        try:
            if Path(f"/proc/{p}/comm").read_text().strip() == command:
                return p
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                queue.extend(int(c) for c in children)
        except OSError:
            continue
    return None


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")


@contextmanager
def inotify_instances(at_least):
    """Raises the per-user inotify instance limit to `at_least` while the
    block runs, then puts the previous value back. Each Envoy holds four
    (its file watchers); the usual default, 128, stops the 32nd Envoy."""
    before = int(INOTIFY_INSTANCES.read_text())
    if before >= at_least:
        yield before
        return
    INOTIFY_INSTANCES.write_text(str(at_least))
    try:
        yield at_least
    finally:
        INOTIFY_INSTANCES.write_text(str(before))
