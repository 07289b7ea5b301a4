"""Condensation measurements (docs/theory/measuring.md#condensation-metrics) on synthetic neurons
whose answer is known by
construction: vectors placed on chosen directions with small seeded noise."""

import numpy as np
import pytest

from effdyn.analysis.condensation import (
    alignment_summary,
    cosine_matrix,
    count_condensation,
    escape_time,
    first_grown,
    grown_mask,
    match_directions,
    neuron_angle_norm,
    neuron_features,
)

NOISE = 1e-4  # per-entry noise on unit directions: 1 − cos ≈ NOISE²·D/2 ≈ 2e-8 within a group
PER_GROUP = 8


def _orthonormal(rng, k, d):
    q, _ = np.linalg.qr(rng.standard_normal((d, k)))
    return q.T  # (k, d) orthonormal rows


@pytest.fixture
def three_lines():
    """3 orthogonal lines in R⁴; line 0 carries both orientations → 3 lines, 4 orientations.

    Returns (vectors, group, lines): rows shuffled, ``group`` ∈ {0: +e0, 1: −e0, 2: +e1,
    3: +e2} the true orientation of each row, ``lines`` the (3, 4) true line directions.
    """
    rng = np.random.default_rng(0)
    lines = _orthonormal(rng, 3, 4)
    centres = np.stack([lines[0], -lines[0], lines[1], lines[2]])
    group = np.repeat(np.arange(4), PER_GROUP)
    norms = rng.uniform(0.5, 2.0, len(group))
    vectors = norms[:, None] * (centres[group] + NOISE * rng.standard_normal((len(group), 4)))
    shuffle = rng.permutation(len(group))
    return vectors[shuffle], group[shuffle], lines


# --- counting ------------------------------------------------------------------------------


def test_counts_lines_and_orientations(three_lines):
    vectors, _, _ = three_lines
    counts = count_condensation(vectors, thresholds=(1e-1, 1e-2, 1e-4))
    for c in counts:  # same answer over three decades: sharp condensation
        assert (c["lines"], c["orientations"]) == (3, 4)
    assert [c["threshold"] for c in counts] == [1e-1, 1e-2, 1e-4]


def test_tiny_threshold_separates_every_neuron(three_lines):
    # The noise puts neurons ~1e-8 apart in 1 − cos: below that nothing merges.
    vectors, _, _ = three_lines
    (c,) = count_condensation(vectors, thresholds=(1e-13,))
    assert c["lines"] == c["orientations"] == len(vectors)


def test_small_neurons_are_left_out(three_lines):
    vectors, _, _ = three_lines
    rng = np.random.default_rng(1)
    small = 1e-3 * rng.standard_normal((10, 4))  # ungrown, random directions
    both = np.concatenate([vectors, small])
    (c,) = count_condensation(both, thresholds=(1e-2,), min_relative_norm=0.1)
    assert (c["lines"], c["orientations"]) == (3, 4)
    (c_all,) = count_condensation(both, thresholds=(1e-2,))
    assert c_all["orientations"] > 4


def test_count_rejects_bad_threshold(three_lines):
    with pytest.raises(ValueError, match="thresholds"):
        count_condensation(three_lines[0], thresholds=(0.0,))
    with pytest.raises(ValueError, match="one row per neuron"):
        count_condensation(np.ones(4))


# --- cosine matrix -------------------------------------------------------------------------


def _contiguous(positions) -> bool:
    positions = np.sort(positions)
    return positions[-1] - positions[0] == len(positions) - 1


def test_cosine_matrix_properties(three_lines):
    vectors, _, _ = three_lines
    for order in (None, "eigen", "cluster"):
        C, perm = cosine_matrix(vectors, order=order)
        assert C.shape == (len(vectors),) * 2
        np.testing.assert_allclose(C, C.T, atol=0)
        np.testing.assert_allclose(np.diag(C), 1.0, atol=1e-12)
        assert np.all(np.abs(C) <= 1.0)
        assert sorted(perm) == list(range(len(vectors)))
        u = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        expected = (u @ u.T)[np.ix_(perm, perm)]
        np.testing.assert_allclose(C, expected, atol=1e-12)
    np.testing.assert_array_equal(cosine_matrix(vectors, order=None)[1], np.arange(len(vectors)))


def test_cluster_order_makes_contiguous_blocks(three_lines):
    vectors, group, _ = three_lines
    C, perm = cosine_matrix(vectors, order="cluster")
    where = np.empty_like(perm)
    where[perm] = np.arange(len(perm))  # position of each original row
    for g in range(4):
        assert _contiguous(where[group == g])
    # ±e0 (groups 0 and 1) sit side by side: one 2·PER_GROUP block for the line
    assert _contiguous(where[group <= 1])
    # the ordered matrix is block-constant: +1 within orientations, −1 across ±e0
    ordered = group[perm]
    same = ordered[:, None] == ordered[None, :]
    np.testing.assert_allclose(C[same], 1.0, atol=1e-6)
    opposite = (ordered[:, None] + ordered[None, :] == 1) & ~same
    np.testing.assert_allclose(C[opposite], -1.0, atol=1e-6)


