"""The two-layer CNN kind (``kind = "cnn"``; docs/theory/cnn.md, Zhou et al. 2023, arXiv
2305.09947).

The numerics (patch correlation ``Z = ⟨y P(x̃)ᵀ⟩``, the exact ``p = 1`` solution, the
misalignment) are in :mod:`effdyn.dynamics.cnn`; this module wires them into ``predict``.
Extra keys: ``model``, ``singular_values`` of ``Z``, ``u1``, ``v1``, ``gap`` ``s₁/s₂``; for
``p = 1`` ``coefficient`` ``c_1``, ``growth_rate = |c_1| s₁``, per-kernel ``orientations``
(``sign(u₁·W_β(0) + sign(c_1) v₁·a_β(0))``), ``t_escape_textbook`` ``log(1/ε)/(|c_1| s₁)``,
``misalignment_exponent`` ``1 − s₂/s₁``, ``misalignment_scale`` ``ε^{1 − s₂/s₁}`` and
``misalignment``, the median ``sin∠(W_β, u₁)`` at ``t_escape`` on the exact linear solution
(docs/theory/cnn.md#misalignment); for ``p ≥ 2`` ``per_neuron`` (channels decouple).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import EffdynError
from .base import (
    Measurements,
    ModelKind,
    RealNetwork,
    Units,
    eps_label,
    loss_label,
    num,
    solve_units,
)


class CNN(ModelKind):
    """``f(x) = ⟨W2, σ(W1 P(x̃)ᵀ)⟩_F`` (docs/theory/cnn.md#effective-dynamics)."""

    name = "cnn"
    drift_note_text = (
        "σ(0) = {sigma0} ≠ 0 adds a degree-{degree} drift of the read-out weights "
        "(ȳ σ(0) 𝟙ᵀW2𝟙) that dominates early; the prediction covers the centred part"
    )
    escape_note = (
        "the leading-order loss never drops by 10% along the effective trajectory: "
        "t_escape is null; use growth_rate (or t_star)"
    )

    def derivation(self, problem):
        from ..symbolic.cnn import derive_cnn

        return derive_cnn(problem.model.activations[0])

    def _activation(self, problem, deriv):
        act = deriv.activations[0]
        if not act.smooth:
            raise EffdynError(
                f"{problem.source}: predict for kind = 'cnn' needs an activation that is smooth "
                f"at 0; {act.source!r} is not (its leading part is piecewise, with a kink for "
                "every image, position and kernel, which the ODE solver cannot follow at a "
                "useful cost) — training and compare's measurements still work with it"
            )
        return act

    def real_network(self, problem):
        from ..training.network import first_layer_preactivation, network

        return RealNetwork(
            network(problem),
            problem.patches(),
            first_layer_preactivation,
            ("cnn", problem.model.activations),
        )

    def setting(self, problem):
        m = problem.model
        stride = f", stride {m.stride}" if m.stride != 1 else ""
        return (
            f"{problem.data.name}, CNN {m.channels} kernels {m.kernel}×{m.kernel}{stride}, "
            f"{', '.join(dict.fromkeys(m.activations))}{loss_label(problem)}, "
            f"ε = {eps_label(problem)}, {problem.train.optimizer} lr {problem.train.lr:g}"
        )

    def effective_model(self, problem, params0, *, deriv=None, loss="mse", around=None, small=None):
        from ..dynamics.cnn import cnn_effective_model

        self.check_reserved(loss, around, small)
        if loss == "cross_entropy":
            raise EffdynError(
                f"{problem.source}: loss 'cross_entropy' needs K >= 2 logits, but the CNN kind "
                "has one scalar output (use mse, logistic or exponential)"
            )
        deriv = self.derivation(problem) if deriv is None else deriv
        act = self._activation(problem, deriv)
        channels = int(np.shape(params0[0])[0])
        return cnn_effective_model(act, problem.patches(), problem.data.y, channels, loss=loss)

    def units(self, problem, params0, deriv):
        """Channel ``β`` is ``(W_β, a_β)`` = (row β of W1, row β of W2)."""
        w1, w2 = (np.asarray(p) for p in params0)
        model = self.effective_model(
            problem, (w1[:1], w2[:1]), deriv=deriv, loss=problem.model.loss
        )
        return Units(model, np.concatenate([w1, w2], axis=1), w1.shape[1])

    def closed_forms(self, problem, deriv, params0, model, traj, out, opts, progress):
        from ..dynamics.cnn import kernel_direction, kernel_misalignment, linear_solution

        act = self._activation(problem, deriv)
        z = np.asarray(model.z)
        u1, v1, s = kernel_direction(z)
        s2 = float(s[1]) if len(s) > 1 else 0.0
        eps = math.sqrt(problem.init.scales[0] * problem.init.scales[1])
        notes = []
        if len(s) < 2 or s[1] >= (1.0 - 1e-9) * s[0]:
            notes.append(
                "no spectral gap (s2 = s1): the top singular vector of Z is not unique and "
                "kernels need not condense on one direction"
            )
        extra = {
            "model": {
                "kind": "cnn",
                "channels": problem.model.channels,
                "kernel": problem.model.kernel,
                "stride": problem.model.stride,
                "image_shape": list(problem.image_shape),
                "positions": problem.n_positions,
                "bias": problem.model.bias,
            },
            "singular_values": [float(v) for v in s],
            "u1": u1.tolist(),
            "v1": v1.tolist(),
            "gap": float(s[0] / s2) if s2 > 0 else None,
        }
        if model.coefficient is not None:
            c = model.coefficient
            extra["coefficient"] = c
            extra["growth_rate"] = abs(c) * float(s[0])
            extra["growth_rate_solved"] = num(traj.growth_rate)
            extra["orientations"] = [
                1 if o >= 0 else -1 for o in params0[0] @ u1 + np.sign(c) * params0[1] @ v1
            ]
            # Z = 0 (no target correlation): nothing grows; the solve says so (result code).
            ratio = s2 / float(s[0]) if s[0] > 0 else None
            extra["t_escape_textbook"] = (
                math.log(1.0 / eps) / (abs(c) * float(s[0])) if ratio is not None else None
            )
            extra["misalignment_exponent"] = None if ratio is None else 1.0 - ratio
            extra["misalignment_scale"] = None if ratio is None else eps ** (1.0 - ratio)
            if out["t_escape"] is not None:
                w1_esc, _ = linear_solution(z, c, *params0, out["t_escape"])
                extra["misalignment"] = float(np.median(kernel_misalignment(w1_esc, u1)))
            else:
                extra["misalignment"] = None
            directions = {"W1": [u1.tolist(), (-u1).tolist()], "W2": [v1.tolist(), (-v1).tolist()]}
        else:
            solved = solve_units(self.units(problem, params0, deriv), opts, progress=progress)
            extra["per_neuron"] = dict(solved.keys)
            extra["misalignment_exponent"] = None
            extra["misalignment"] = None
            notes.append(
                f"multiplicity p = {act.degree}: kernels need not align with u1 (u1, gap "
                "describe Z only); the predicted directions are the channels' blow-up directions"
            )
            directions = {"W1": solved.orientations()}
        return extra, directions, notes

    def measure(self, problem, run, predicted, t_escape, stage_w1, stage_t) -> Measurements:
        """Every kernel against ``±u₁`` at the measured escape step (``kernels``) and at the
        end of the initial stage (``initial_stage.kernels``); docs/theory/cnn.md#misalignment."""
        params, kernels = kernel_measurements(problem, run, predicted, t_escape)
        return Measurements(
            measured={"kernels": kernels},
            initial_stage={"kernels": kernel_alignment(problem, stage_w1, predicted, stage_t)},
            definitions={"kernels": KERNELS_DEFINITION},
            escape_params=params,
        )


KERNELS_DEFINITION = (
    "every kernel (row of W1, bias last) at the measured escape step (and at the "
    "initial stage): |cos| with u1 and misalignment sin∠(W_β, ±u1), median over "
    "kernels; misalignment_effective: the same on the exact linear effective "
    "solution at the same t. Past the initial stage the residual −⟨f·∂f⟩ of the "
    "loss (dropped by the effective dynamics) turns kernels away from u1 by an "
    "ε-independent amount, so at small ε measure the rate at the initial stage"
)


def _initial(problem):
    from ..problem import initial_params

    return initial_params(problem)


def kernel_alignment(problem, w1, predicted: dict, t: float) -> dict:
    """Every CNN kernel at time ``t`` against ``±u₁``: median/min ``|cos|``, the median
    misalignment, and (p = 1) the median misalignment of the exact linear effective
    solution at the same ``t`` (``misalignment_effective``: like with like)."""
    from ..dynamics.cnn import kernel_misalignment, linear_solution, patch_correlation

    u1 = np.asarray(predicted["u1"])
    sines = kernel_misalignment(w1, u1)
    cos = np.sqrt(np.clip(1.0 - sines**2, 0.0, 1.0))
    out = {
        "median_abs_cos": float(np.median(cos)),
        "min_abs_cos": float(np.min(cos)),
        "misalignment": float(np.median(sines)),
        "n": int(len(sines)),
    }
    if predicted.get("coefficient") is not None:
        from ..losses import get_loss

        y = get_loss(problem.model.loss).effective_target(problem.data.y, 1)
        z = patch_correlation(problem.patches(), y)
        w1_t, _ = linear_solution(z, predicted["coefficient"], *_initial(problem), t)
        out["misalignment_effective"] = float(np.median(kernel_misalignment(w1_t, u1)))
    return out


def kernel_measurements(problem, run, predicted: dict, t_esc) -> tuple:
    """``(W1 and W2 at the measured escape step, the kernels' alignment there)`` — or the
    end of training when the loss never dropped by 10% (``at`` says which)."""
    if t_esc is None:
        step, at = len(run.t) - 1, "end of training (no escape)"
    else:
        step, at = int(round(t_esc / run.lr)), "escape"
    params = run.params_at(step)
    kernels = {"at": at, "step": step, "t": float(run.t[step])}
    kernels.update(kernel_alignment(problem, params[0], predicted, float(run.t[step])))
    if predicted.get("misalignment_exponent") is not None:
        orientations = np.sign(params[0] @ np.asarray(predicted["u1"]))
        kernels["orientations_match"] = float(np.mean(orientations == predicted["orientations"]))
    return params, kernels
