"""Leading-order effective dynamics of a two-layer CNN (Zhou et al. 2023, arXiv 2305.09947;
docs/theory/cnn.md#effective-dynamics).

The network (``kind = "cnn"``): one convolution with ``C`` kernels, stride ``s``, no padding,
activation ``σ``, then a linear read-out of every channel's map,

    f(x) = Σ_β ⟨a_β, σ(P(x̃) W_β)⟩ = Σ_β Σ_j a_{βj} σ(P_j(x̃) · W_β),

where ``P(x̃)`` is the im2col patch matrix (row ``j`` = the flattened receptive field of
output position ``j``, a 1 appended last with bias), ``W_β`` row β of ``W1`` (channels ×
C_in·k·k [+1]) and ``a_β`` row β of ``W2`` (channels × positions). In matrix form, with the
pre-activations ``H(x̃) = W1 P(x̃)ᵀ`` (channels × positions),

    f(x) = ⟨W2, σ(W1 P(x̃)ᵀ)⟩_F.

This is the depth-2 network of docs/theory/effective-dynamics.md#two-layer with the first layer
shared over positions and
one read-out weight per position, so the activation analysis, the degree ``q = 1 + p`` and the
field degree ``k = p`` are those of depth 2; only the energy and the equations change.
Replacing ``σ`` by ``σ(0) + φ(s)``, ``φ(s) = c_p s^p``:

    E = ⟨y ⟨W2, φ(W1 Pᵀ)⟩_F⟩,
    W1' = ⟨y (W2 ⊙ φ'(W1 Pᵀ)) P⟩,      W2' = ⟨y φ(W1 Pᵀ)⟩.

For ``p = 1`` (tanh-like) the data enter only through ``Z = ⟨y P(x̃)ᵀ⟩`` (input_dim ×
positions) and the dynamics are linear: ``W1' = c_1 W2 Zᵀ``, ``W2' = c_1 W1 Z``, i.e. per
channel ``W_β' = c_1 Z a_β``, ``a_β' = c_1 Zᵀ W_β``. A ``σ(0) ≠ 0`` adds the degree-1 drift
``E_drift = ȳ σ(0) 𝟙ᵀ W2 𝟙`` (every read-out weight is pushed by the mean target).

Only sympy is imported here (the command line starts without JAX).

Example::

    >>> d = derive_cnn("tanh")
    >>> d.degree, d.field_degree, d.equations("text")["W1"]
    (2, 1, "W1' = W2 Zᵀ")
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .activation import Activation, analyze_activation
from .derivation import Derivation, DriftTerm, derive
from .equations import _scaled, _style


@dataclass(frozen=True)
class CNNDerivation(Derivation):
    """The leading-order dynamics of a two-layer CNN: a depth-2 :class:`Derivation` whose
    energy and equations are written for shared kernels ``W1`` and position-wise read-out
    weights ``W2`` (module docstring)."""

    kind: str = "cnn"

    def energy(self, style: str = "latex") -> str:
        """``E = ⟨y ⟨W2, φ(W1 Pᵀ)⟩_F⟩``, or ``c_1 ⟨W2, W1 Z⟩_F`` when ``p = 1``."""
        st = _style(style)
        w1, w2, t = st.weight(1), st.weight(2), st.transpose
        act = self.activations[0]
        if act.smooth and act.degree == 1:
            body = _scaled(act.coeff_right, _frobenius(f"{w2}", f"{w1} Z", style), st)
            return f"E = {body}"
        pre = f"{w1} P{t}"
        inner = _frobenius(w2, _phi(act, pre, style), style)
        return f"E = {st.average(f'y {inner}')}"

    def equations(self, style: str = "latex") -> dict[str, str]:
        """``W1' = …``, ``W2' = …`` (and ``Z = ⟨y Pᵀ⟩`` for ``p = 1``)."""
        st = _style(style)
        w1, w2, t = st.weight(1), st.weight(2), st.transpose
        act = self.activations[0]
        if act.smooth and act.degree == 1:
            c = act.coeff_right
            return {
                "W1": f"{w1}' = {_scaled(c, f'{w2} Z{t}', st)}",
                "W2": f"{w2}' = {_scaled(c, f'{w1} Z', st)}",
                "Z": f"Z = {st.average(f'y P{t}')}",
            }
        pre = f"{w1} P{t}"
        gated = st.paren(f"{w2}{st.hadamard}{st.template_prime(1, pre)}")
        return {
            "W1": f"{w1}' = {st.average(f'y {gated} P')}",
            "W2": f"{w2}' = {st.average(f'y {_phi(act, pre, style)}')}",
        }


def _frobenius(a: str, b: str, style: str) -> str:
    if style == "latex":
        return f"\\left\\langle {a},\\, {b} \\right\\rangle_F"
    return f"⟨{a}, {b}⟩_F"


def _phi(act: Activation, pre: str, style: str) -> str:
    """``φ(pre)`` written out for a smooth template, ``φ_1(pre)`` otherwise."""
    st = _style(style)
    if not act.smooth:
        return st.template(1, pre)
    if act.degree == 1:
        return _scaled(act.coeff_right, pre, st)
    return _scaled(act.coeff_right, st.power(pre, act.degree), st)


def derive_cnn(activation: str | Activation) -> CNNDerivation:
    """Derive the leading-order dynamics of a two-layer CNN with activation ``activation``.

    The activation analysis, ``q = 1 + p`` and the correction order are those of a depth-2
    network (:func:`~effdyn.symbolic.derivation.derive`); the drift of ``σ(0) ≠ 0`` is
    ``ȳ σ(0) 𝟙ᵀ W2 𝟙`` (degree 1).

    >>> derive_cnn("x*tanh(x)").field_degree
    2
    """
    act = activation if isinstance(activation, Activation) else analyze_activation(activation)
    base = derive([act], 2)
    drift = tuple(DriftTerm(t.layer, t.sigma0, t.degree, *_drift_text(act)) for t in base.drift)
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(Derivation)}
    return CNNDerivation(**{**fields, "drift": drift})


def _drift_text(act: Activation) -> tuple[str, str]:
    out = []
    for style in ("latex", "text"):
        st = _style(style)
        label = "E_{\\mathrm{drift}}" if style == "latex" else "E_drift"
        ones = f"{st.one}{st.transpose} {st.weight(2)} {st.one}"
        out.append(f"{label} = {_scaled(act.sigma0, f'{st.mean_y} {ones}', st)}")
    return out[0], out[1]