def test_eigen_order_groups_orientations_in_the_plane():
    # 1-d input with bias: 3 orientations whose projections on the principal direction
    # differ, so sorting by the leading eigenvector separates them.
    rng = np.random.default_rng(2)
    angles = np.array([0.3, 1.6, 2.8])
    group = rng.permutation(np.repeat(np.arange(3), 6))
    theta = angles[group] + 1e-3 * rng.standard_normal(len(group))
    vectors = np.stack([np.cos(theta), np.sin(theta)], axis=1) * rng.uniform(1, 2, (len(group), 1))
    _, perm = cosine_matrix(vectors, order="eigen")
    where = np.empty_like(perm)
    where[perm] = np.arange(len(perm))
    for g in range(3):
        assert _contiguous(where[group == g])


def test_cosine_matrix_zero_row_and_bad_order():
    C, _ = cosine_matrix(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]]), order=None)
    np.testing.assert_array_equal(C[1], 0.0)
    np.testing.assert_array_equal(C[:, 1], 0.0)
    _, perm = cosine_matrix(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]]), order="cluster")
    assert perm[-1] == 1  # zero rows last
    with pytest.raises(ValueError, match="order"):
        cosine_matrix(np.eye(2), order="size")


# --- matching and alignment ---------------------------------------------------------------


def test_matching_recovers_a_known_permutation():
    rng = np.random.default_rng(3)
    predicted = rng.standard_normal((5, 6))
    predicted /= np.linalg.norm(predicted, axis=1, keepdims=True)
    perm = np.array([3, 0, 4, 1, 2])
    signs = np.array([1, -1, -1, 1, 1])
    units = signs[:, None] * predicted[perm] + 1e-3 * rng.standard_normal((5, 6))
    m = match_directions(3.0 * units, predicted)  # scale must not matter
    np.testing.assert_array_equal(m.pairs[:, 0], np.arange(5))
    np.testing.assert_array_equal(m.pairs[:, 1], perm)
    np.testing.assert_array_equal(np.sign(m.cosines), signs)
    assert np.all(np.abs(m.cosines) > 0.999)
    assert m.unmatched_units.size == 0 and m.unmatched_predicted.size == 0


def test_signed_matching_tells_orientations_apart():
    # Predicted orientations ±u of one line (and ±v of another); unsigned matching cannot
    # tell +u from −u, signed matching must pair each learned orientation with its own sign.
    rng = np.random.default_rng(4)
    u, v = _orthonormal(rng, 2, 3)
    predicted = np.stack([u, -u, v, -v])
    units = np.stack([-v, u, v, -u]) + 1e-4 * rng.standard_normal((4, 3))
    m = match_directions(units, predicted, signed=True)
    np.testing.assert_array_equal(m.pairs[:, 1], [3, 0, 2, 1])
    assert np.all(m.cosines > 0.999)
    unsigned = match_directions(units, predicted)
    assert np.all(np.abs(unsigned.cosines) > 0.999)  # some optimal line matching


def test_matching_rectangular():
    e = np.eye(5)
    m = match_directions(e[[4, 1, 2]], e)  # 3 learned, 5 predicted
    np.testing.assert_array_equal(m.pairs, [[0, 4], [1, 1], [2, 2]])
    np.testing.assert_array_equal(m.unmatched_predicted, [0, 3])
    m = match_directions(e, e[[4, 1]])  # 5 learned, 2 predicted
    np.testing.assert_array_equal(m.pairs, [[1, 1], [4, 0]])
    np.testing.assert_array_equal(m.unmatched_units, [0, 2, 3])
    with pytest.raises(ValueError, match="dimension"):
        match_directions(np.eye(3), np.eye(4))


def test_alignment_summary_known_cosines():
    # Predicted e1, e2 in R³; neuron k lies in the (e1, e3) plane at cos α_k from e1, so its
    # nearest predicted |cos| is exactly cos α_k.
    cosines = np.array([1.0, 0.999, 0.995, 0.98, 0.9])
    sines = np.sqrt(1 - cosines**2)
    units = np.stack([cosines, np.zeros(5), sines], axis=1) * np.arange(1, 6)[:, None]
    units[1] *= -1  # sign does not matter
    s = alignment_summary(units, np.array([[1.0, 0, 0], [0, 1.0, 0]]))
    assert s["n"] == 5
    assert s["median_abs_cos"] == pytest.approx(0.995, abs=1e-12)
    assert s["min_abs_cos"] == pytest.approx(0.9, abs=1e-12)
    assert s["fraction_above"] == pytest.approx(3 / 5)
    assert s["above"] == 0.99
    empty = alignment_summary(np.zeros((0, 3)), np.eye(3))
    assert empty["n"] == 0 and np.isnan(empty["median_abs_cos"])


