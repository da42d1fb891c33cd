"""The soak command itself works: a short soak with many faults keeps every invariant."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def test_a_short_soak_with_random_faults_keeps_every_invariant():
    result = subprocess.run(
        [sys.executable, "bench/soak.py", "--runs", "40", "--fault-rate", "0.6", "--seed", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "INVARIANTS HOLD" in result.stdout
    assert "fault injected" in result.stdout
