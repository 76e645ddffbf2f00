"""Traffic through a Gateway's Envoy: one HTTP/1.1 request per fresh TCP
connection (so no stale keep-alive connection is ever blamed on the Gateway),
the wait for a new hostname's first 200, and the background prober that
checks existing hostnames while routes are added.

Requests go to the Gateway's MetalLB address on the Service's target port,
where Envoy listens: the harness's kube-proxy stand-in for port 80 is a
Python forwarder, whose cost is not the Gateway's.
"""

import random
import socket
import threading
import time
from collections import Counter


def get(address, port, host, timeout=2.0):
    """GET / with `Host: host`; returns the status code once the whole answer
    is read, then closes the connection itself (Envoy waits up to its
    delayed-close timeout, 1 s, for the client to close after an answer it
    generated). Raises OSError on a connection error, ValueError on an
    answer that is not HTTP."""
    with socket.create_connection((address, port), timeout=timeout) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                raise ValueError(f"connection closed after {len(data)} bytes: {data[:60]!r}")
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise ValueError(f"not an HTTP answer: {head[:60]!r}")
        fields = {k.strip().lower(): v.strip() for k, _, v in (l.partition(b":") for l in lines[1:])}
        if fields.get(b"content-length", b"").isdigit():
            left = int(fields[b"content-length"]) - len(body)
            while left > 0:
                chunk = s.recv(min(left, 65536))
                if not chunk:
                    raise ValueError("connection closed inside the body")
                left -= len(chunk)
        elif b"chunked" in fields.get(b"transfer-encoding", b""):
            while not body.endswith(b"0\r\n\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise ValueError("connection closed inside the body")
                body += chunk
        else:
            while s.recv(65536):
                pass
    return int(parts[1])


def outcome(address, port, host):
    """The status code, or the name of the connection error."""
    try:
        return get(address, port, host)
    except (OSError, ValueError) as e:
        return type(e).__name__


def first_200(address, port, host, started, timeout, pause=0.001):
    """Polls until `host` answers 200. Returns (seconds since `started`, or
    None after `timeout`; a Counter of answers other than 200 and 404)."""
    unexpected = Counter()
    deadline = started + timeout
    while time.monotonic() < deadline:
        answer = outcome(address, port, host)
        if answer == 200:
            return time.monotonic() - started, unexpected
        if answer != 404:
            unexpected[str(answer)] += 1
        time.sleep(pause)
    return None, unexpected


class Prober:
    """Background requests to randomly chosen existing hostnames, `rate` per
    second in all over `threads` threads; every answer but 200 is an error.
    `targets`: (address, port, hostname) triples."""

    def __init__(self, targets, rate=100, threads=2):
        self.targets = targets
        self.interval = threads / rate
        self.answers = Counter()
        self.failures = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.loop, args=(random.Random(i),), daemon=True)
                        for i in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def loop(self, rng):
        next_at = time.monotonic()
        while not self.stopping.is_set():
            address, port, host = rng.choice(self.targets)
            answer = outcome(address, port, host)
            with self.lock:
                self.answers[str(answer)] += 1
                if answer != 200 and len(self.failures) < 20:
                    self.failures.append({"host": host, "answer": str(answer), "at": time.monotonic()})
            next_at += self.interval
            self.stopping.wait(max(0.0, next_at - time.monotonic()))

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=5)
        with self.lock:
            total = sum(self.answers.values())
            return {
                "requests": total,
                "errors": total - self.answers.get("200", 0),
                "answers": dict(self.answers),
                "first_failures": list(self.failures),
            }
