"""Training the real network (JAX): the fully connected net and the two-layer CNN, their
loss, the GD/Adam loop, files.

:func:`train` runs full-batch gradient descent (or Adam) from the problem's own initial
weights and returns a :class:`TrainRun`; :func:`save_run`/:func:`load_run` write and read
``DIR/train.npz`` and ``DIR/result.json`` (docs/commands.md#train).
"""

from .io import load_run, save_run, summary_of
from .loop import TrainRun, train
from .network import loss_function, network, network_inputs

__all__ = [
    "TrainRun",
    "load_run",
    "loss_function",
    "network",
    "network_inputs",
    "save_run",
    "summary_of",
    "train",
]
