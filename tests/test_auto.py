"""The automatic engine (docs/theory/automatic.md) against the symbolic one, the real loss
and closed forms of docs/theory/losses.md and docs/theory/automatic.md#attention."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from effdyn._jax import float64
from effdyn.dynamics.auto import expand
from effdyn.dynamics.blowup import solve_blowup
from effdyn.dynamics.model import effective_model
from effdyn.errors import EffdynError
from effdyn.symbolic.derivation import derive
from effdyn.training.network import network


def _data(n=30, d=3, seed=1, bias=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    xt = np.c_[x, np.ones(n)] if bias else x
    return xt, rng.normal(size=(n, 1))


def _zeros(d_in, width, depth, d_out=1):
    sizes = [d_in, *([width] * (depth - 1)), d_out]
    return tuple(np.zeros((sizes[i + 1], sizes[i])) for i in range(depth))


@pytest.mark.parametrize(
    ("acts", "bias"),
    [
        (["tanh"], True),
        pytest.param(["tanh", "tanh"], False, marks=pytest.mark.slow),
        # q = 10, an activation outside the docs' table
        pytest.param(["xtanh", "sin(x) - x"], True, marks=pytest.mark.slow),
        pytest.param(["tanh", "x*sin(x)", "tanh"], True, marks=pytest.mark.slow),  # depth 4
        # q = 13, the deepest order the docs name (x²·tanh x at depth 3)
        pytest.param(["x**2*tanh(x)", "x**2*tanh(x)"], False, marks=pytest.mark.slow),
    ],
)
def test_matches_the_symbolic_engine(acts, bias):
    """q, E and ∇E at random points (rtol 1e-10) and T* (1e-8) equal the symbolic path's."""
    xt, y = _data(bias=bias)
    depth = len(acts) + 1
    leaves = _zeros(xt.shape[1], 5, depth)
    ex = expand(network(acts), xt, y, leaves)
    deriv = derive(acts, depth)
    sym = effective_model(deriv, xt, y, leaves)
    assert ex.degree == deriv.degree
    assert ex.field_degree == deriv.field_degree
    assert ex.drift == () and ex.frozen == ()
    rng = np.random.default_rng(7)
    size = sum(w.size for w in leaves)
    with float64():
        for _ in range(3):
            p = jnp.asarray(rng.normal(size=size))
            e_sym = float(sym.energy(p))
            assert ex.energy(p) == pytest.approx(e_sym, rel=1e-10)
            f_sym = np.asarray(sym.field(p))
            assert np.linalg.norm(ex.field(p) - f_sym) <= 1e-10 * np.linalg.norm(f_sym)
        if deriv.field_degree >= 2:
            theta0 = jnp.asarray(0.01 * rng.normal(size=size))
            t_auto = float(solve_blowup(ex.model, theta0).t_star)
            t_sym = float(solve_blowup(sym, theta0).t_star)
            assert t_auto == pytest.approx(t_sym, rel=1e-8)


@pytest.mark.parametrize("act", ["tanh", "x*tanh(x)"])
def test_matches_the_symbolic_cnn(act):
    """The two-layer CNN (patches input): q, E and ∇E equal the symbolic CNN model's."""
    from effdyn.dynamics.cnn import cnn_effective_model
    from effdyn.symbolic.activation import analyze_activation

    rng = np.random.default_rng(2)
    patches, y = rng.normal(size=(12, 4, 5)), rng.normal(size=(12, 1))
    leaves = (np.zeros((3, 5)), np.zeros((3, 4)))
    ex = expand(network([act]), patches, y, leaves)
    activation = analyze_activation(act)
    sym = cnn_effective_model(activation, patches, y, 3)
    assert ex.degree == activation.degree + 1 and ex.field_degree == sym.field_degree
    with float64():
        for _ in range(3):
            p = jnp.asarray(rng.normal(size=27))
            assert ex.energy(p) == pytest.approx(float(sym.energy(p)), rel=1e-10)
            f_sym = np.asarray(sym.field(p))
            assert np.linalg.norm(ex.field(p) - f_sym) <= 1e-10 * np.linalg.norm(f_sym)


def test_drift_of_an_offset_activation_is_the_last_layer():
    """σ(0) ≠ 0 in the last hidden layer: both engines report the drift W_L, and the rest
    has the symbolic (centred) degree."""
    xt, y = _data()
    act = "tanh(x) + 1/2"
    ex = expand(network([act]), xt, y, _zeros(4, 5, 2))
    deriv = derive([act], 2)
    assert [t.layer for t in deriv.drift] and ex.drift == ("W2",)
    assert ex.degree == deriv.degree == 2


