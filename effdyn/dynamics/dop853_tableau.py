"""The Butcher tableau of the Dormand–Prince 8(5,3) method.

The method of the batched integrator (docs/theory/blowup.md#batched-integrator).

Source: E. Hairer, S. P. Nørsett and G. Wanner, *Solving Ordinary Differential Equations I:
Nonstiff Problems*, 2nd ed., Springer 1993, §II.10 — the coefficients of their code DOP853
(Dormand–Prince 8(5,3)): 12 stages of an explicit Runge–Kutta method of order 8, an embedded
5th-order error estimate and a 3rd-order one. The values below are the published ones,
as exact fractions where the method has rational coefficients and otherwise as the
30-significant-digit decimals of the code (several nodes and weights involve √6, e.g.
``c₄ = (6 − √6)/30``, ``c₅ = (6 + √6)/30``, ``c₃ = 2c₄/3``, ``c₂ = 2c₃/3``).

Indices are 0-based: stage ``i`` (``i = 0 … 11``) evaluates ``k_i = f(y_n + h Σ_{j<i} a_ij
k_j)`` at ``t_n + c_i h``; ``y_{n+1} = y_n + h Σ b_i k_i``. Index 12 of the error weights is
``f(y_{n+1})`` (the next step's first stage), whose weight is zero in both estimators.

- ``E5 = b − b̂₅``: ``h Σ E5_i k_i`` is the local error against the embedded 5th-order
  solution (Hairer's ``er1 … er12``).
- ``E3 = b − b̂₃`` with ``b̂₃`` the 3rd-order weights ``bhh1, bhh2, bhh3`` on stages 0, 8
  and 11.

:data:`TEXT` keeps every coefficient as the exact string it was written as (a
``fractions.Fraction`` literal), so that the order conditions can be checked in exact
arithmetic; the numpy arrays are its correctly rounded float64 values. Numpy only: nothing
here imports JAX or scipy.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

N_STAGES = 12

_C = {
    1: "0.526001519587677318785587544488e-1",
    2: "0.789002279381515978178381316732e-1",
    3: "0.118350341907227396726757197510",
    4: "0.281649658092772603273242802490",
    5: "1/3",
    6: "1/4",
    7: "4/13",
    8: "127/195",
    9: "3/5",
    10: "6/7",
    11: "1",
}

_A = {
    (1, 0): "5.26001519587677318785587544488e-2",
    (2, 0): "1.97250569845378994544595329183e-2",
    (2, 1): "5.91751709536136983633785987549e-2",
    (3, 0): "2.95875854768068491816892993775e-2",
    (3, 2): "8.87627564304205475450678981324e-2",
    (4, 0): "2.41365134159266685502369798665e-1",
    (4, 2): "-8.84549479328286085344864962717e-1",
    (4, 3): "9.24834003261792003115737966543e-1",
    (5, 0): "1/27",
    (5, 3): "1.70828608729473871279604482173e-1",
    (5, 4): "1.25467687566822425016691814123e-1",
    (6, 0): "19/512",
    (6, 3): "1.70252211019544039314978060272e-1",
    (6, 4): "6.02165389804559606850219397283e-2",
    (6, 5): "-9/512",
    (7, 0): "3.70920001185047927108779319836e-2",
    (7, 3): "1.70383925712239993810214054705e-1",
    (7, 4): "1.07262030446373284651809199168e-1",
    (7, 5): "-1.53194377486244017527936158236e-2",
    (7, 6): "8.27378916381402288758473766002e-3",
    (8, 0): "6.24110958716075717114429577812e-1",
    (8, 3): "-3.36089262944694129406857109825",
    (8, 4): "-8.68219346841726006818189891453e-1",
    (8, 5): "2.75920996994467083049415600797e1",
    (8, 6): "2.01540675504778934086186788979e1",
    (8, 7): "-4.34898841810699588477366255144e1",
    (9, 0): "4.77662536438264365890433908527e-1",
    (9, 3): "-2.48811461997166764192642586468",
    (9, 4): "-5.90290826836842996371446475743e-1",
    (9, 5): "2.12300514481811942347288949897e1",
    (9, 6): "1.52792336328824235832596922938e1",
    (9, 7): "-3.32882109689848629194453265587e1",
    (9, 8): "-2.03312017085086261358222928593e-2",
    (10, 0): "-9.3714243008598732571704021658e-1",
    (10, 3): "5.18637242884406370830023853209",
    (10, 4): "1.09143734899672957818500254654",
    (10, 5): "-8.14978701074692612513997267357",
    (10, 6): "-1.85200656599969598641566180701e1",
    (10, 7): "2.27394870993505042818970056734e1",
    (10, 8): "2.49360555267965238987089396762",
    (10, 9): "-3.0467644718982195003823669022",
    (11, 0): "2.27331014751653820792359768449",
    (11, 3): "-1.05344954667372501984066689879e1",
    (11, 4): "-2.00087205822486249909675718444",
    (11, 5): "-1.79589318631187989172765950534e1",
    (11, 6): "2.79488845294199600508499808837e1",
    (11, 7): "-2.85899827713502369474065508674",
    (11, 8): "-8.87285693353062954433549289258",
    (11, 9): "1.23605671757943030647266201528e1",
    (11, 10): "6.43392746015763530355970484046e-1",
}

_B = {
    0: "5.42937341165687622380535766363e-2",
    5: "4.45031289275240888144113950566",
    6: "1.89151789931450038304281599044",
    7: "-5.8012039600105847814672114227",
    8: "3.1116436695781989440891606237e-1",
    9: "-1.52160949662516078556178806805e-1",
    10: "2.01365400804030348374776537501e-1",
    11: "4.47106157277725905176885569043e-2",
}

_BHH = {0: "31/127", 8: "12675/17272", 11: "3/136"}
"""The embedded 3rd-order weights ``b̂₃`` (Hairer's ``bhh1, bhh2, bhh3``)."""

_ER = {
    0: "0.1312004499419488073250102996e-1",
    5: "-0.1225156446376204440720569753e1",
    6: "-0.4957589496572501915214079952",
    7: "0.1664377182454986536961530415e1",
    8: "-0.3503288487499736816886487290",
    9: "0.3341791187130174790297318841",
    10: "0.8192320648511571246570742613e-1",
    11: "-0.2235530786388629525884427845e-1",
}
"""``E5 = b − b̂₅`` (Hairer's ``er1 … er12``)."""

TEXT = {"c": _C, "a": _A, "b": _B, "bhh": _BHH, "er": _ER}
"""Every coefficient as written (``Fraction`` literals), keyed by 0-based index; entries not
listed are zero (``c₀ = 0``)."""


def exact(name: str) -> dict:
    """The coefficients ``name`` (a key of :data:`TEXT`) as exact ``Fraction`` values."""
    return {key: Fraction(text) for key, text in TEXT[name].items()}


def _vector(name: str, size: int) -> np.ndarray:
    out = np.zeros(size)
    for i, value in exact(name).items():
        out[i] = float(value)
    return out


C = _vector("c", N_STAGES)
"""Nodes ``c_i`` of the 12 stages."""


def _matrix(name: str, size: int) -> np.ndarray:
    out = np.zeros((size, size))
    for (i, j), value in exact(name).items():
        out[i, j] = float(value)
    return out


A = _matrix("a", N_STAGES)
"""Stage coefficients ``a_ij`` (strictly lower triangular)."""

B = _vector("b", N_STAGES)
"""Weights ``b_i`` of the 8th-order solution."""

E5 = _vector("er", N_STAGES + 1)
"""5th-order error weights over the 12 stages and ``f(y_{n+1})`` (last entry 0)."""

E3 = np.append(B, 0.0) - _vector("bhh", N_STAGES + 1)
"""3rd-order error weights ``b − b̂₃`` over the 12 stages and ``f(y_{n+1})``. (Each entry is
the float64 difference of the two rounded weights, as DOP853 computes it.)"""

ERROR_ORDER = 7
"""The step-size exponent is ``−1/(ERROR_ORDER + 1) = −1/8`` (DOP853's rule)."""

for _array in (C, A, B, E5, E3):  # shared constants: read-only
    _array.setflags(write=False)
