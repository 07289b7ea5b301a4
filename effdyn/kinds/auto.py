"""The automatic kind: any JAX model through Taylor mode in ε (docs/theory/automatic.md).

``kind = "jax"`` (a user's model file, docs/user-models.md) always uses it; a built-in kind
(``fc``, ``cnn``) uses it when its ``[init]`` gives per-leaf ``exponents`` (some leaves at
O(1), docs/user-models.md#exponents), since the symbolic derivation assumes every layer small.
The derivation is an :class:`~effdyn.dynamics.auto.Expansion`; ``predict`` solves its
:class:`~effdyn.dynamics.auto.AutoModel` on the flat vector of the small leaves.

Extra keys of ``effdyn predict``: ``engine`` (``"automatic"``), ``active_parameters``,
``frozen_parameters``, ``drift_parameters``, ``finite_time_blowup``, ``model_homogeneous``,
``loss``, ``leaves`` (name, shape, exponent), ``directions`` per active leaf (its units, the
slices along its unit axis, clustered into orientations) and ``n_orientations`` per leaf;
when ``E`` is bilinear in two leaves, ``bilinear_matrix`` (``F`` of ``E = tr(Aᵀ F B)``) and
``bilinear`` (its leaves, form, singular values and top singular pair;
docs/theory/reexpansion.md#bilinear-energies).

The real network of a user model is ``apply(params, x)`` on the template's pytree; before
any work it is run once at the initialization and must return ``(n,)`` or ``(n, K)``
finite values, with ``K`` fitting the loss (one line otherwise, naming the file's line where
the model raised). The initial-stage rule of ``compare`` reads the largest change of the
output from its value with the small leaves at zero, ``max |f(θ) − f_0|``
(docs/theory/measuring.md#initial-stage).
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from .._jax import in_float64
from ..errors import EffdynError, ProblemError
from ..losses import get_loss
from .base import Measurements, ModelKind, RealNetwork, eps_label, loss_label, num

PREDICTED_MERGE = 1e-6
"""Limit directions closer than ``1 − cos < 1e-6`` are one orientation."""


class Automatic(ModelKind):
    """Leading-order dynamics by the automatic engine (:func:`~effdyn.dynamics.auto.expand`)."""

    name = "jax"

    def __init__(self, builtin: dict | None = None):
        self.builtin = dict(builtin or {})
        """The built-in kinds whose real networks a problem with exponents trains."""

    escape_note = (
        "the leading-order loss never drops by 10% along the effective trajectory: "
        "t_escape is null; use t_star or growth_rate"
    )

    # -- the real network ----------------------------------------------------------------

    def real_network(self, problem) -> RealNetwork:
        f, inputs, key = _base_network(problem, self.builtin)
        small = _small(problem)

        def preactivation(leaves, x):
            zeroed = [jnp.zeros_like(w) if s else w for w, s in zip(leaves, small, strict=True)]
            return f(leaves, x) - f(zeroed, x)

        return RealNetwork(f, inputs, preactivation, ("auto", key, small))

    # -- the derivation --------------------------------------------------------------------

    def derivation(self, problem):
        from ..dynamics.auto import expand
        from ..problem import initial_leaves

        net = self.real_network(problem)
        leaves0 = initial_leaves(problem)
        try:
            return expand(
                net.f,
                net.inputs,
                problem.data.y,
                leaves0,
                loss=problem.model.loss,
                exponents=problem.init.exponents,
                names=problem.leaf_names(),
                seed=problem.init.seed,
            )
        except EffdynError as err:
            raise EffdynError(f"{problem.source}: {err}") from None
        except Exception as err:  # the user's model raised under the Taylor-mode trace
            where = _where(problem, err)
            raise ProblemError(
                f"{problem.source}: the automatic engine could not expand the model: "
                f"{type(err).__name__}{where}: {_one_line(err)}"
            ) from None

    def derive_summary(self, problem, deriv) -> dict:
        return {"kind": problem.model.kind, **deriv.summary()}

    def effective_model(self, problem, params0, *, deriv=None, loss="mse", around=None, small=None):
        self.check_reserved(loss, around, small)
        deriv = self.derivation(problem) if deriv is None else deriv
        if not deriv.active:
            raise EffdynError(f"{problem.source}: no leaf is active at leading order")
        if not deriv.energy_homogeneous:
            raise EffdynError(
                f"{problem.source}: the leading-order energy (order {deriv.degree}) is not "
                "homogeneous in the active leaves (its leaves enter at mixed degrees), so the "
                "rescaled-time blow-up solver does not apply; effdyn derive reports the "
                "expansion (docs/theory/automatic.md#per-leaf-exponents)"
            )
        return deriv.model

    def initial_state(self, problem, leaves0, model, deriv):
        return deriv.flatten(leaves0)

    def drift_note(self, term) -> str:
        return (
            f"leaf {term!r} enters the output at order 1 (drift): it fits the target's "
            "mean in O(1) time; the prediction covers the rest (docs/theory/automatic.md#drift)"
        )

    def closed_forms(self, problem, deriv, params0, model, traj, out, opts, progress):
        directions = self._directions(problem, deriv, traj.direction)
        extra = {
            "engine": "automatic",
            "active_parameters": list(deriv.active),
            "frozen_parameters": list(deriv.frozen),
            "drift_parameters": list(deriv.drift),
            "finite_time_blowup": deriv.finite_time_blowup,
            "model_homogeneous": deriv.model_homogeneous,
            "loss": deriv.loss,
            "leaves": deriv.summary()["leaves"],
            "n_orientations": {name: len(d) for name, d in directions.items()},
        }
        bilinear = deriv.bilinear()
        if bilinear is not None:  # E = tr(Aᵀ F B): docs/theory/reexpansion.md#bilinear-energies
            extra["bilinear_matrix"] = bilinear.pop("matrix")
            extra["bilinear"] = bilinear
        notes = []
        if deriv.frozen:
            notes.append(
                f"frozen at leading order (∇E ≡ 0): {', '.join(deriv.frozen)}; they move at a "
                "higher order in ε than the active leaves"
            )
        return extra, directions, notes

    def _directions(self, problem, deriv, direction) -> dict:
        """Per active leaf, its units' limit directions clustered into orientations."""
        from ..analysis.orientations import cluster_orientations

        direction = np.asarray(direction)
        if not np.all(np.isfinite(direction)):
            return {name: [] for name in deriv.active}
        leaves = deriv.unravel(direction)
        out = {}
        for name in deriv.active:
            rows = self.unit_rows(problem, leaves, name)
            found = cluster_orientations(rows, PREDICTED_MERGE, min_relative_norm=1e-6)
            out[name] = found.directions.tolist()
        return out

    # -- compare -----------------------------------------------------------------------------

    def main_leaf(self, problem, predicted) -> str:
        active = predicted.get("active_parameters") or []
        return active[0] if active else problem.leaf_names()[0]

    def setting(self, problem) -> str:
        if problem.user is not None:
            name, count = Path(problem.user.path).name, len(problem.leaf_names())
            model = f"user model {name} ({count} leaves)"
        else:
            m = problem.model
            model = f"{m.kind} depth {m.depth}, {', '.join(dict.fromkeys(m.activations))}"
        return (
            f"{problem.data.name}, {model}{loss_label(problem)}, ε = {eps_label(problem)}, "
            f"{problem.train.optimizer} lr {problem.train.lr:g}"
        )

    def capture_steps(self, problem, predicted) -> tuple[int, ...]:
        """The step nearest ``t = T*/2``, where ``measure`` reads each leaf's relative change
        (frozen leaves: O(ε²); active ones: O(1))."""
        t_star = predicted.get("t_star")
        if t_star is None:
            return ()
        step = int(round(0.5 * t_star / problem.train.lr))
        return (step,) if 0 < step <= problem.train.steps else ()

    def measure(self, problem, run, predicted, t_escape, stage_w1, stage_t) -> Measurements:
        """Per leaf: the relative change ``‖θ_j(t) − θ_j(0)‖/‖θ_j(0)‖`` at ``t ≈ T*/2``, and
        the alignment of each active leaf's grown units with its predicted directions at the
        end of the initial stage and at the measured escape."""
        from ..analysis.condensation import stage_summary
        from ..problem import initial_leaves

        leaves0 = initial_leaves(problem)
        names = problem.leaf_names()
        dirs = predicted.get("directions") or {}
        captured = list(run.captured) + [None] * 3

        def per_leaf(leaves) -> dict:
            out = {}
            for name in dirs:
                rows0 = self.unit_rows(problem, leaves0, name)
                directions = np.asarray(dirs[name] or np.zeros((0, rows0.shape[1])))
                out[name] = stage_summary(self.unit_rows(problem, leaves, name), rows0, directions)
            return out

        measured: dict = {}
        initial: dict = {}
        if captured[0] is not None:
            initial["leaves"] = per_leaf(captured[0][1])
        if captured[1] is not None:
            step, leaves = captured[1]
            measured["escape"] = {
                "step": int(step),
                "t": float(run.t[step]),
                "leaves": per_leaf(leaves),
            }
        if captured[2] is not None:
            step, leaves = captured[2]
            change = {
                name: _relative_change(w, w0)
                for name, w, w0 in zip(names, leaves, leaves0, strict=True)
            }
            measured["half_t_star"] = {
                "step": int(step),
                "t": float(run.t[step]),
                "t_over_t_star": num(float(run.t[step]) / predicted["t_star"]),
                "relative_change": change,
            }
        definitions = {
            "half_t_star": "θ at the step nearest t = T*/2: per leaf ‖θ_j(t) − θ_j(0)‖/‖θ_j(0)‖",
            "leaves": "per active leaf, its units (slices along its unit axis) against that "
            "leaf's predicted directions",
        }
        return Measurements(measured=measured, initial_stage=initial, definitions=definitions)