@pytest.mark.parametrize("loss", ["mse", "cross_entropy", "logistic", "exponential"])
def test_energy_matches_the_real_loss(loss):
    """ε^q (−E(θ̄)) against the real R(εθ̄) − R₀: ratio → 1, the error shrinking with ε."""
    rng = np.random.default_rng(3)
    xt, _ = _data(n=40)
    if loss == "cross_entropy":
        y = rng.integers(0, 3, size=(40, 1)).astype(float)
        k = 3
    elif loss == "mse":
        y, k = rng.normal(size=(40, 1)), 1
    else:
        y, k = np.sign(rng.normal(size=(40, 1))), 1
    f = network(["tanh", "tanh"])
    leaves = (np.zeros((5, 4)), np.zeros((5, 5)), np.zeros((k, 5)))
    ex = expand(f, xt, y, leaves, loss=loss)
    assert ex.degree == 3
    bar = [rng.normal(size=w.shape) / np.sqrt(w.shape[1]) for w in leaves]
    flat = np.concatenate([w.ravel() for w in bar])

    def real_loss(params):
        out = np.asarray(f(tuple(params), xt))
        if loss == "mse":
            return np.mean(0.5 * np.sum((out - y) ** 2, axis=1))
        if loss == "cross_entropy":
            lse = np.log(np.sum(np.exp(out), axis=1))
            return np.mean(lse - out[np.arange(len(y)), y[:, 0].astype(int)])
        m = (y * out)[:, 0]
        return np.mean(np.log1p(np.exp(-m)) if loss == "logistic" else np.exp(-m))

    r0 = real_loss([np.zeros_like(w) for w in bar])
    errors = []
    for eps in (2e-2, 1e-2):
        change = real_loss([eps * w for w in bar]) - r0
        errors.append(abs(change / (-(eps**3) * ex.energy(flat)) - 1))
    assert errors[1] < 0.05 and errors[1] < errors[0] / 2


def test_cross_entropy_growth_rate_is_the_top_singular_value():
    """Two-layer tanh with K logits: the linear field's top eigenvalue is s₁(Z),
    Z = ⟨(onehot − 1/K) x̃ᵀ⟩ (docs/theory/losses.md#cross-entropy)."""
    rng = np.random.default_rng(4)
    xt, _ = _data(n=50)
    k = 4
    labels = rng.integers(0, k, size=(50, 1)).astype(float)
    leaves = (np.zeros((3, 4)), np.zeros((k, 3)))
    ex = expand(network(["tanh"]), xt, labels, leaves, loss="cross_entropy")
    assert ex.degree == 2 and ex.field_degree == 1
    with float64():
        jac = np.asarray(jax.jacfwd(ex.model.field)(jnp.zeros(3 * 4 + k * 3)))
    onehot = np.eye(k)[labels[:, 0].astype(int)]
    z = (onehot - 1 / k).T @ xt / len(xt)
    s1 = np.linalg.svd(z, compute_uv=False)[0]
    assert np.max(np.linalg.eigvalsh(0.5 * (jac + jac.T))) == pytest.approx(s1, rel=1e-10)


def test_logistic_blowup_time_is_twice_the_exponential_one():
    """E_logistic = E_exponential / 2, so T* doubles (docs/theory/losses.md)."""
    rng = np.random.default_rng(5)
    xt, _ = _data(n=30)
    y = np.sign(rng.normal(size=(30, 1)))
    leaves = _zeros(4, 5, 3)
    f = network(["tanh", "tanh"])
    logistic = expand(f, xt, y, leaves, loss="logistic")
    exponential = expand(f, xt, y, leaves, loss="exponential")
    with float64():
        theta0 = jnp.asarray(0.01 * rng.normal(size=sum(w.size for w in leaves)))
        t_log = float(solve_blowup(logistic.model, theta0).t_star)
        t_exp = float(solve_blowup(exponential.model, theta0).t_star)
    assert t_log == pytest.approx(2 * t_exp, rel=1e-8)


def _attention(leaves, x):
    """Chen & Luo 2025 (arXiv 2510.06954) one-layer attention, tanh read-out."""
    w_q, w_k, w_v, w_1, w_2 = leaves
    d = x.shape[-1]
    logits = jnp.einsum("nsd,de,fe,ntf->nst", x, w_q, w_k, x) / jnp.sqrt(d)
    attn = jnp.einsum("nst,ntd,de->nse", jax.nn.softmax(logits, axis=-1), x, w_v)
    return jnp.tanh(attn.mean(axis=1) @ w_1 @ w_2)


