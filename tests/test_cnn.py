"""Two-layer CNN: kernel condensation (Zhou et al. 2023, arXiv 2305.09947;
docs/theory/cnn.md#effective-dynamics).

Every quantity is checked against an independent computation: the patch correlation Z and
the network against ``jax.lax.conv_general_dilated`` (a cross-correlation, like im2col),
the effective field against ``jax.grad`` of a leading-order energy written with that
convolution, the closed-form linear solution against ``scipy.linalg.expm``, ``u₁`` against
numpy's SVD, ``t_escape`` against a root of the leading-order loss found with scipy. The
thresholds of the theory-vs-training test are the issue's (median |cos| ≥ 0.95, escape
ratio in [0.9, 1.1]); the misalignment-rate study over six ε is ``slow``.
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from conftest import run_cli
from scipy.optimize import brentq

from effdyn.analysis.condensation import escape_time
from effdyn.data.datasets import load_dataset
from effdyn.dynamics.cnn import (
    cnn_effective_model,
    kernel_direction,
    kernel_misalignment,
    linear_solution,
    patch_correlation,
)
from effdyn.dynamics.model import flatten
from effdyn.dynamics.predict import predict
from effdyn.errors import EffdynError
from effdyn.problem import initial_params, problem_from_dict
from effdyn.symbolic.activation import analyze_activation
from effdyn.training import loss_function, network, network_inputs, train

KEYS = {"kind", "t_star", "growth_rate", "t_escape", "directions", "n_orientations", "result"}


def cnn(x, y, *, channels=4, kernel=3, stride=1, act="tanh(x)", eps=1e-3, lr=0.01, bias=True):
    return problem_from_dict(
        {
            "model": {
                "kind": "cnn",
                "channels": channels,
                "kernel": kernel,
                "stride": stride,
                "activation": act,
                "bias": bias,
            },
            "data": {"x": x, "y": y},
            "init": {"scale": eps, "seed": 0},
            "train": {"lr": lr, "steps": 10},
        }
    )


def conv(x, w1, kernel, stride, bias):
    """Pre-activations (n, channels, Ho, Wo) by XLA's convolution — independent of im2col."""
    x = jnp.asarray(x)
    x = x[:, None] if x.ndim == 3 else x
    c_in = x.shape[1]
    size = c_in * kernel * kernel
    kernels = jnp.asarray(w1[:, :size]).reshape(-1, c_in, kernel, kernel)
    h = jax.lax.conv_general_dilated(x, kernels, (stride, stride), "VALID")
    return h + (w1[:, size][None, :, None, None] if bias else 0.0)


@pytest.fixture(scope="module")
def color_images():
    """(n, C, H, W) = (7, 2, 6, 5): two input channels, a non-square image, kernel 3."""
    rng = np.random.default_rng(1)
    return rng.standard_normal((7, 2, 6, 5)), rng.standard_normal(7)


# ---------------------------------------------------------------------------------------------
# Data: Z, u₁


@pytest.mark.parametrize("stride, bias", [(1, True), (2, False)])
def test_patch_correlation_is_the_convolution_of_the_mean_weighted_image(
    color_images, stride, bias
):
    """Z[(c,a,b), j] = ⟨y x[c, r_j + a, q_j + b]⟩: convolve ⟨y x⟩ with the unit kernels."""
    x, y = color_images
    p = cnn(x, y, stride=stride, bias=bias)
    z = patch_correlation(p.patches(), p.data.y)
    mean_image = np.mean(y[:, None, None, None] * x, axis=0)[None]  # (1, C, H, W)
    d = 2 * 3 * 3
    units = np.eye(d + 1) if bias else np.eye(d)  # kernel e_m (the bias row: a zero kernel)
    expected = np.array(conv(mean_image, units, 3, stride, bias=False))[0]
    expected = expected.reshape(len(units), -1).copy()
    if bias:  # the bias unit sees a constant 1 at every position: row = ⟨y⟩
        expected[-1] = np.mean(y)
    assert z.shape == (p.input_dim, p.n_positions)
    np.testing.assert_allclose(z, expected, rtol=1e-12, atol=1e-14)


