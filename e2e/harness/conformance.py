"""`make conformance`: the official Gateway API conformance suite (v1.5.1,
e2e/conformance) against portico on the e2e cluster, with traffic. Every Pod
the suite creates runs through the e2e kubelet: its echo-basic backends as
the echo-basic program built from the suite's own module, its coredns as the
small DNS server of e2e/conformance, portico's Envoys as the real Envoy.

Usage: python -m e2e.harness.conformance [--run-test NAME[,NAME...]] [--state DIR]
Writes the official report to e2e/conformance/report.yaml (a full run) and
exits with the suite's status.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from .cluster import REPO
from .kubelet import Image
from .world import World

CONFORMANCE = REPO / "e2e" / "conformance"
REPORT = CONFORMANCE / "report.yaml"
ECHO_IMAGE = "gcr.io/k8s-staging-gateway-api/echo-basic"
DNS_IMAGES = ("registry.k8s.io/coredns/coredns", "coredns/coredns")
USABLE_ADDRESS = "10.211.0.199"
UNUSABLE_ADDRESS = "10.212.0.240"


def build():
    out = subprocess.run([str(CONFORMANCE / "build.sh")], check=True, capture_output=True, text=True)
    suite, echo, dns = out.stdout.split()
    return suite, echo, dns


TABLE_START = "<!-- conformance table: written by make conformance -->"
TABLE_END = "<!-- end of conformance table -->"


def readme_table(report_text, seconds, tests_run):
    """The README's per-profile table of an official report."""
    import yaml

    report = yaml.safe_load(report_text)
    rows = ["| profile | core (passed / run) | extended (passed / run) | skipped |", "|---|---:|---:|---:|"]
    for p in sorted(report["profiles"], key=lambda p: p["name"]):
        cells = []
        skipped = 0
        for part in ("core", "extended"):
            stats = p.get(part, {}).get("statistics", {})
            passed, failed = stats.get("Passed", 0), stats.get("Failed", 0)
            skipped += stats.get("Skipped", 0)
            cells.append(f"{passed} / {passed + failed}")
        rows.append(f"| {p['name']} | {cells[0]} | {cells[1]} | {skipped} |")
    summary = (f"Last full run: {report.get('date', '?')}, v{report['gatewayAPIVersion'].lstrip('v')}, "
               f"{tests_run} tests run in {seconds / 60:.0f} minutes on this machine (2 cores); "
               "a test belongs to every profile whose features it uses, so the rows overlap.")
    return "\n".join([TABLE_START, summary, "", *rows, TABLE_END])


def write_readme_table(report_path, seconds, tests_run):
    readme = REPO / "README.md"
    text = readme.read_text()
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < 0:
        raise RuntimeError("README.md has no conformance table markers")
    table = readme_table(Path(report_path).read_text(), seconds, tests_run)
    readme.write_text(text[:start] + table + text[end + len(TABLE_END):])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-test", default="")
    parser.add_argument("--state", default=str(REPO / "e2e" / ".run" / "conformance"))
    parser.add_argument("--report", default=None)
    args = parser.parse_args()
    suite, echo, dns = build()
    images = {ECHO_IMAGE: Image(echo)}
    for prefix in DNS_IMAGES:
        images[prefix] = Image(dns)
    world = World(args.state, images=images)
    started = time.monotonic()
    try:
        world.start()
        print(f"conformance: cluster and portico up in {time.monotonic() - started:.0f} s", flush=True)
        report = args.report or (str(REPORT) if not args.run_test else str(Path(args.state) / "report.yaml"))
        command = [
            suite, "-test.v", "-test.timeout", "80m",
            "-gateway-class", "portico",
            "-report-output", report,
            "-organization", "portico", "-project", "portico",
            "-url", "https://portico.dev", "-version", "dev", "-contact", "maintainers@portico.dev",
            "-cleanup-base-resources=false",
            # GatewayStaticAddresses: the last address of MetalLB's pool
            # (cluster.LB_POOL, handed out from its low end), and one in no
            # pool, which MetalLB never assigns.
            "-usable-address", USABLE_ADDRESS, "-unusable-address", UNUSABLE_ADDRESS,
        ]
        if "," in args.run_test:
            # Several tests: Go's own filter on the suite's subtests, features
            # still inferred from the GatewayClass.
            names = "|".join(args.run_test.split(","))
            command += ["-test.run", f"^TestConformance$/^({names})$"]
        elif args.run_test:
            command += ["-run-test", args.run_test]
        env = dict(os.environ, KUBECONFIG=str(world.cluster.kubeconfig))
        # The suite's output as it comes, counting the tests that ran.
        tests_run = 0
        with subprocess.Popen(command, env=env, cwd=str(CONFORMANCE), stdout=subprocess.PIPE,
                              text=True) as suite_run:
            for line in suite_run.stdout:
                sys.stdout.write(line)
                if line.startswith(("    --- PASS", "    --- FAIL")):
                    tests_run += 1
        sys.stdout.flush()
        seconds = time.monotonic() - started
        print(f"conformance: suite finished in {seconds:.0f} s, exit {suite_run.returncode}", flush=True)
        if not args.run_test and Path(report).exists():
            write_readme_table(report, seconds, tests_run)
        return suite_run.returncode
    finally:
        world.stop()


if __name__ == "__main__":
    sys.exit(main())