# --- escape and growth ---------------------------------------------------------------------


def test_escape_time_known_crossing():
    lr = 0.05
    k = np.arange(200)
    t = k * lr
    loss = 2.0 * (1.0 - 0.0041 * k)  # loss_k ≤ 0.9·loss_0 ⇔ k ≥ 24.4 → k = 25
    assert escape_time(t, loss) == pytest.approx(25 * lr)
    assert escape_time(t, loss, fraction=0.5) == pytest.approx(122 * lr)  # k ≥ 121.95
    assert escape_time(t, np.full(200, 3.0)) is None
    noisy = loss.copy()
    noisy[3] = np.nan  # a non-finite record is not a drop
    assert escape_time(t, noisy) == pytest.approx(25 * lr)


def test_escape_time_rejects_bad_input():
    with pytest.raises(ValueError, match="fraction"):
        escape_time([0, 1], [1, 0.5], fraction=1.0)
    with pytest.raises(ValueError, match="entries"):
        escape_time([0, 1, 2], [1, 0.5])


def test_first_grown_synthetic_snapshots():
    steps = np.array([0, 10, 20, 30, 40])
    base = np.array([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 0.5], [0.6, 0.8, 0]])  # norms 1,2,.5,1
    scale = np.ones((5, 4))
    scale[:, 0] = [1, 1.2, 1.3, 1.4, 1.5]  # never doubles
    scale[:, 1] = [1, 1, 1.5, 1.9, 3.0]  # doubles at step 40
    scale[:, 2] = [1, 1.1, 1.5, 2.5, 4.0]  # doubles first, at step 30
    snaps = scale[:, :, None] * base[None]
    assert first_grown(steps, snaps) == (2, 30, 3)
    assert first_grown(steps, snaps, factor=1.45) == (1, 20, 2)  # tie: larger ratio (1.5 vs 1.3)
    assert first_grown(steps, snaps, factor=5.0) is None
    # kernels (S, channels, in, kh, kw) are flattened per channel
    kernels = np.broadcast_to(scale[:, :, None, None, None], (5, 4, 2, 3, 3)).copy()
    assert first_grown(steps, kernels).neuron == 2


def test_grown_mask_rule():
    W0 = 1e-3 * np.array([[1.0, 0], [0, 1.0], [1.0, 0], [0, 1.0], [0.6, 0.8]])  # norms 1e-3
    W = np.array([[1.0, 0], [0, 0.5], [0.05, 0], [0, 1.5e-3], [3e-3, 0]])
    np.testing.assert_array_equal(grown_mask(W, W0), [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(grown_mask(W), [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(grown_mask(W, W0, fraction=0.01), [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(grown_mask(W, W0, fraction=0.0), [1, 1, 1, 0, 1])
    np.testing.assert_array_equal(grown_mask(W, W0, fraction=0.0, factor=1.0), [1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="shape"):
        grown_mask(W, W0[:3])
    with pytest.raises(ValueError, match="fraction"):
        grown_mask(W, fraction=2.0)


def test_neuron_angle_norm_known_rows():
    rows = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, -0.0], [-3.0, -4.0], [1.0, -1.0]])
    angles, norms = neuron_angle_norm(rows)
    np.testing.assert_allclose(
        angles, [0.0, np.pi / 2, np.pi, np.arctan2(-4.0, -3.0), -np.pi / 4], atol=1e-15
    )
    assert np.all((angles > -np.pi) & (angles <= np.pi))
    np.testing.assert_allclose(norms, [1.0, 2.0, 1.0, 5.0, np.sqrt(2.0)])
    with pytest.raises(ValueError, match=r"\(w, b\)"):
        neuron_angle_norm(np.ones((3, 3)))


def test_neuron_features_flattens_kernels_and_appends_bias():
    rng = np.random.default_rng(5)
    kernel = rng.standard_normal((4, 2, 3, 3))
    bias = rng.standard_normal(4)
    f = neuron_features(kernel, bias)
    assert f.shape == (4, 19)
    np.testing.assert_array_equal(f[:, :18], kernel.reshape(4, -1))
    np.testing.assert_array_equal(f[:, 18], bias)
    with pytest.raises(ValueError, match="bias"):
        neuron_features(kernel, bias[:3])