def test_u1_is_the_top_singular_vector_of_z():
    x, y = load_dataset("digits-0")
    p = cnn(x[:300], y[:300])
    z = patch_correlation(p.patches(), p.data.y)
    u1, v1, s = kernel_direction(z)
    u, s_np, vt = np.linalg.svd(z)
    np.testing.assert_allclose(s, s_np, rtol=1e-12)
    assert abs(u1 @ u[:, 0]) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(z @ z.T @ u1, s[0] ** 2 * u1, atol=1e-10)
    assert u1 @ z @ v1 == pytest.approx(s[0], rel=1e-12)  # sign convention: u₁ᵀZv₁ = s₁
    assert np.linalg.norm(v1) == pytest.approx(1.0, rel=1e-12)


def test_digit_datasets():
    x, y = load_dataset("digits-0")
    x_all, labels = load_dataset("digits")
    np.testing.assert_array_equal(x, x_all)
    assert set(np.unique(y)) == {-1.0, 1.0} and int(np.sum(y > 0)) == 178  # 178 zeros
    xs, ys = load_dataset("synthetic-stripes", seed=3)
    assert xs.shape == (200, 8, 8) and ys.shape == (200, 1)
    np.testing.assert_array_equal(xs, load_dataset("synthetic-stripes", seed=3)[0])
    assert not np.array_equal(xs, load_dataset("synthetic-stripes", seed=4)[0])
    # the planted direction: for 3×3 kernels u₁ is the stripe motif ±(−1)^column
    p = cnn(xs, ys, bias=False)
    u1, _, s = kernel_direction(patch_correlation(p.patches(), p.data.y))
    motif = np.tile([1.0, -1.0, 1.0], 3) / 3.0
    assert abs(u1 @ motif) > 0.95 and s[1] / s[0] < 0.35


# ---------------------------------------------------------------------------------------------
# The network and the effective field


@pytest.mark.parametrize("stride", [1, 2])
def test_network_is_the_convolution(color_images, stride):
    x, y = color_images
    p = cnn(x, y, channels=3, stride=stride, eps=0.3)
    w1, w2 = initial_params(p)
    f = network(p)((w1, w2), network_inputs(p))
    h = jnp.tanh(conv(x, w1, 3, stride, bias=True))  # (n, channels, Ho, Wo)
    expected = jnp.einsum("ibj,bj->i", h.reshape(len(x), 3, -1), w2)[:, None]
    np.testing.assert_allclose(f, expected, rtol=1e-12)
    with pytest.raises(EffdynError, match="two-layer CNN"):
        network(["tanh", "tanh"])((w1, w2, w2), network_inputs(p))


def _energy_by_conv(act, c, x, y, kernel, stride, shapes):
    """E(θ) = ⟨y Σ_{β,j} W2[β,j] φ(h_βj)⟩ with h from the convolution, φ(s) = c s^p."""
    p_ = analyze_activation(act).degree

    def energy(flat):
        (ch, d), (_, j) = shapes
        w1, w2 = flat[: ch * d].reshape(ch, d), flat[ch * d :].reshape(ch, j)
        h = conv(x, w1, kernel, stride, bias=True).reshape(len(x), ch, -1)
        return jnp.mean(y * jnp.einsum("ibj,bj->i", c * h**p_, w2))

    return energy


@pytest.mark.parametrize("act, c", [("tanh(x)", 1.0), ("2*tanh(x)", 2.0), ("x*tanh(x)", 1.0)])
def test_effective_field_is_the_gradient_of_the_leading_order_energy(color_images, act, c):
    x, y = color_images
    p = cnn(x, y, channels=3, act=act, eps=0.5)
    theta = flatten(initial_params(p))
    model = cnn_effective_model(analyze_activation(act), p.patches(), p.data.y, 3)
    shapes = p.layer_shapes()
    energy = _energy_by_conv(act, c, x, y, 3, 1, shapes)
    np.testing.assert_allclose(model.field(theta), jax.grad(energy)(theta), rtol=1e-10)
    assert float(model.energy(theta)) == pytest.approx(float(energy(theta)), rel=1e-10)
    if act != "x*tanh(x)":  # p = 1: the field is W1' = c W2 Zᵀ, W2' = c W1 Z
        w1, w2 = initial_params(p)
        z = patch_correlation(p.patches(), p.data.y)
        np.testing.assert_allclose(model.field(theta), flatten((c * w2 @ z.T, c * w1 @ z)))


