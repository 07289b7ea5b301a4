"""One-layer softmax attention with a value/read-out chain and a tanh output.

The model of Chen & Luo 2025 (arXiv 2510.06954) in the form analysed in
docs/theory/automatic.md#attention: for a sequence X (tokens × d),

    f(X) = tanh( mean_tokens[ softmax(X W_Q W_Kᵀ Xᵀ / √d) X W_V ] W1 W2 ).

Loaded by examples/attention.toml (docs/user-models.md). Loading it runs this file.
"""

import jax
import jax.numpy as jnp

D, HIDDEN = 4, 3


def template():
    """The parameters: leaves attn/W_K, attn/W_Q, attn/W_V (d × d), W1 (d × h), W2 (h × 1)."""
    return {
        "attn": {
            "W_Q": jnp.zeros((D, D)),
            "W_K": jnp.zeros((D, D)),
            "W_V": jnp.zeros((D, D)),
        },
        "W1": jnp.zeros((D, HIDDEN)),
        "W2": jnp.zeros((HIDDEN, 1)),
    }


def apply(params, x):
    """``x``: (n, tokens, d) → (n, 1)."""
    attn = params["attn"]
    d = x.shape[-1]
    logits = jnp.einsum("nsd,de,fe,ntf->nst", x, attn["W_Q"], attn["W_K"], x) / jnp.sqrt(d)
    mixed = jnp.einsum("nst,ntd,de->nse", jax.nn.softmax(logits, axis=-1), x, attn["W_V"])
    return jnp.tanh(mixed.mean(axis=1) @ params["W1"] @ params["W2"])
