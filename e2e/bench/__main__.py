"""`make bench-cluster`: every case in turn, each on a fresh e2e cluster.

    python -m e2e.bench [--sizes 1000,5000,10000,100x50] [--additions 40]
                        [--probe-rate 100] [--threads 16] [--create api|kubectl] [--out FILE]

A size N is N routes on one Gateway; GxR is G Gateways with R routes each.
Writes the JSON result (default e2e/.run/bench/result.json) and prints the
Markdown table. Needs root (network namespaces) and the e2e network to
itself: run it under `flock /tmp/portico-e2e.lock`.
"""

import argparse
import os
import signal
import sys
from pathlib import Path

from . import report, timeline
from .case import Case, Settings, run

STATE = Path(__file__).resolve().parents[1] / ".run" / "bench"
DEFAULT_SIZES = "1000,5000,10000,100x50"


def stop_on_term(*_):
    # Unwinds like Ctrl-C, so the running case's World is torn down.
    raise KeyboardInterrupt


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m e2e.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES)
    parser.add_argument("--additions", type=int, default=40)
    parser.add_argument("--probe-rate", type=int, default=100, help="prober requests per second")
    parser.add_argument("--threads", type=int, default=16, help="concurrent creates of the burst")
    parser.add_argument("--create", choices=("api", "kubectl"), default="api")
    parser.add_argument("--out", type=Path, default=STATE / "result.json")
    args = parser.parse_args(argv)
    try:
        cases = [Case.parse(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError as e:
        parser.error(str(e))
    if args.additions < 1:
        parser.error("--additions must be at least 1")
    settings = Settings(additions=args.additions, threads=args.threads,
                        probe_rate=args.probe_rate, create=args.create)
    signal.signal(signal.SIGTERM, stop_on_term)
    # portico's timing events, for where each addition's time goes.
    os.environ.setdefault("PORTICO_E2E_LOG", timeline.LOG)

    results = []
    for case in cases:
        results.append(run(case, STATE / "cluster", settings))
        report.write(report.document(results, settings), args.out)
    print(f"\nresult: {args.out}\n")
    print(report.table(results))
    stages = timeline.table([(r["case"], r.get("additions", {}).get("breakdown_ms")) for r in results])
    if stages:
        print(f"\nwhere an addition's time goes:\n\n{stages}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