def test_effective_field_is_the_limit_of_the_real_gradient(color_images):
    """−∇R(εθ̄) = ε F(θ̄) (1 + O(ε²)) for tanh: the relative gap falls 100× per decade of ε."""
    x, y = color_images
    p = cnn(x, y, channels=3, eps=1.0)
    theta_bar = initial_params(p)
    model = cnn_effective_model(analyze_activation("tanh"), p.patches(), p.data.y, 3)
    grad = jax.grad(loss_function(network(p)))
    gaps = []
    for eps in (1e-2, 1e-3):
        real = -flatten(grad(tuple(eps * w for w in theta_bar), network_inputs(p), p.data.y))
        field = eps * model.field(flatten(theta_bar))
        gaps.append(float(jnp.linalg.norm(real - field) / jnp.linalg.norm(field)))
    assert gaps[1] < 1e-4
    assert math.log10(gaps[0] / gaps[1]) == pytest.approx(2.0, abs=0.15)


def test_linear_solution_is_the_matrix_exponential(color_images):
    """(vec W1, vec W2)(t) = expm(t·A) (vec W1, vec W2)(0) with A the linear field's matrix;
    |W_β|² − |a_β|² is conserved."""
    x, y = color_images
    p = cnn(x, y, channels=2, eps=0.1)
    w1, w2 = initial_params(p)
    z = patch_correlation(p.patches(), p.data.y)
    c, t = -0.7, 1.3
    d, j = z.shape
    per_channel = np.block([[np.zeros((d, d)), c * z], [c * z.T, np.zeros((j, j))]])
    expected = np.concatenate([w1, w2], axis=1) @ scipy.linalg.expm(t * per_channel).T
    got = linear_solution(z, c, w1, w2, t)
    np.testing.assert_allclose(np.concatenate(got, axis=1), expected, rtol=1e-10, atol=1e-14)
    balance = np.sum(got[0] ** 2, axis=1) - np.sum(got[1] ** 2, axis=1)
    np.testing.assert_allclose(balance, np.sum(w1**2, axis=1) - np.sum(w2**2, axis=1))


def test_kernel_misalignment_is_the_sine_of_the_angle():
    u = np.array([3.0, 4.0]) / 5.0
    angles = np.array([0.0, 1e-12, 0.3, np.pi / 2, np.pi - 0.2])
    rows = np.stack([np.cos(angles) * 2, np.sin(angles) * 2], axis=1) @ np.array([[3, 4], [-4, 3]])
    np.testing.assert_allclose(
        kernel_misalignment(rows / 5.0, u), np.abs(np.sin(angles)), rtol=1e-9, atol=1e-15
    )


# ---------------------------------------------------------------------------------------------
# effdyn predict on a CNN


@pytest.fixture(scope="module")
def digits_small():
    """Digit 0 against the rest, first 500 images, 16 kernels 3×3, tanh, ε = 1e-5."""
    x, y = load_dataset("digits-0")
    p = cnn(x[:500], y[:500], channels=16, eps=1e-5, lr=0.005)
    return p, predict(p)