def test_attention_freezes_query_and_key_and_blows_up_at_the_closed_form():
    """q = 3, W_Q and W_K frozen; a balanced rank-one start has T* = 1/(|v| r₀) with
    v = ⟨y · mean token⟩ (docs/theory/automatic.md#attention)."""
    rng = np.random.default_rng(6)
    n, s, d, h = 40, 5, 4, 3
    x = rng.normal(size=(n, s, d))
    y = np.tanh(x.mean(axis=1) @ rng.normal(size=d))[:, None]
    shapes = [(d, d), (d, d), (d, d), (d, h), (h, 1)]
    names = ("W_Q", "W_K", "W_V", "W1", "W2")
    ex = expand(_attention, x, y, tuple(np.zeros(sh) for sh in shapes), names=names)
    assert ex.degree == 3 and ex.field_degree == 2
    assert ex.frozen == ("W_Q", "W_K") and ex.active == ("W_V", "W1", "W2")
    v = (y * x.mean(axis=1)).mean(axis=0)
    beta, gamma = rng.normal(size=d), rng.normal(size=h)
    beta, gamma = beta / np.linalg.norm(beta), gamma / np.linalg.norm(gamma)
    r0 = 1e-2
    start = [
        1e-3 * rng.normal(size=(d, d)),
        1e-3 * rng.normal(size=(d, d)),
        r0 * np.outer(v / np.linalg.norm(v), beta),
        r0 * np.outer(beta, gamma),
        r0 * gamma[:, None],
    ]
    with float64():
        traj = solve_blowup(ex.model, ex.flatten(start))
    assert float(traj.t_star) == pytest.approx(1 / (np.linalg.norm(v) * r0), rel=1e-6)


def test_leaves_entering_at_a_higher_order_are_frozen():
    """f = W2 tanh(W1 x) + (a·x)³ with a cubic leaf ``a``: q = 2 and ``a`` frozen."""
    xt, y = _data(bias=False)

    def f(leaves, x):
        w1, w2, a = leaves
        return jnp.tanh(x @ w1.T) @ w2.T + (x @ a) ** 3

    ex = expand(f, xt, y, (np.zeros((4, 3)), np.zeros((1, 4)), np.zeros((3, 1))))
    assert ex.degree == 2 and ex.active == ("W1", "W2") and ex.frozen == ("W3",)


def test_mixed_exponents_degree_and_field_degree_differ():
    """W1 at ε², W2 at ε in a depth-2 tanh net: q = 3 but E is bilinear (field degree 1);
    an exponent-0 leaf is a constant, neither active nor frozen."""
    xt, y = _data()
    ex = expand(network(["tanh"]), xt, y, _zeros(4, 5, 2), exponents=(2, 1))
    assert (ex.degree, ex.polynomial_degree, ex.field_degree) == (3, 2, 1)
    rng = np.random.default_rng(8)
    leaves = (0.5 * rng.normal(size=(5, 4)), np.zeros((5, 5)), np.zeros((1, 5)))
    held = expand(network(["tanh", "tanh"]), xt, y, leaves, exponents=(0, 1, 1))
    assert held.degree == 2 and held.active == ("W2", "W3") and held.frozen == ()


def test_relu_network_is_detected_homogeneous():
    """Two-layer ReLU: f(cθ) = c² f(θ) is found numerically and f_q = f."""
    xt, y = _data()
    ex = expand(network(["relu"]), xt, y, _zeros(4, 5, 2))
    assert ex.model_homogeneous and ex.degree == 2 and not ex.smooth
    rng = np.random.default_rng(9)
    w1, w2 = rng.normal(size=(5, 4)), rng.normal(size=(1, 5))
    out = np.maximum(xt @ w1.T, 0) @ w2.T
    flat = np.concatenate([w1.ravel(), w2.ravel()])
    assert ex.energy(flat) == pytest.approx(np.mean(y * out), rel=1e-12)


def test_relu_mixed_with_tanh_fails_validation():
    """Taylor mode at a kink of a non-homogeneous model is wrong: refused with the reason."""
    xt, y = _data()
    with pytest.raises(EffdynError, match="validation failed"):
        expand(network(["relu(x) + tanh(x)"]), xt, y, _zeros(4, 5, 2))


def test_nothing_up_to_the_maximum_order_is_an_error():
    xt, y = _data(bias=False)

    def f(leaves, x):
        (w,) = leaves
        return jnp.zeros((x.shape[0], 1)) + 0.0 * jnp.sum(w)

    with pytest.raises(EffdynError, match="up to order 16"):
        expand(f, xt, y, (np.zeros((2, 2)),), max_order=16)
