"""Write attention_data.npz, the synthetic token task of examples/attention.toml.

n = 64 sequences of 4 tokens in R^4, tokens i.i.d. N(0, 1). The target mixes the mean token
with a product of two tokens, y = 0.6 tanh(m(X)·a + (x_1·b)(x_2·c)), so |y| < 1, the mean-token
correlation v = ⟨y m(X)⟩ is not zero, and no function of the mean token alone fits it.

    python examples/make_attention_data.py     # deterministic (seed 0)
"""

from pathlib import Path

import numpy as np

rng = np.random.default_rng(0)
n, tokens, d = 64, 4, 4
x = rng.standard_normal((n, tokens, d))
a, b, c = (rng.standard_normal(d) / np.sqrt(d) for _ in range(3))
y = 0.6 * np.tanh(x.mean(axis=1) @ a * 2.0 + (x[:, 0] @ b) * (x[:, 1] @ c))
np.savez(Path(__file__).with_name("attention_data.npz"), x=x, y=y)
