"""What the seed papers claim for their own experiments, to report beside measurements.

``compare`` looks a problem up here and prints the claim next to what it measured; the
claim is never used to decide anything. Keys: (built-in data set, activation expression as
effdyn parses it).
"""

from __future__ import annotations

from .problem import Problem

# Zhou et al. 2022, arXiv 2105.11686, Fig. 2: condensed lines in the final cosine heatmaps.
_LINES = {
    ("zhou2022-fig2", "tanh(x)"): 1,
    ("zhou2022-fig2", "x*tanh(x)"): 2,
    ("zhou2022-fig2", "x**2*tanh(x)"): 3,
    ("zhou2022-fig2", "1/(1 + exp(-x))"): 1,
    ("zhou2022-fig2", "log(exp(x) + 1)"): 1,
}
_SOURCE = "Zhou et al. 2022, arXiv 2105.11686, Fig. 2: lines in the cosine-similarity heatmap"


def paper_claim(problem: Problem) -> dict | None:
    """The paper's claim for this setting (two-layer, one activation), or None."""
    from .symbolic.parse import parse_activation

    acts = set(problem.model.activations)
    if problem.model.depth != 2 or len(acts) != 1:
        return None
    expr = str(parse_activation(acts.pop()))
    lines = _LINES.get((problem.data.name, expr))
    return None if lines is None else {"lines": lines, "source": _SOURCE}
