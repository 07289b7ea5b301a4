"""An Equinox MLP as a user model (docs/user-models.md#equinox).

``eqx.partition`` splits the module into its arrays (the parameters effdyn initializes and
trains) and the static rest; ``apply`` recombines them. The layers are bias-free: an
Equinox ``Linear`` carries a bias by default, and an output bias would be reported as a drift
parameter (docs/theory/automatic.md#drift). Loaded by examples/equinox_mlp.toml; loading it
runs this file.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

_model = eqx.nn.MLP(
    5,
    1,
    width_size=20,
    depth=2,
    activation=jnp.tanh,
    use_bias=False,
    use_final_bias=False,
    key=jax.random.PRNGKey(0),
)
_params, _static = eqx.partition(_model, eqx.is_array)


def template():
    """The MLP's arrays: leaves layers/0/weight (20 × 5), layers/1/weight, layers/2/weight."""
    return _params


def apply(params, x):
    """``x``: (n, 5) → (n, 1)."""
    return jax.vmap(eqx.combine(params, _static))(x)
