"""One World for the whole session: the control plane, MetalLB, portico and
the seed journey are set up once; each test then changes one thing."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from e2e.harness.world import World  # noqa: E402


@pytest.fixture(scope="session")
def world():
    state = os.environ.get("E2E_STATE", str(Path(__file__).resolve().parents[1] / ".run" / "test"))
    w = World(state)
    try:
        w.start()
        w.seed_address = w.seed_journey()
        yield w
    finally:
        w.stop()
        for what, seconds in w.timings.items():
            print(f"e2e timing: {what}: {seconds:.1f} s")
