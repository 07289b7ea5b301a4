"""Diagonal linear networks (``kind = "diagonal"``): ``f(x) = ⟨β, x⟩``, ``β = u⊙u − v⊙v``,
``u(0) = v(0) = α·1`` (docs/theory/staircases.md#diagonal-linear-networks).

The network is two-homogeneous in ``(u, v)``, so its leading order at small α is the
network itself with the loss linearized: the automatic engine derives it (the kind reuses
:class:`~effdyn.kinds.auto.Automatic` for ``derive``, ``predict`` and ``compare``). Its
staircase is the saddle-to-saddle limit of Pesme & Flammarion 2023 (arXiv 2304.00488),
computed exactly by :func:`effdyn.staircase.diagonal.limit`, in the time ``t/log(1/α)``.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from .auto import Automatic
from .base import RealNetwork, loss_label


def _network(leaves, x):
    u, v = leaves
    return jnp.matmul(jnp.asarray(x), u * u - v * v)[:, None]


class Diagonal(Automatic):
    """``kind = "diagonal"``: the real network is built in; the rest is the automatic
    engine's, and :meth:`stages` is the Pesme–Flammarion limit."""

    name = "diagonal"

    def real_network(self, problem) -> RealNetwork:
        return RealNetwork(_network, problem.data.x, _network, ("diagonal",))

    def setting(self, problem) -> str:
        return (
            f"{problem.data.name}, diagonal linear network, d = {problem.d}"
            f"{loss_label(problem)}, α = {problem.init.scale:g}, "
            f"{problem.train.optimizer} lr {problem.train.lr:g}"
        )

    def stages(self, problem, opts=None, *, progress: bool = False):
        """The jumps of the α → 0 limit in ``t/log(1/α)`` (module doc); ``alpha`` and
        ``log_inv_alpha`` convert them to the time ``t`` of this problem's α."""
        from ..staircase.diagonal import staircase

        found = staircase(problem.data.x, problem.data.y[:, 0])
        alpha = problem.init.scale
        extra = {"alpha": alpha, "log_inv_alpha": math.log(1 / alpha) if alpha < 1 else None}
        return type(found)(found.stages, found.method, found.time_unit, {**found.extra, **extra})


__all__ = ["Diagonal"]
