"""Watch streams of the API server for the harness: `kubectl get --watch
--output-watch-events -o json` read as a stream of events, started again
when it ends (a new stream lists everything first, as ADDED events)."""

import json
import subprocess
import sys
import threading
import time


class Follow:
    """Calls `on_event(event)` for each watch event of `kubectl get ARGS`."""

    def __init__(self, cluster, args, on_event):
        self.cluster = cluster
        self.args = args
        self.on_event = on_event
        self.stopping = threading.Event()
        self.process = None
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        from .cluster import KUBECTL

        while not self.stopping.is_set():
            self.process = subprocess.Popen(
                [KUBECTL, "--kubeconfig", str(self.cluster.kubeconfig), "get", *self.args,
                 "--watch", "--output-watch-events", "-o", "json"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )
            decoder = json.JSONDecoder()
            buffer = ""
            for line in self.process.stdout:
                buffer += line
                while buffer.strip():
                    try:
                        event, end = decoder.raw_decode(buffer.lstrip())
                    except json.JSONDecodeError:
                        break
                    buffer = buffer.lstrip()[end:]
                    try:
                        self.on_event(event)
                    except Exception as e:  # the stream keeps going
                        print(f"watch {' '.join(self.args)}: {e}", file=sys.stderr)
            if not self.stopping.is_set():
                time.sleep(0.5)

    def stop(self):
        self.stopping.set()
        if self.process and self.process.poll() is None:
            self.process.kill()
        self.thread.join(timeout=5)