def test_predict_cnn_keys_and_closed_forms(digits_small):
    p, r = digits_small
    assert KEYS <= set(r)
    assert r["kind"] == "exponential" and r["result"] == "escaped" and r["t_star"] is None
    z = patch_correlation(p.patches(), p.data.y)
    s = np.linalg.svd(z, compute_uv=False)
    assert r["growth_rate"] == pytest.approx(s[0], rel=1e-12)  # |c₁| s₁ with c₁ = 1
    assert r["growth_rate_solved"] == pytest.approx(s[0], rel=1e-8)
    assert r["gap"] == pytest.approx(s[0] / s[1], rel=1e-12)
    assert r["misalignment_exponent"] == pytest.approx(1 - s[1] / s[0], rel=1e-12)
    u1 = np.array(r["u1"])
    assert abs(u1 @ np.linalg.svd(z)[0][:, 0]) == pytest.approx(1.0, abs=1e-12)
    directions = np.array(r["directions"]["W1"])
    np.testing.assert_allclose(directions, [u1, -u1])
    assert r["n_orientations"] == 2

    # t_escape: the first root of R_q(t) = 0.9 R_q(0) along the exact linear solution.
    w1, w2 = initial_params(p)
    flat = p.patches().reshape(p.n, -1)
    y = p.data.y[:, 0]

    def loss(t):  # R_q along the exact solution: ½⟨(c⟨P_i, W2ᵀW1⟩_F − y_i)²⟩
        a, b = linear_solution(z, 1.0, w1, w2, t)
        return 0.5 * np.mean((flat @ (b.T @ a).ravel() - y) ** 2)

    def drop(t):
        return loss(t) - 0.9 * loss(0.0)

    grid = np.linspace(0.0, 3.0, 3001)
    first = next(t for t in grid if drop(t) < 0)
    t_root = brentq(drop, first - 1e-3, first, xtol=1e-14)
    assert r["t_escape"] == pytest.approx(t_root, rel=1e-8)
    a, _ = linear_solution(z, 1.0, w1, w2, t_root)
    assert r["misalignment"] == pytest.approx(np.median(kernel_misalignment(a, u1)), rel=1e-6)
    # the textbook log(1/ε)/s₁ ignores prefactors and lands far from it
    assert r["t_escape_textbook"] / r["t_escape"] > 1.3
    # each kernel's predicted orientation: sign(u₁·W_β(0) + v₁·a_β(0))
    v1 = np.array(r["v1"])
    np.testing.assert_array_equal(r["orientations"], np.sign(w1 @ u1 + w2 @ v1))


def test_predict_zero_target_is_a_result_not_a_crash(digits_small):
    """y = 0: Z = 0, nothing grows — a result code and a message, null rates."""
    p, _ = digits_small
    r = predict(p.with_(data={"x": p.data.x, "y": np.zeros(p.n)}))
    assert r["result"] == "no_blowup" and "z = 0" in r["message"]
    assert r["t_escape"] is None and r["gap"] is None and r["misalignment_exponent"] is None


def test_predict_is_deterministic(digits_small):
    p, r = digits_small
    assert json.dumps(predict(p), sort_keys=True) == json.dumps(r, sort_keys=True)


def test_compare_gd_kernels_condense_on_u1_at_the_predicted_escape(digits_small, tmp_path, capsys):
    """The card's criteria on real GD, through ``effdyn compare``: median |cos(W_β, ±u₁)| ≥ 0.95
    at the measured escape, and measured escape / predicted t_escape in [0.9, 1.1]
    (measured 1.03: GD at lr·s₁ = 0.04 and the O(s²) tanh correction shift it by a few %).
    Each kernel takes its predicted orientation, and its misalignment is the exact linear
    solution's at the same t within 30%: GD's step factor 1 + lr·s_k instead of e^{lr·s_k}
    raises the weight of u₂ against u₁ by e^{(s₁² − s₂²)·lr·t/2} ≈ 1.15 here, and the loss
    residual that the effective dynamics drop adds a little more by the escape (1.19)."""
    from effdyn.compare import compare

    p, r = digits_small
    steps = math.ceil(1.15 * r["t_escape"] / p.train.lr)
    result = compare(p.with_(train={"steps": steps}), tmp_path)
    assert 0.9 <= result["ratios"]["escape_over_predicted_escape"] <= 1.1
    kernels = result["measured"]["kernels"]
    assert kernels["at"] == "escape" and kernels["n"] == 16
    assert kernels["median_abs_cos"] >= 0.95
    assert kernels["orientations_match"] == 1.0
    assert kernels["misalignment"] == pytest.approx(kernels["misalignment_effective"], rel=0.3)
    assert result["ratios"]["misalignment_over_predicted"] == pytest.approx(1.0, abs=0.3)
    stage = result["measured"]["initial_stage"]["kernels"]
    assert stage["misalignment"] == pytest.approx(stage["misalignment_effective"], rel=0.3)
    assert "kernels.png" in result["figures"] and (tmp_path / "kernels.png").stat().st_size
    assert "CNN 16 kernels 3×3" in result["setting"]
    # the terminal summary of `effdyn compare` carries the kernel lines too
    from effdyn.cli import _print_comparison

    _print_comparison(result)
    printed = capsys.readouterr().out
    assert "kernels at escape" in printed and "16 kernels" in printed
    assert "kernels at the end of the initial stage" in printed