def _relative_change(w, w0) -> float | None:
    base = float(np.linalg.norm(w0))
    return num(float(np.linalg.norm(np.asarray(w) - np.asarray(w0))) / base) if base else None


def _small(problem) -> tuple[bool, ...]:
    exps = problem.init.exponents
    return tuple(True for _ in problem.leaf_names()) if exps is None else tuple(g > 0 for g in exps)


def _base_network(problem, builtin: dict):
    """``(f(leaves, inputs) -> (n, K), inputs, key)``: a user's model, checked once at the
    initialization, or a built-in kind's real network."""
    if problem.user is None:
        net = builtin[problem.model.kind].real_network(problem)
        return net.f, net.inputs, net.key
    user = problem.user

    def f(leaves, x):
        out = jnp.asarray(user.apply(user.unflatten(leaves), x))
        return out[:, None] if out.ndim == 1 else out

    check_user_output(problem, f)
    path = Path(user.path)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    key = ("jax", str(path), stamp, problem.model.apply, problem.model.params, user.shapes)
    return f, problem.data.x, key


@in_float64
def check_user_output(problem, f) -> None:
    """Run the user's model once at the initialization: it must not raise and must return
    ``(n,)`` or ``(n, K)`` finite values with ``K`` fitting the loss (one line otherwise)."""
    from ..problem import initial_leaves

    user = problem.user
    name = Path(user.path).name
    leaves = [jnp.asarray(w) for w in initial_leaves(problem)]
    try:
        raw = user.apply(user.unflatten(leaves), jnp.asarray(problem.data.x))
        out = np.asarray(raw)
    except Exception as err:
        raise ProblemError(
            f"{problem.source}: [model] apply = {problem.model.apply!r} raised "
            f"{type(err).__name__}{_where(problem, err)}: {_one_line(err)}"
        ) from None
    n = problem.n
    if out.ndim not in (1, 2) or out.shape[0] != n:
        raise ProblemError(
            f"{problem.source}: [model] apply = {problem.model.apply!r} in {name} returned "
            f"shape {out.shape} for x of shape {problem.data.x.shape}; it must return (n,) or "
            f"(n, K) with n = {n}"
        )
    if out.dtype.kind not in "fiu":
        raise ProblemError(
            f"{problem.source}: [model] apply in {name} returned {out.dtype} values; it must "
            "return real numbers"
        )
    if not np.all(np.isfinite(out)):
        bad = int(np.sum(~np.isfinite(out)))
        raise ProblemError(
            f"{problem.source}: [model] apply in {name} returned {bad} non-finite value(s) "
            "at the initialization"
        )
    k = 1 if out.ndim == 1 else int(out.shape[1])
    loss = get_loss(problem.model.loss)
    if problem.model.loss == "mse" and k != problem.data.y.shape[1]:
        raise ProblemError(
            f"{problem.source}: [model] apply in {name} returns K = {k} outputs but y has "
            f"{problem.data.y.shape[1]} column(s) (loss 'mse')"
        )
    if problem.model.loss == "cross_entropy" and k < 2:
        raise ProblemError(
            f"{problem.source}: loss 'cross_entropy' needs K >= 2 logits, but apply in "
            f"{name} returns {k} output per sample"
        )
    if problem.model.loss in ("logistic", "exponential") and k != 1:
        raise ProblemError(
            f"{problem.source}: loss {problem.model.loss!r} needs one output per sample, but "
            f"apply in {name} returns K = {k}"
        )
    try:
        loss.check_labels(problem.data.y, k)
    except EffdynError as err:
        raise ProblemError(f"{problem.source}: {err}") from None


def _where(problem, err) -> str:
    from .usermodel import user_frame

    return user_frame(err, problem.user.path) if problem.user is not None else ""


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 200 else text[:197] + "..."


__all__ = ["Automatic", "check_user_output"]
