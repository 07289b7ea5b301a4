"""Shared test set-up: the ``x64`` fixture, the command line as a subprocess.

x64 is NOT switched on globally: effdyn's entry points compute in float64 inside JAX's
scoped ``jax.enable_x64(True)`` (docs/precision.md), and the tests check that path. A test
that builds JAX arrays itself (``jnp`` arrays, ``jax.random``, a raw jitted internal called
with ``jnp`` inputs) asks for the ``x64`` fixture.
"""

import json
import subprocess
import sys

import jax
import pytest


@pytest.fixture
def x64():
    """Run the test inside the scoped ``jax.enable_x64(True)``."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def x64_module():
    """``x64`` for a whole module, for module-scoped fixtures that build JAX arrays."""
    with jax.enable_x64(True):
        yield


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