def test_predicted_misalignment_rate_on_the_effective_solution():
    """At ε → 0 the misalignment of the exact linear solution at t_escape falls like
    ε^{1 − s₂/s₁} (docs/theory/cnn.md#misalignment): the local slope between ε = 1e-12 and 1e-16
    (where the
    s₃ mode, ε^{1 − s₃/s₁}, is negligible) is within 3% of 1 − s₂/s₁."""
    x, y = load_dataset("digits-0")
    base = cnn(x[:500], y[:500], channels=16, eps=1.0)
    z = patch_correlation(base.patches(), base.data.y)
    u1, _, s = kernel_direction(z)
    w1, w2 = initial_params(base)
    flat, yy = base.patches().reshape(base.n, -1), base.data.y[:, 0]

    def misalignment(eps):
        def drop(t):
            a, b = linear_solution(z, 1.0, eps * w1, eps * w2, t)
            return np.mean((flat @ (b.T @ a).ravel() - yy) ** 2) - 0.9 * np.mean(yy**2)

        guess = math.log(1 / eps) / s[0]
        grid = np.linspace(0.0, 2 * guess, 2001)
        first = next(i for i, t in enumerate(grid) if drop(t) < 0)
        t_esc = brentq(drop, grid[first - 1], grid[first], xtol=1e-14)
        a, _ = linear_solution(z, 1.0, eps * w1, eps * w2, t_esc)
        return np.median(kernel_misalignment(a, u1))

    slope = math.log(misalignment(1e-12) / misalignment(1e-16)) / math.log(1e4)
    assert slope == pytest.approx(1 - s[1] / s[0], rel=0.03)


@pytest.mark.slow
def test_predict_cnn_multiplicity_two_blows_up_per_channel():
    """p = 2: channels decouple; the network's T* is the first channel's. (Slow only for its
    compile time, ~15 s: the field of the default suite's x·tanh x check is the same.)"""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 4, 4)), rng.standard_normal(8)
    r = predict(cnn(x, y, channels=2, act="x*tanh(x)", eps=0.05))
    assert r["kind"] == "blowup" and r["result"] == "blowup"
    per = r["per_neuron"]
    assert r["t_star"] == pytest.approx(per["t_star_min"], rel=1e-6)
    assert per["t_star"][per["first"]] == per["t_star_min"]
    assert 0 < r["t_escape"] < r["t_star"] and r["misalignment"] is None
    assert len(r["directions"]["W1"]) == r["n_orientations"] >= 1


# ---------------------------------------------------------------------------------------------
# compare, figures, command line


def test_plot_kernels_checks_shapes():
    from effdyn.plotting import plot_kernels, save_figure

    w1 = np.random.default_rng(0).standard_normal((5, 2 * 2 * 2 + 1))
    ax = plot_kernels(w1, w1[0], (2, 2, 2), title="two input channels")
    assert ax.get_title().startswith("predicted u₁")
    save_figure(ax, "/dev/null")
    with pytest.raises(ValueError, match="columns"):
        plot_kernels(w1, w1[0], (1, 2, 2))


