"""The papers effdyn implements and checks, cited by authors, year and arXiv id (docs/papers.md).

Theorem cards name their source by arXiv id (``Card.paper``), and the report lists every
cited paper in its references section from this table.

>>> PAPERS["2105.11686"].cite()
'Zhou et al. 2022, arXiv 2105.11686'
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import EffdynError


@dataclass(frozen=True)
class Paper:
    """One paper.

    Attributes:
        arxiv: the arXiv id, e.g. ``"2105.11686"``.
        authors: every author, in the paper's order.
        year: year of the arXiv version effdyn follows.
        title: the title.
    """

    arxiv: str
    authors: tuple[str, ...]
    year: int
    title: str

    @property
    def short(self) -> str:
        """``"Chen & Luo 2024"`` (two authors) or ``"Zhou et al. 2022"``."""
        surnames = [name.split()[-1] for name in self.authors]
        names = " & ".join(surnames) if len(surnames) <= 2 else f"{surnames[0]} et al."
        return f"{names} {self.year}"

    def cite(self) -> str:
        """The citation used in code and reports: ``"Zhou et al. 2022, arXiv 2105.11686"``."""
        return f"{self.short}, arXiv {self.arxiv}"

    def reference(self) -> str:
        """The bibliography line: authors, year, title, arXiv id."""
        return f"{', '.join(self.authors)} ({self.year}). {self.title}. arXiv {self.arxiv}."


PAPERS: dict[str, Paper] = {
    p.arxiv: p
    for p in (
        Paper(
            "2402.15958",
            ("Zheng-An Chen", "Tao Luo"),
            2024,
            "On the dynamics of three-layer neural networks: initial condensation",
        ),
        Paper(
            "2303.06561",
            ("Zheng-An Chen", "Yuqing Li", "Tao Luo", "Zhangchen Zhou", "Zhi-Qin John Xu"),
            2023,
            "Phase diagram of initial condensation for two-layer neural networks",
        ),
        Paper(
            "2105.11686",
            ("Hanxu Zhou", "Qixuan Zhou", "Tao Luo", "Yaoyu Zhang", "Zhi-Qin John Xu"),
            2022,
            "Towards understanding the condensation of neural networks at initial training",
        ),
        Paper(
            "2205.12101",
            (
                "Hanxu Zhou",
                "Qixuan Zhou",
                "Zhenyuan Jin",
                "Tao Luo",
                "Yaoyu Zhang",
                "Zhi-Qin John Xu",
            ),
            2022,
            "Empirical phase diagram for three-layer neural networks with infinite width",
        ),
        Paper(
            "2305.09947",
            ("Zhangchen Zhou", "Hanxu Zhou", "Yuqing Li", "Zhi-Qin John Xu"),
            2023,
            "Understanding the initial condensation of convolutional neural networks",
        ),
        Paper(
            "2007.07497",
            ("Tao Luo", "Zhi-Qin John Xu", "Zheng Ma", "Yaoyu Zhang"),
            2021,
            "Phase diagram for two-layer ReLU neural networks at infinite-width limit",
        ),
        Paper(
            "2510.06954",
            ("Zheng-An Chen", "Tao Luo"),
            2025,
            "From condensation to rank collapse: a two-stage analysis of transformer training "
            "dynamics",
        ),
        Paper(
            "2402.09226",
            ("Akshay Kumar", "Jarvis Haupt"),
            2024,
            "Directional convergence near small initializations and saddles in two-homogeneous "
            "neural networks",
        ),
        Paper(
            "1312.6120",
            ("Andrew M. Saxe", "James L. McClelland", "Surya Ganguli"),
            2014,
            "Exact solutions to the nonlinear dynamics of learning in deep linear neural networks",
        ),
        Paper(
            "2106.15933",
            (
                "Arthur Jacot",
                "François Ged",
                "Berfin Şimşek",
                "Clément Hongler",
                "Franck Gabriel",
            ),
            2021,
            "Saddle-to-saddle dynamics in deep linear networks and small initialization training",
        ),
        Paper(
            "2304.00488",
            ("Scott Pesme", "Nicolas Flammarion"),
            2023,
            "Saddle-to-saddle dynamics in diagonal linear networks",
        ),
        Paper(
            "2410.20119",
            ("Zheng-An Chen", "Tao Luo", "GuiHong Wang"),
            2024,
            "Analyzing multi-stage loss curve: plateau and descent mechanisms in neural networks",
        ),
    )
}
"""Every paper effdyn cites, by arXiv id."""


def paper(arxiv: str) -> Paper:
    """The paper with this arXiv id (an :class:`~effdyn.errors.EffdynError` if unknown)."""
    try:
        return PAPERS[arxiv]
    except KeyError:
        known = ", ".join(PAPERS)
        raise EffdynError(f"unknown paper arXiv {arxiv!r} (known: {known})") from None
