"""The sympy→JAX bridge: the derived field against autodiff, the real network and the
conservation laws of docs/theory/effective-dynamics.md#conservation-laws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from effdyn.symbolic import derive
from effdyn.symbolic.bridge import jax_field, leading_order

RNG = np.random.default_rng(20261123)


def _data(n=24, d=3, d_out=1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.5, 1.5, size=(n, d))
    xt = np.c_[x, np.ones(n)]  # bias coordinate last (docs/theory/conventions.md)
    y = rng.normal(size=(n, d_out))
    return jnp.asarray(xt), jnp.asarray(y)


def _params(widths, d_in, d_out, seed=1):
    rng = np.random.default_rng(seed)
    sizes = [d_in, *widths, d_out]
    return tuple(
        jnp.asarray(rng.normal(size=(sizes[i + 1], sizes[i]))) for i in range(len(widths) + 1)
    )


# Leading monomials written by hand from docs/theory/multiplicity.md#multiplicity: (activation, c_p,
# p).
MONOMIALS = {
    "tanh(x)": (1.0, 1),
    "x*tanh(x)": (1.0, 2),
    "x**2*tanh(x)": (1.0, 3),
    "x - sin(x)": (1 / 6, 3),
    "gelu": (0.5, 1),
    "silu": (0.5, 1),
}


def _hand_energy(acts):
    """E(θ) = ⟨yᵀ f_q⟩ with σ_l replaced by c s^p, written independently of effdyn."""
    mono = [MONOMIALS[a] for a in acts]

    def energy(params, xt, y):
        a = xt
        for (c, p), w in zip(mono, params[:-1], strict=True):
            a = c * (a @ w.T) ** p
        return jnp.mean(jnp.sum(y * (a @ params[-1].T), axis=1))

    return energy


@pytest.mark.parametrize(
    ("acts", "d_out"),
    [
        (["tanh(x)"], 1),
        (["x*tanh(x)"], 1),
        (["x**2*tanh(x)"], 2),
        (["tanh(x)", "tanh(x)"], 1),
        (["x*tanh(x)", "tanh(x)"], 1),
        (["tanh(x)", "x*tanh(x)"], 3),
        (["x - sin(x)", "gelu", "silu"], 1),
    ],
)
def test_field_equals_autodiff_of_leading_energy(x64, acts, d_out):
    xt, y = _data(d_out=d_out)
    field = jax_field(derive(acts))
    grad = jax.jit(jax.grad(_hand_energy(acts)))
    for seed in range(3):
        params = _params([5] * len(acts), xt.shape[1], d_out, seed=seed)
        got, want = field(0.0, params, (xt, y)), grad(params, xt, y)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12 * float(jnp.max(jnp.abs(w))))


def _real_loss(sigma):
    def loss(params, xt, y):
        a = xt
        for w in params[:-1]:
            a = sigma(a @ w.T)
        return 0.5 * jnp.mean(jnp.sum((a @ params[-1].T - y) ** 2, axis=1))

    return loss


# (activation text, real σ in JAX, depth, order of the relative gap, reason)
APPROACH = [
    ("tanh(x)", jnp.tanh, 2, 2, "tanh = s − s³/3: gap 2 on h₁ = O(ε); residual O(ε^q), q = 2"),
    ("x*tanh(x)", lambda s: s * jnp.tanh(s), 2, 2, "s² − s⁴/3: gap 2 on h₁"),
    ("tanh(x)", jnp.tanh, 3, 2, "gap 2 on h₁ = O(ε) dominates gap 2 on h₂ = O(ε²)"),
    ("tanh(x) + x**2/2", lambda s: jnp.tanh(s) + s**2 / 2, 2, 1, "an s² term: gap 1"),
    ("relu", jax.nn.relu, 3, 3, "homogeneous: only the residual f = O(ε³) is neglected"),
]


@pytest.mark.parametrize(("text", "sigma", "depth", "order", "why"), APPROACH)
def test_real_gradient_approaches_field_as_eps_to_0(x64, text, sigma, depth, order, why):
    """|−∇R(εθ̄) − ∇E(εθ̄)| / |∇E(εθ̄)| = O(ε^order): the fitted slope must match."""
    xt, y = _data()
    base = _params([6] * (depth - 1), xt.shape[1], 1, seed=3)
    deriv = derive(text, depth)
    field = jax_field(deriv)
    neg_grad = jax.jit(lambda p: jax.tree.map(jnp.negative, jax.grad(_real_loss(sigma))(p, xt, y)))
    eps = np.array([3e-2, 1e-2, 3e-3, 1e-3])
    gaps = []
    for e in eps:
        params = tuple(e * w for w in base)
        real = jnp.concatenate([g.ravel() for g in neg_grad(params)])
        eff = jnp.concatenate([g.ravel() for g in field(0.0, params, (xt, y))])
        gaps.append(float(jnp.linalg.norm(real - eff) / jnp.linalg.norm(eff)))
    slope = np.polyfit(np.log(eps), np.log(gaps), 1)[0]
    assert gaps[-1] < gaps[0]
    assert slope == pytest.approx(order, abs=0.15), why
    assert deriv.correction_order == order


def _field_at_random_point(acts, d_out=1, seed=0):
    xt, y = _data(d_out=d_out, seed=seed)
    params = _params([4] * len(acts), xt.shape[1], d_out, seed=seed + 10)
    return params, leading_order(derive(acts))(0.0, params, (xt, y))


@pytest.mark.parametrize(
    ("acts", "d_out"), [(["tanh(x)"] * 2, 1), (["tanh(x)"] * 3, 2), (["gelu", "tanh(x)"], 1)]
)
def test_balancedness_is_conserved_multiplicity_one(x64, acts, d_out):
    """d/dt (W_{l+1}ᵀW_{l+1} − W_l W_lᵀ) = 0 along the effective flow (all p = 1)."""
    params, vel = _field_at_random_point(acts, d_out)
    for l in range(len(params) - 1):
        w, v, wn, vn = params[l], vel[l], params[l + 1], vel[l + 1]
        rate = vn.T @ wn + wn.T @ vn - v @ w.T - w @ v.T
        scale = float(jnp.max(jnp.abs(vn.T @ wn)) + jnp.max(jnp.abs(v @ w.T)))
        assert float(jnp.max(jnp.abs(rate))) <= 1e-12 * scale


@pytest.mark.parametrize(
    "acts",
    [
        ["x*tanh(x)"],
        ["x**2*tanh(x)"],
        ["x - sin(x)"],
        ["x*tanh(x)", "tanh(x)"],
        ["tanh(x)", "x**2*tanh(x)"],
        ["relu", "relu"],
    ],
)
def test_per_neuron_law_p_a2_minus_w2_is_conserved(x64, acts):
    """Neuron k of hidden layer l: p_l |W_{l+1}[:,k]|² − |W_l[k,:]|² is constant
    (rescaling symmetry of a degree-p_l template; depth 2: p a_k² − |w_k|²)."""
    params, vel = _field_at_random_point(acts)
    degrees = [d.degree for d in derive(acts).activations]
    for l, p in enumerate(degrees):
        w, v, wn, vn = params[l], vel[l], params[l + 1], vel[l + 1]
        rate = 2 * p * jnp.sum(wn * vn, axis=0) - 2 * jnp.sum(w * v, axis=1)
        scale = float(p * jnp.max(jnp.abs(wn * vn)) + jnp.max(jnp.abs(w * v)))
        assert float(jnp.max(jnp.abs(rate))) <= 1e-12 * scale * w.shape[1]
