"""Figures run headless (Agg), label their axes, name the setting and save real PNGs."""

import numpy as np
import pytest

from effdyn import plotting

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SETTING = "x·tanh x, m=20, ε=1e-3, lr=1e-2"


@pytest.fixture
def plane_neurons():
    """20 neurons (w, b) on two lines (four orientations) plus 6 small ones."""
    rng = np.random.default_rng(0)
    dirs = np.array([[np.cos(0.4), np.sin(0.4)], [np.cos(2.0), np.sin(2.0)]])
    signs = np.array([1, -1, 1, -1] * 5)
    big = signs[:, None] * dirs[np.arange(20) % 2] * rng.uniform(1, 3, (20, 1))
    small = 1e-3 * rng.standard_normal((6, 2))
    return np.concatenate([big, small]), dirs


def _check(ax, tmp_path, name):
    assert ax.get_xlabel() and ax.get_ylabel()
    assert SETTING in ax.get_title()
    path = tmp_path / "sub" / f"{name}.png"
    out = plotting.save_figure(ax, path)
    data = path.read_bytes()
    assert out == str(path)
    assert len(data) > 1000 and data[:8] == PNG_SIGNATURE


def test_cosine_heatmap(plane_neurons, tmp_path):
    from effdyn.analysis.condensation import cosine_matrix

    C, _ = cosine_matrix(plane_neurons[0], order="cluster")
    ax = plotting.plot_cosine_heatmap(C, title=SETTING)
    assert ax.get_xlabel() == "neuron index (ordered)"
    assert ax.images[0].get_clim() == (-1.0, 1.0)
    _check(ax, tmp_path, "heatmap")
    with pytest.raises(ValueError, match="square"):
        plotting.plot_cosine_heatmap(np.ones((2, 3)))


def test_angle_norm(plane_neurons, tmp_path):
    W, dirs = plane_neurons
    ax = plotting.plot_angle_norm(W, dirs, title=SETTING, lines=True)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels.count("predicted") == 1 and len(ax.get_lines()) == 4  # ±2 lines
    assert ax.get_yscale() == "log"  # norms span 3 decades
    _check(ax, tmp_path, "angle_norm")


def test_loss(tmp_path):
    t = np.arange(300) * 0.01
    loss = 0.5 - 0.4 / (1 + np.exp(-(t - 1.5) * 6))
    ax = plotting.plot_loss(t, loss, 1.2, 1.3, 1.6, title=SETTING)
    labels = " ".join(line.get_label() for line in ax.get_lines())
    for name in ("measured escape", "predicted t_escape", "predicted T*"):
        assert name in labels
    assert ax.get_yscale() == "log"
    _check(ax, tmp_path, "loss")
    ax = plotting.plot_loss(t, loss - 0.2, title=SETTING)  # crosses 0: linear axis
    assert ax.get_yscale() == "linear" and len(ax.get_lines()) == 1
    plotting.save_figure(ax.figure, tmp_path / "loss_linear.png")


def test_direction_alignment(plane_neurons, tmp_path):
    W, dirs = plane_neurons
    ax = plotting.plot_direction_alignment(W[:20], dirs, title=SETTING)
    assert any("0.99" in line.get_label() for line in ax.get_lines())
    _check(ax, tmp_path, "alignment")


def test_existing_leading_part_still_draws(tmp_path):
    from effdyn import analyze_activation

    ax = plotting.plot_leading_part(analyze_activation("tanh"))
    assert ax.get_xlabel() and ax.get_title()
    plotting.save_figure(ax, tmp_path / "leading.png")
    assert (tmp_path / "leading.png").read_bytes()[:8] == PNG_SIGNATURE
