"""`make demo`: the seed journey on a real control plane, left running.

    python3 -m e2e.harness.demo up     # start everything, run the journey, print, keep serving
    python3 -m e2e.harness.demo down   # stop what `up` started

`up` forks a keeper process that owns the cluster, portico, the Envoys and the
backend (it is the harness's kubelet) and waits for `down`; the foreground
prints the `kubectl get` table and the curl result once the journey is done.
"""

import os
import signal
import sys
import time
import traceback
from pathlib import Path

from .cluster import KUBECTL, wait_for
from .world import World

STATE = Path(__file__).resolve().parents[1] / ".run" / "demo"
PIDFILE = STATE / "keeper.pid"
DONE = STATE / "journey.done"
FAILED = STATE / "journey.failed"


def keeper():
    world = World(STATE)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    try:
        world.start()
        address = world.seed_journey()
        (STATE / "address").write_text(address)
        DONE.write_text("\n".join(f"{k}: {v:.1f} s" for k, v in world.timings.items()))
        while not stop:
            time.sleep(0.5)
    except Exception:
        FAILED.write_text(traceback.format_exc())
    finally:
        world.stop()


def up():
    STATE.mkdir(parents=True, exist_ok=True)
    if PIDFILE.exists():
        print(f"a demo is already running (pid {PIDFILE.read_text()}); run `make demo-down` first")
        return 1
    for f in (DONE, FAILED):
        f.unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        log = open(STATE / "demo.log", "w")
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        keeper()
        os._exit(0)
    PIDFILE.write_text(str(pid))
    print(f"starting the control plane, MetalLB, portico and the seed journey (log: {STATE / 'demo.log'})")
    try:
        wait_for("the seed journey", 1800, lambda: DONE.exists() or FAILED.exists(), interval=1)
    except AssertionError:
        print("the demo did not finish in time; see the log")
        return 1
    if FAILED.exists():
        print(FAILED.read_text())
        down()
        return 1
    address = (STATE / "address").read_text()
    kubeconfig = STATE / "kubeconfig"
    os.system(f"{KUBECTL} --kubeconfig {kubeconfig} get gatewayclass,gateway,httproute -o wide")
    print(f"\n$ curl -H 'Host: httpd.example.com' http://{address}/")
    os.system(f"curl -s -H 'Host: httpd.example.com' http://{address}/")
    print("\nTimings:\n" + DONE.read_text())
    print(
        f"\nThe cluster keeps running. Try:\n"
        f"  export KUBECONFIG={kubeconfig}\n"
        f"  {KUBECTL} describe gateway portico-gateway\n"
        f"  curl -H 'Host: httpd.example.com' http://{address}/\n"
        f"Stop it with: make demo-down"
    )
    return 0


def down():
    if not PIDFILE.exists():
        print("no demo is running")
        return 0
    pid = int(PIDFILE.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.3)
    except ProcessLookupError:
        pass
    PIDFILE.unlink(missing_ok=True)
    print("demo stopped")
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    sys.exit({"up": up, "down": down}[command]())
