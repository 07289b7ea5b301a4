"""Shared test set-up: float64 JAX, seeded randomness, the command line as a subprocess."""

import json
import subprocess
import sys

import jax
import pytest

jax.config.update("jax_enable_x64", True)


def run_cli(*args: str, timeout: float = 120):
    """Run ``effdyn ARGS`` in a fresh process; returns (code, stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "effdyn.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def cli():
    return run_cli


def parse_json(stdout: str) -> dict:
    return json.loads(stdout)