def test_cli_derive_on_the_example():
    code, out, err = run_cli("derive", "examples/cnn_digits.toml", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["degree"] == 2 and d["field_degree"] == 1 and not d["finite_time_blowup"]
    assert set(d["equations"]) == {"W1", "W2", "Z"} and "Z" in d["equations_text"]["W1"]


def _write(tmp_path, model, data, name="bad.toml"):
    path = tmp_path / name
    path.write_text(f"[model]\n{model}\n[data]\n{data}\n")
    return path


def test_bad_cnn_inputs_exit_2_with_one_line(tmp_path):
    """Problem-file mistakes fail at load: one line on stderr, exit 2, an ``error`` key."""
    good_model = 'kind = "cnn"\nchannels = 2\nkernel = 3\nactivation = "tanh"'
    img = [[0.0] * 4] * 4
    small = [[0.0] * 2] * 2
    two = f"x = [{img}, {img}]\ny = [1.0, -1.0]"
    cases = {
        "kernel larger than the image": (
            good_model.replace("kernel = 3", "kernel = 5"),
            two,
            "kernel 5 is larger than the 4x4 images",
        ),
        "channels < 1": (good_model.replace("channels = 2", "channels = 0"), two, "channels"),
        "images of mixed sizes": (
            good_model,
            f"x = [{img}, {small}]\ny = [1.0, -1.0]",
            "images of mixed sizes (4x4, 2x2)",
        ),
    }
    for i, (what, (model, data, words)) in enumerate(cases.items()):
        path = _write(tmp_path, model, data, f"bad{i}.toml")
        # every command loads the problem the same way; predict (it imports JAX) once
        for command in ("derive", "predict") if i == 0 else ("derive",):
            code, out, err = run_cli(command, str(path), "--json")
            assert code == 2, (what, command, err)
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, what
            assert words in json.loads(out)["error"], (what, out)


def test_non_smooth_activation_is_refused_by_predict(color_images):
    x, y = color_images
    with pytest.raises(EffdynError, match="needs an activation that is smooth") as info:
        predict(cnn(x, y, act="relu"))
    assert "\n" not in str(info.value)
    assert train(cnn(x, y, act="relu"), steps=3).result == "completed"  # training works


# ---------------------------------------------------------------------------------------------
# Slow: the misalignment rate of real GD over six ε


@pytest.mark.slow
def test_gd_misalignment_shrinks_at_the_predicted_rate():
    """All 1797 digits (0 against the rest), 16 kernels 3×3, tanh, GD lr 0.002, ε = 1e-4 …
    1e-8: the slope of log(median misalignment) against log ε, at the end of the initial
    stage (compare's rule: a 1% loss drop here), is within 25% of 1 − s₂/s₁ (the exact
    linear solution gives 1.09×: the s₃ mode still adds at these ε, see the fast test
    above); every ε meets the issue's alignment and escape criteria at the 10% drop. (At
    the 10% drop itself GD levels off near 2e-4 for ε ≤ 1e-7: the loss residual, which the
    effective dynamics drop, turns the kernels by an ε-independent amount.)"""
    from effdyn.compare import initial_stage_end

    x, y = load_dataset("digits-0")
    eps_list = [1e-4, 1e-5, 1e-6, 1e-7, 1e-8]
    mis, exponent = [], None
    for eps in eps_list:
        p = cnn(x, y, channels=16, eps=eps, lr=0.002)
        r = predict(p)
        exponent = r["misalignment_exponent"]
        run = train(p, steps=math.ceil(1.15 * r["t_escape"] / 0.002), n_snapshots=2, chunk=200)
        t_gd = escape_time(run.t, run.loss, 0.1)
        assert 0.9 <= t_gd / r["t_escape"] <= 1.1
        u1 = np.array(r["u1"])
        w1 = train(p, steps=round(t_gd / 0.002), n_snapshots=2, chunk=200).params[0]
        assert np.median(np.sqrt(1 - kernel_misalignment(w1, u1) ** 2)) >= 0.95
        stage = train(p, steps=initial_stage_end(run), n_snapshots=2, chunk=200).params[0]
        mis.append(np.median(kernel_misalignment(stage, u1)))
    slope = np.polyfit(np.log(eps_list), np.log(mis), 1)[0]
    assert slope == pytest.approx(exponent, rel=0.25)
