"""Problem files: load and validate a problem, and build its data and initial weights.

A problem (docs/problem-files.md) names a network (``[model]``), a data set
(``[data]``), a small initialization (``[init]``) and a training schedule (``[train]``); a
``[sweep]`` table is kept as is for the sweep runner. The one problem feeds both the
symbolic side and the real training, so everything is checked here, once: every mistake is a
:class:`~effdyn.errors.ProblemError` whose one-line message names the file, the section, the
key and what is wrong, e.g. ``bad.toml: [model] unknown key 'widht' (allowed: ...)``.

Conventions are those of docs/theory/conventions.md: ``x`` is ``(n, d)``, ``y`` is ``(n, d_out)``;
with
``bias = true`` the first layer sees ``x̃ = (x, 1)`` with the 1 LAST; ``W1`` is
``(m1, d + 1)``, ``Wl`` is ``(m_l, m_{l-1})``, ``WL`` is ``(d_out, m_{L-1})``.

Only numpy and the standard library are imported, so the command line starts fast.

Example::

    >>> p = problem_from_dict({"model": {"depth": 2, "width": 50, "activation": "tanh(x)"},
    ...                        "data": {"dataset": "zhou2022-fig2"}})
    >>> p.layer_shapes()
    [(50, 6), (1, 50)]
    >>> [w.shape for w in initial_params(p)]
    [(50, 6), (1, 50)]
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import re
import tomllib
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from effdyn.data.datasets import load_dataset
from effdyn.errors import ProblemError
from effdyn.memory import check_problem

DEFAULT_SCALE = 0.005
"""Std of every initial weight when ``[init]`` gives none (Zhou et al. 2022 use 0.005)."""

SECTIONS = ("model", "data", "init", "train", "sweep")
MODEL_KEYS = (
    "kind",
    "depth",
    "width",
    "widths",
    "activation",
    "bias",
    "channels",
    "kernel",
    "stride",
    "loss",
    "file",
    "apply",
    "params",
    "unit_axes",
)
DATA_KEYS = ("dataset", "path", "x", "y", "seed")
INIT_KEYS = ("scale", "scales", "seed", "path", "exponents", "base")
TRAIN_KEYS = ("optimizer", "lr", "steps")
KINDS = ("fc", "cnn", "jax", "diagonal")
LOSS_NAMES = ("mse", "cross_entropy", "logistic", "exponential")
"""``[model] loss`` choices (:mod:`effdyn.losses`, docs/theory/losses.md)."""
OPTIMIZERS = ("gd", "adam")
_CNN_ONLY = ("channels", "kernel", "stride")
_JAX_ONLY = ("file", "apply", "params")
MAX_DEPTH = 1000
"""The deepest fully connected network a problem file may ask for."""

_BUILTIN_ONLY = ("depth", "width", "widths", "activation", "bias")
_DATA_SOURCES = ("dataset", "path", "x")

# Keys of which a section takes one alternative; `Problem.with_` setting one drops the others.
_ALTERNATIVES = {
    "model": (("width",), ("widths",)),
    "data": (("dataset",), ("path",), ("x", "y")),
    "init": (("scale",), ("scales",)),
}


# ---------------------------------------------------------------------------------------------
# Specs


@dataclass(frozen=True)
class ModelSpec:
    """The network: fully connected of any depth, a two-layer CNN, or a user's JAX model.

    ``widths`` has one entry per hidden layer (``depth - 1``); for a CNN it is
    ``(channels,)``. ``activations`` holds one raw activation string per hidden layer
    (parsed by :mod:`effdyn.symbolic`, not here). ``loss`` is the training loss
    (:mod:`effdyn.losses`). For ``kind = "jax"`` (docs/user-models.md) ``file`` is the
    model file (absolute), ``apply``/``params`` the names of its two functions, and
    ``depth = 0``, ``widths = activations = ()``. ``unit_axes`` holds ``(leaf, axis)``
    pairs: the axis of a leaf that indexes its units (0 = rows when absent).
    """

    kind: str
    depth: int
    widths: tuple[int, ...]
    activations: tuple[str, ...]
    bias: bool = True
    channels: int | None = None
    kernel: int | None = None
    stride: int = 1
    loss: str = "mse"
    file: str | None = None
    apply: str = "apply"
    params: str = "template"
    unit_axes: tuple[tuple[str, int], ...] = ()

    def unit_axis(self, leaf: str) -> int:
        """The axis of ``leaf`` that indexes its units (``unit_axes``; default 0, rows)."""
        return dict(self.unit_axes).get(leaf, 0)


@dataclass(frozen=True, eq=False)
class DataSpec:
    """Training data as read-only float64 arrays.

    ``x`` is ``(n, d)`` for a fully connected network and ``(n, H, W)`` or ``(n, C, H, W)``
    for a CNN; ``y`` is ``(n, d_out)``. ``name`` is the built-in's name, the resolved file
    path, or ``"inline"``.
    """

    x: np.ndarray
    y: np.ndarray
    name: str
    seed: int = 0

    def __repr__(self) -> str:  # shapes, not thousands of numbers
        shapes = f"x=<{self.x.shape}>, y=<{self.y.shape}>"
        return f"DataSpec({shapes}, name={self.name!r}, seed={self.seed})"


@dataclass(frozen=True)
class InitSpec:
    """Initialization: per-leaf standard deviations and a seed, or a file of weights.

    ``scales`` has one std per parameter leaf in leaf order (``W1..WL`` for the built-in
    kinds, flatten order for a user model). ``scale`` is ε, the one small scale.
    ``exponents`` (per leaf, or None when not given) are the integer ε exponents ``γ``
    (``std = base·ε^γ``; ``γ = 0`` holds a leaf at O(1), docs/user-models.md#exponents).
    When ``path`` (absolute) is set its arrays (``W1..WL``, or the leaf names) are the
    initial weights and ``scales``/``seed`` are unused; see :func:`initial_params`.
    """

    scales: tuple[float, ...]
    seed: int = 0
    path: str | None = None
    scale: float = 0.005
    exponents: tuple[int, ...] | None = None
    values: tuple | None = field(default=None, repr=False)
    """The initial leaves themselves (leaf order), set by code, never by a problem file:
    :func:`effdyn.dynamics.around.problem_around` (an expansion around a given state)."""


@dataclass(frozen=True)
class TrainSpec:
    """Training schedule of the real network: optimizer ``"gd"`` or ``"adam"``."""

    optimizer: str = "gd"
    lr: float = 1e-3
    steps: int = 10000


@dataclass(frozen=True, eq=False)
class Problem:
    """A validated problem: network, data, initialization, training (and a raw sweep table).

    ``source`` is the problem file's path (or ``"<dict>"``); ``raw`` is the table it was
    built from and ``base_dir`` the folder relative paths were resolved against, both kept
    so that :meth:`with_` can change a setting and validate again.
    """

    model: ModelSpec
    data: DataSpec
    init: InitSpec
    train: TrainSpec
    source: str = "<dict>"
    sweep: dict | None = None
    raw: dict | None = field(default=None, repr=False)
    base_dir: str = field(default=".", repr=False)
    user: Any = field(default=None, repr=False)
    """The loaded :class:`~effdyn.kinds.usermodel.UserModel` of ``kind = "jax"`` (else None)."""

    def leaf_names(self) -> tuple[str, ...]:
        """The parameter leaves' names: ``W1..WL``, or a user model's key paths."""
        return _leaf_names(self.model, self.user)

    def leaf_shapes(self) -> list[tuple[int, ...]]:
        """The parameter leaves' shapes in leaf order (:meth:`layer_shapes` for the
        built-in kinds)."""
        if self.user is not None:
            return [tuple(s) for s in self.user.shapes]
        return self.layer_shapes()

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.data.x.shape[0])

    @property
    def d(self) -> int:
        """Input dimension without the bias slot (for a CNN: the flattened patch, C·k·k)."""
        if self.model.kind == "cnn":
            channels, _, _ = self.image_shape
            return channels * self.model.kernel**2
        return int(self.data.x.shape[1])

    @property
    def d_out(self) -> int:
        """Output dimension: ``K = max label + 1`` classes for ``loss = "cross_entropy"``,
        else the number of target columns."""
        if self.model.loss == "cross_entropy":
            return int(np.max(self.data.y)) + 1
        return int(self.data.y.shape[1])

    @property
    def input_dim(self) -> int:
        """Columns of ``W1``: ``d + 1`` with bias, else ``d``."""
        return self.d + int(self.model.bias)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the CNN's images (``C = 1`` for ``(n, H, W)`` data)."""
        _require_kind(self, "cnn", "image_shape")
        shape = self.data.x.shape[1:]
        return (1, *shape) if len(shape) == 2 else shape

    @property
    def n_positions(self) -> int:
        """Output positions of the CNN's convolution (rows of the patch matrix ``P(x)``)."""
        _, height, width = self.image_shape
        k, s = self.model.kernel, self.model.stride
        return ((height - k) // s + 1) * ((width - k) // s + 1)

    def layer_shapes(self) -> list[tuple[int, int]]:
        """Shapes of ``W1..WL``.

        Fully connected: ``W1`` is ``(m1, input_dim)``, ``Wl`` is ``(m_l, m_{l-1})``, ``WL``
        is ``(d_out, m_{L-1})``. CNN: ``W1`` is ``(channels, C·k·k [+1])``, the flattened
        kernels (bias last), and ``W2`` is ``(channels, n_positions)``, the output weights
        ``a_β`` (docs/theory/cnn.md#effective-dynamics).
        """
        if self.model.kind == "cnn":
            return [(self.model.channels, self.input_dim), (self.model.channels, self.n_positions)]
        if self.model.kind == "diagonal":
            return [(self.d,), (self.d,)]
        dims = [self.input_dim, *self.model.widths, self.d_out]
        return [(dims[i + 1], dims[i]) for i in range(self.model.depth)]

    def inputs(self) -> np.ndarray:
        """``x̃``, shape ``(n, input_dim)``: ``x`` with a column of ones LAST when ``bias``."""
        _require_kind(self, "fc", "inputs()")
        return _with_ones(self.data.x, self.model.bias)

    def patches(self) -> np.ndarray:
        """CNN patch matrices ``P(x_i)``, shape ``(n, n_positions, input_dim)``.

        Positions run row-major over the output map; a patch is flattened in ``(C, k, k)``
        order (matching ``weight.reshape(channels, -1)``), with a ones column LAST when bias.
        """
        _require_kind(self, "cnn", "patches()")
        channels, _, _ = self.image_shape
        k, s = self.model.kernel, self.model.stride
        images = self.data.x.reshape(self.n, channels, *self.data.x.shape[-2:])
        windows = np.lib.stride_tricks.sliding_window_view(images, (k, k), axis=(2, 3))
        windows = windows[:, :, ::s, ::s]  # (n, C, Ho, Wo, k, k)
        flat = windows.transpose(0, 2, 3, 1, 4, 5).reshape(self.n, self.n_positions, -1)
        return _with_ones(flat, self.model.bias)

    def with_(self, **changes: Any) -> Problem:
        """A copy with some settings changed, validated again like a file.

        Each keyword names a section. A dict changes those keys of the section (``None``
        removes a key; setting one of ``width``/``widths``, ``scale``/``scales`` or
        ``dataset``/``path``/``x``+``y`` drops the others) and the whole problem is
        re-validated. Any other value (a spec instance, ``source=...``) replaces that field
        as is, without validation (``raw`` then no longer describes that field).

        >>> p = uniform_problem("tanh(x)", 2)
        >>> p.with_(init={"scale": 1e-3}, model={"width": 200}).layer_shapes()
        [(200, 6), (1, 200)]
        """
        tables = {k: v for k, v in changes.items() if k in SECTIONS and isinstance(v, Mapping)}
        direct = {k: v for k, v in changes.items() if k not in tables}
        problem = self
        if tables:
            if self.raw is None:
                raise ProblemError(
                    f"{self.source}: with_() needs the table the problem was built from; "
                    "pass spec instances instead"
                )
            merged = _merge_sections(self.raw, tables)
            problem = problem_from_dict(merged, source=self.source, base_dir=self.base_dir)
        return dataclasses.replace(problem, **direct) if direct else problem


# ---------------------------------------------------------------------------------------------
# Entry points


def load_problem(path: str | Path) -> Problem:
    """Read and validate a TOML problem file; relative paths in it are taken from its folder.

    Raises :class:`~effdyn.errors.ProblemError` (one line) for a missing or unreadable file,
    a TOML syntax error, or any invalid setting.
    """
    path = Path(path)
    return problem_from_dict(read_toml(path), source=str(path), base_dir=path.parent)


def read_toml(path: str | Path) -> dict:
    """The parsed tables of a TOML file; every failure is a one-line :class:`ProblemError`."""
    source = str(path)
    try:
        with Path(path).open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise _error(source, None, "file not found") from None
    except OSError as err:
        raise _error(source, None, f"cannot be read ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise _error(source, None, f"invalid TOML: {err}") from None
    except UnicodeDecodeError:
        raise _error(source, None, "invalid TOML: not UTF-8 text") from None


def problem_from_dict(
    d: Mapping[str, Any], *, source: str = "<dict>", base_dir: str | Path = "."
) -> Problem:
    """Validate a problem given as nested tables (the parsed TOML) and build it.

    ``source`` names the problem in error messages; relative data and init paths are
    resolved against ``base_dir``. Values may also be numpy scalars and arrays.
    """
    if not isinstance(d, Mapping):
        raise _error(source, None, f"a problem must be a table of sections, got {_show(d)}")
    for name in d:
        if name not in SECTIONS:
            allowed = ", ".join(f"[{s}]" for s in SECTIONS)
            raise _error(source, None, f"unknown section [{name}] (allowed: {allowed})")
    for name in ("model", "data"):
        if name not in d:
            raise _error(source, None, f"missing section [{name}]")
    sections = {name: _Section.of(source, name, d.get(name, {})) for name in SECTIONS}
    model = _parse_model(sections["model"], base_dir)
    user = _load_user(sections["model"], model) if model.kind == "jax" else None
    data = _parse_data(sections["data"], model, base_dir)
    if model.kind != "jax":
        _check_labels(sections["data"], model, data.y)
    names = _leaf_names(model, user)
    if model.kind == "diagonal":
        for key in ("scales", "exponents", "base"):
            if sections["init"].has(key):
                raise sections["init"].error(
                    f"key {key!r} is not used by kind = 'diagonal': u(0) = v(0) = α·1 with "
                    "α = [init] scale"
                )
    problem = Problem(
        model=model,
        data=data,
        init=_parse_init(sections["init"], names, base_dir),
        train=_parse_train(sections["train"]),
        source=source,
        sweep=copy.deepcopy(dict(d["sweep"])) if "sweep" in d else None,
        raw=copy.deepcopy(dict(d)),
        base_dir=str(base_dir),
        user=user,
    )
    if model.unit_axes:
        _check_unit_axes(sections["model"], problem)
    check_problem(problem)  # before any weights exist: a width of 1e11 is refused here
    if problem.init.path is not None:
        initial_params(problem)  # a bad weights file is a load-time error, not a mid-run one
    return problem


def _leaf_names(model: ModelSpec, user) -> tuple[str, ...]:
    if user is not None:
        return user.names
    if model.kind == "diagonal":
        return ("u", "v")
    return tuple(f"W{l}" for l in range(1, model.depth + 1))


def initial_params(problem: Problem):
    """The initial weights (float64), the ones prediction and training share.

    Built-in kinds: the tuple ``(W1, …, WL)``; a user model (``kind = "jax"``): its
    template's pytree with these leaves (:func:`initial_leaves`).
    """
    leaves = initial_leaves(problem)
    return problem.user.unflatten(leaves) if problem.user is not None else leaves


def initial_leaves(problem: Problem) -> tuple[np.ndarray, ...]:
    """The initial parameter leaves in leaf order (``W1..WL``, or flatten order).

    With ``init.path`` the arrays of that ``.npz`` named by :meth:`Problem.leaf_names`
    (each of the leaf's shape, finite). A diagonal network starts at ``u = v = α·1``
    (``α`` = ``[init] scale``, no draw). Otherwise, the contract that makes every consumer
    start from the same weights::

        rng = np.random.default_rng(init.seed)
        leaf_j = scales[j] * rng.standard_normal(shape_j)   # for every leaf j in order
    """
    shapes = problem.leaf_shapes()
    if problem.init.values is not None:
        return tuple(np.array(w, dtype=np.float64) for w in problem.init.values)
    if problem.init.path is not None:
        return _load_init_arrays(problem, shapes)
    if problem.model.kind == "diagonal":
        pairs = zip(problem.init.scales, shapes, strict=True)
        return tuple(np.full(shape, scale) for scale, shape in pairs)
    rng = np.random.default_rng(problem.init.seed)
    return tuple(
        scale * rng.standard_normal(shape)
        for scale, shape in zip(problem.init.scales, shapes, strict=True)
    )


def uniform_problem(
    activation: str,
    depth: int,
    *,
    width: int = 50,
    dataset: str = "zhou2022-fig2",
    scale: float = DEFAULT_SCALE,
    seed: int = 0,
    bias: bool = True,
) -> Problem:
    """A fully connected problem with one activation everywhere (``--activation A --depth L``).

    >>> uniform_problem("tanh(x)", 3, width=20).model.widths
    (20, 20)
    """
    table = {
        "model": {"depth": depth, "width": width, "activation": activation, "bias": bias},
        "data": {"dataset": dataset},
        "init": {"scale": scale, "seed": seed},
    }
    return problem_from_dict(table, source="<command line>")


# ---------------------------------------------------------------------------------------------
# Checking values: one helper for a section's keys, one for a value's type


def _one_line(text: str) -> str:
    return re.sub(r"\s*[\r\n]+\s*", " ", text)


def _show(value: Any) -> str:
    """A value for a message: its repr on one line, cut to a readable length."""
    text = _one_line(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _error(source: str, section: str | None, message: str) -> ProblemError:
    where = f"{source}: [{section}] " if section else f"{source}: "
    return ProblemError(_one_line(where + message))


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


# type name -> (test, conversion); bool never counts as a number although it is an int
_TYPES: dict[str, tuple[Any, Any]] = {
    "an integer": (lambda v: isinstance(v, numbers.Integral) and not _is_bool(v), int),
    "a number": (lambda v: isinstance(v, numbers.Real) and not _is_bool(v), float),
    "true or false": (_is_bool, bool),
    "a string": (lambda v: isinstance(v, str), str),
    "an array": (lambda v: isinstance(v, list | tuple | np.ndarray), lambda v: v),
    "a table": (lambda v: isinstance(v, Mapping), dict),
}
_MISSING = object()


@dataclass(frozen=True)
class _Section:
    """One table of the problem, with the checks every section uses."""

    source: str
    name: str
    table: Mapping[str, Any]

    @classmethod
    def of(cls, source: str, name: str, value: Any) -> _Section:
        if not isinstance(value, Mapping):
            raise _error(source, name, f"must be a table, got {_show(value)}")
        return cls(source, name, value)

    def error(self, message: str) -> ProblemError:
        return _error(self.source, self.name, message)

    def has(self, key: str) -> bool:
        return key in self.table

    def check_keys(self, allowed: Sequence[str]) -> None:
        """Refuse any key not in ``allowed``."""
        for key in self.table:
            if key not in allowed:
                raise self.error(f"unknown key {key!r} (allowed: {', '.join(allowed)})")

    def get(self, key: str, type_name: str, default: Any = _MISSING) -> Any:
        """The value of ``key`` checked to be of ``type_name``, or ``default`` when absent."""
        if key not in self.table:
            if default is _MISSING:
                raise self.error(f"missing required key {key!r}")
            return default
        return self.typed(key, self.table[key], type_name)

    def typed(self, label: str, value: Any, type_name: str) -> Any:
        """``value`` (called ``label`` in messages) required to be of ``type_name``."""
        test, convert = _TYPES[type_name]
        if not test(value):
            raise self.error(f"{label} must be {type_name}, got {_show(value)}")
        return convert(value)

    def at_least(self, label: str, value: int, low: int) -> int:
        if value < low:
            raise self.error(f"{label} must be >= {low}, got {value}")
        return value

    def positive(self, label: str, value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            raise self.error(f"{label} must be finite and > 0, got {value}")
        return value

    def sequence(self, key: str, length: int, type_name: str, per: str) -> list[Any]:
        """The array ``key``: exactly ``length`` entries (one ``per`` ...), each ``type_name``."""
        items = self.get(key, "an array")
        if len(items) != length:
            entries = "1 entry" if length == 1 else f"{length} entries"
            raise self.error(f"{key} must have {entries} (one per {per}), got {len(items)}")
        return [self.typed(f"{key}[{i}]", item, type_name) for i, item in enumerate(items)]

    def choice(self, key: str, options: Sequence[str], default: str) -> str:
        value = self.get(key, "a string", default)
        if value not in options:
            raise self.error(f"{key} must be one of {', '.join(options)}, got {value!r}")
        return value

    def seed(self) -> int:
        return self.at_least("seed", self.get("seed", "an integer", 0), 0)


def _path(sec: _Section, key: str, base_dir: str | Path) -> Path:
    """The file named by ``key``, resolved against ``base_dir``; it must exist."""
    value = sec.get(key, "a string")
    try:
        path = (Path(base_dir) / Path(value).expanduser()).resolve()
        found = path.is_file()
    except (OSError, RuntimeError, ValueError) as err:  # e.g. a NUL byte, an unknown ~user
        raise sec.error(f"{key} {value!r} is not a usable path ({err})") from None
    if not found:
        raise sec.error(f"{key} {str(path)!r}: file not found")
    return path


def _float_array(sec: _Section, label: str, value: Any, images: bool = False) -> np.ndarray:
    """A fresh, read-only float64 copy of a rectangular array of numbers.

    ``images``: ``value`` holds a CNN's images, so a ragged array is reported as images of
    mixed sizes.
    """
    try:
        array = np.asarray(value)
    except ValueError:
        if images:
            raise sec.error(_mixed_images(label, value)) from None
        raise sec.error(f"{label} must be a rectangular array of numbers (rows differ)") from None
    if array.dtype.kind not in "iuf":
        raise sec.error(f"{label} must be an array of numbers, got dtype {array.dtype}")
    array = np.array(array, dtype=np.float64)
    array.setflags(write=False)
    return array


def _mixed_images(label: str, value: Any) -> str:
    """The message for a ragged stack of images: which sizes it mixes."""
    sizes = []
    for item in value if isinstance(value, list | tuple) else []:
        try:
            shape = "x".join(str(n) for n in np.shape(item))
        except ValueError:  # an image that is itself ragged
            shape = "ragged"
        if shape not in sizes:
            sizes.append(shape)
    found = f" ({', '.join(sizes[:4])}{', ...' if len(sizes) > 4 else ''})" if sizes else ""
    return (
        f"{label} holds images of mixed sizes{found}: kind = 'cnn' needs every image of one "
        "size, x of shape (n, H, W) or (n, C, H, W)"
    )


def _check_finite(sec: _Section, label: str, array: np.ndarray) -> None:
    bad = ~np.isfinite(array)
    count = int(bad.sum())
    if count:
        first = np.argwhere(bad)[0]
        where = f"{'row' if array.ndim > 1 else 'entry'} {first[0]}, counting from 0"
        raise sec.error(f"{label} contains {count} NaN/inf values (first at {where})")


def _read_npz(sec: _Section, key: str, path: Path) -> dict[str, np.ndarray]:
    """All arrays of the ``.npz`` named by ``key``, or a message saying what is wrong."""
    try:
        return _npz_arrays(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise sec.error(f"{key} {str(path)!r} cannot be read as .npz ({err})") from None


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.ndarray):
        raise ValueError("it holds a single .npy array, not named arrays")
    with loaded:
        return {name: loaded[name] for name in loaded.files}


def _with_ones(array: np.ndarray, bias: bool) -> np.ndarray:
    if not bias:
        return np.array(array)
    ones = np.ones((*array.shape[:-1], 1))
    return np.concatenate([array, ones], axis=-1)


def _require_kind(problem: Problem, kind: str, what: str) -> None:
    if problem.model.kind != kind:
        raise ProblemError(
            f"{problem.source}: {what} is for kind = {kind!r}, the model is {problem.model.kind!r}"
        )


# ---------------------------------------------------------------------------------------------
# Sections


def _parse_model(sec: _Section, base_dir: str | Path = ".") -> ModelSpec:
    sec.check_keys(MODEL_KEYS)
    kind = sec.choice("kind", KINDS, "fc")
    loss = sec.choice("loss", LOSS_NAMES, "mse")
    unit_axes = _parse_unit_axes(sec)
    if kind != "jax":
        for key in _JAX_ONLY:
            if sec.has(key):
                raise sec.error(f"key {key!r} is only for kind = 'jax' (this model is {kind!r})")
    if kind == "jax":
        return _parse_jax(sec, base_dir, loss, unit_axes)
    if kind == "diagonal":
        return _parse_diagonal(sec, loss)
    bias = sec.get("bias", "true or false", True)
    if kind == "cnn":
        spec = _parse_cnn(sec, bias)
        if loss == "cross_entropy":
            raise sec.error(
                "loss 'cross_entropy' needs K >= 2 outputs; the CNN has one scalar output "
                "(use mse, logistic or exponential)"
            )
        return dataclasses.replace(spec, loss=loss, unit_axes=unit_axes)
    for key in _CNN_ONLY:
        if sec.has(key):
            raise sec.error(f"key {key!r} is only for kind = 'cnn' (this model is 'fc')")
    depth = sec.at_least("depth", sec.get("depth", "an integer"), 2)
    if depth > MAX_DEPTH:
        raise sec.error(f"depth must be at most {MAX_DEPTH}, got {depth}")
    return ModelSpec(
        "fc",
        depth,
        _parse_widths(sec, depth),
        _parse_activations(sec, depth),
        bias,
        loss=loss,
        unit_axes=unit_axes,
    )


def _parse_unit_axes(sec: _Section) -> tuple[tuple[str, int], ...]:
    table = sec.get("unit_axes", "a table", {})
    out = []
    for leaf, axis in table.items():
        axis = sec.typed(f"unit_axes.{leaf}", axis, "an integer")
        out.append((str(leaf), sec.at_least(f"unit_axes.{leaf}", axis, 0)))
    return tuple(out)


def _parse_jax(sec: _Section, base_dir, loss: str, unit_axes) -> ModelSpec:
    for key in (*_BUILTIN_ONLY, *_CNN_ONLY):
        if sec.has(key):
            raise sec.error(
                f"key {key!r} is not used by kind = 'jax' (the model file defines the network)"
            )
    if not sec.has("file"):
        raise sec.error("missing required key 'file' (the model's Python file) for kind = 'jax'")
    path = _path(sec, "file", base_dir)
    return ModelSpec(
        "jax",
        0,
        (),
        (),
        bias=False,
        loss=loss,
        file=str(path),
        apply=sec.get("apply", "a string", "apply"),
        params=sec.get("params", "a string", "template"),
        unit_axes=unit_axes,
    )


def _parse_diagonal(sec: _Section, loss: str) -> ModelSpec:
    """``kind = "diagonal"``: ``f(x) = ⟨u⊙u − v⊙v, x⟩``
    (docs/theory/staircases.md#diagonal-linear-networks); its size comes from the data, so
    ``[model]`` takes only ``kind`` and ``loss``."""
    for key in MODEL_KEYS:
        if key not in ("kind", "loss") and sec.has(key):
            raise sec.error(
                f"key {key!r} is not used by kind = 'diagonal' (it takes only kind and loss; "
                "d comes from the data and [init] scale is α)"
            )
    if loss != "mse":
        raise sec.error(f"kind = 'diagonal' trains on the square loss (mse), not {loss!r}")
    return ModelSpec("diagonal", 0, (), (), bias=False, loss=loss)


def _load_user(sec: _Section, model: ModelSpec):
    """Import the user's model file (runs their code; docs/user-models.md)."""
    from effdyn.kinds.usermodel import load_user_model

    return load_user_model(Path(model.file), model.apply, model.params, sec.source)


def _check_labels(sec: _Section, model: ModelSpec, y: np.ndarray) -> None:
    """Labels that do not fit the loss are a load-time error (the built-in kinds)."""
    from effdyn.errors import EffdynError
    from effdyn.losses import get_loss

    loss = get_loss(model.loss)
    try:
        loss.check_labels(y, loss.output_size(y) if model.loss == "cross_entropy" else None)
    except EffdynError as err:
        raise sec.error(str(err)) from None


def _check_unit_axes(sec: _Section, problem: Problem) -> None:
    shapes = dict(zip(problem.leaf_names(), problem.leaf_shapes(), strict=True))
    for leaf, axis in problem.model.unit_axes:
        if leaf not in shapes:
            raise sec.error(
                f"unit_axes names {leaf!r}, which is not a parameter leaf "
                f"(leaves: {', '.join(shapes)})"
            )
        if axis >= len(shapes[leaf]):
            raise sec.error(
                f"unit_axes.{leaf} = {axis}, but {leaf!r} has shape {shapes[leaf]} "
                f"({len(shapes[leaf])} axes)"
            )


def _parse_cnn(sec: _Section, bias: bool) -> ModelSpec:
    for key in ("width", "widths"):
        if sec.has(key):
            raise sec.error(f"key {key!r} is not used by kind = 'cnn' (its width is 'channels')")
    depth = sec.get("depth", "an integer", 2)
    if depth != 2:
        raise sec.error(f"depth must be 2 for kind = 'cnn', got {depth}")
    channels = sec.at_least("channels", sec.get("channels", "an integer"), 1)
    kernel = sec.at_least("kernel", sec.get("kernel", "an integer"), 1)
    stride = sec.at_least("stride", sec.get("stride", "an integer", 1), 1)
    activations = _parse_activations(sec, depth)
    return ModelSpec("cnn", depth, (channels,), activations, bias, channels, kernel, stride)


def _parse_widths(sec: _Section, depth: int) -> tuple[int, ...]:
    if sec.has("width") and sec.has("widths"):
        raise sec.error("give width or widths, not both")
    if sec.has("widths"):
        widths = sec.sequence("widths", depth - 1, "an integer", per="hidden layer")
        return tuple(sec.at_least(f"widths[{i}]", w, 1) for i, w in enumerate(widths))
    if not sec.has("width"):
        raise sec.error("missing required key 'width' (or 'widths')")
    return (sec.at_least("width", sec.get("width", "an integer"), 1),) * (depth - 1)


def _parse_activations(sec: _Section, depth: int) -> tuple[str, ...]:
    if not sec.has("activation"):
        raise sec.error("missing required key 'activation'")
    value = sec.table["activation"]
    if isinstance(value, str):
        labelled = [("activation", value)] * (depth - 1)
    elif _TYPES["an array"][0](value):
        items = sec.sequence("activation", depth - 1, "a string", per="hidden layer")
        labelled = [(f"activation[{i}]", item) for i, item in enumerate(items)]
    else:
        raise sec.error(f"activation must be a string or an array of strings, got {_show(value)}")
    for label, item in labelled:
        if not item.strip():
            raise sec.error(f"{label} is an empty string")
    return tuple(item for _, item in labelled)


def _parse_data(sec: _Section, model: ModelSpec, base_dir: str | Path) -> DataSpec:
    sec.check_keys(DATA_KEYS)
    seed = sec.seed()
    name, x, y = _read_data(sec, seed, base_dir, images=model.kind == "cnn")
    _check_finite(sec, "x", x)
    _check_finite(sec, "y", y)
    x = _check_x(sec, model, x)
    y = _check_y(sec, model, y, n=len(x))
    return DataSpec(x, y, name, seed)


def _read_data(
    sec: _Section, seed: int, base_dir: str | Path, images: bool = False
) -> tuple[str, Any, Any]:
    """``(name, x, y)`` from the one source the section gives: dataset, path or inline.

    ``images``: ``x`` holds a CNN's images (a ragged ``x`` is then reported as such).
    """
    given = [key for key in _DATA_SOURCES if sec.has(key)]
    if len(given) > 1:
        raise sec.error(
            f"data given twice ({' and '.join(given)}): give one of dataset, path, or x and y"
        )
    if not given:
        hint = " (y needs x)" if sec.has("y") else ""
        raise sec.error(f"no data: give one of dataset, path, or inline x and y{hint}")
    if given[0] != "x" and sec.has("y"):
        raise sec.error(f"y is only for inline data (with x), not with {given[0]}")
    if given[0] == "dataset":
        name = sec.get("dataset", "a string")
        try:
            x, y = load_dataset(name, seed)
        except ProblemError as err:
            raise sec.error(str(err)) from None
        return name, _float_array(sec, "x", x), _float_array(sec, "y", y)
    if given[0] == "path":
        path = _path(sec, "path", base_dir)
        arrays = _read_npz(sec, "path", path)
        for key in ("x", "y"):
            if key not in arrays:
                raise sec.error(f"path {str(path)!r} has no array {key!r} (it needs x and y)")
        x = _float_array(sec, "x", arrays["x"], images=images)
        return str(path), x, _float_array(sec, "y", arrays["y"])
    x = _float_array(sec, "x", sec.get("x", "an array"), images=images)
    return "inline", x, _float_array(sec, "y", sec.get("y", "an array"))


def _check_x(sec: _Section, model: ModelSpec, x: np.ndarray) -> np.ndarray:
    if x.ndim == 0 or x.shape[0] == 0:
        raise sec.error(f"empty data: x has no rows (shape {x.shape})")
    if model.kind == "jax" and x.ndim < 1:
        raise sec.error(f"x must have the samples first, shape (n, ...), got {x.shape}")
    if model.kind in ("fc", "diagonal") and x.ndim != 2:
        raise sec.error(f"x must be 2-d (n, d) for kind = {model.kind!r}, got shape {x.shape}")
    if model.kind == "cnn" and x.ndim not in (3, 4):
        raise sec.error(f"x must be (n, H, W) or (n, C, H, W) for kind = 'cnn', got {x.shape}")
    if 0 in x.shape:
        raise sec.error(f"empty data: x has shape {x.shape}")
    if model.kind == "cnn" and min(x.shape[-2:]) < model.kernel:
        raise sec.error(
            f"kernel {model.kernel} is larger than the {x.shape[-2]}x{x.shape[-1]} images of x "
            "(no padding: the kernel must fit inside the image)"
        )
    return x


def _check_y(sec: _Section, model: ModelSpec, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] == 0:
        raise sec.error(f"y must have shape (n,) or (n, d_out), got {y.shape}")
    if y.shape[0] != n:
        raise sec.error(f"y has {y.shape[0]} rows but x has {n}")
    if model.kind in ("cnn", "diagonal") and y.shape[1] != 1:
        raise sec.error(
            f"y must be a scalar target (n,) or (n, 1) for kind = {model.kind!r}, got {y.shape}"
        )
    return y


def _parse_init(sec: _Section, names: Sequence[str], base_dir: str | Path) -> InitSpec:
    """Per-leaf stds (docs/problem-files.md#init): ``scale`` for every leaf, a ``scales``
    array (built-in kinds, one per layer) or table ``{leaf = std}``, or ``exponents``
    ``{leaf = γ}`` with ``base`` ``{leaf = b}``: ``std = b·scale^γ`` (γ = 1, b = 1 when
    a leaf is not named)."""
    sec.check_keys(INIT_KEYS)
    scales_value = sec.table.get("scales")
    scales_table = isinstance(scales_value, Mapping)
    if sec.has("scales") and sec.has("exponents"):
        raise sec.error("give scales or exponents (with base), not both")
    if sec.has("base") and not sec.has("exponents"):
        raise sec.error("base goes with exponents (std = base·scale^exponent)")
    if sec.has("scale") and sec.has("scales") and not scales_table:
        raise sec.error("give scale or scales, not both")
    scale = sec.positive("scale", sec.get("scale", "a number", DEFAULT_SCALE))
    exponents = None
    if sec.has("scales") and not scales_table:
        items = sec.sequence("scales", len(names), "a number", per="weight layer")
        scales = tuple(sec.positive(f"scales[{i}]", s) for i, s in enumerate(items))
    elif scales_table:
        table = _leaf_table(sec, "scales", names, "a number")
        scales = tuple(
            sec.positive(f"scales.{n}", table[n]) if n in table else scale for n in names
        )
    elif sec.has("exponents"):
        gammas = _leaf_table(sec, "exponents", names, "an integer")
        bases = _leaf_table(sec, "base", names, "a number") if sec.has("base") else {}
        exponents = tuple(sec.at_least(f"exponents.{n}", gammas.get(n, 1), 0) for n in names)
        base = tuple(sec.positive(f"base.{n}", bases.get(n, 1.0)) for n in names)
        if all(g == 0 for g in exponents):
            raise sec.error("every exponent is 0: at least one leaf must be small (exponent >= 1)")
        scales = tuple(b * scale**g for b, g in zip(base, exponents, strict=True))
    else:
        scales = (scale,) * len(names)
    path = None
    if sec.has("path"):
        path = str(_path(sec, "path", base_dir))
    return InitSpec(scales, sec.seed(), path, scale=scale, exponents=exponents)


def _leaf_table(sec: _Section, key: str, names: Sequence[str], type_name: str) -> dict:
    """The table ``key`` ``{leaf = value}``; every key must name a leaf."""
    table = sec.get(key, "a table")
    for leaf, value in table.items():
        if leaf not in names:
            raise sec.error(
                f"{key} names {leaf!r}, which is not a parameter leaf (leaves: {', '.join(names)})"
            )
        sec.typed(f"{key}.{leaf}", value, type_name)
    return {k: (int(v) if type_name == "an integer" else float(v)) for k, v in table.items()}


def _parse_train(sec: _Section) -> TrainSpec:
    sec.check_keys(TRAIN_KEYS)
    defaults = TrainSpec()
    return TrainSpec(
        optimizer=sec.choice("optimizer", OPTIMIZERS, defaults.optimizer),
        lr=sec.positive("lr", sec.get("lr", "a number", defaults.lr)),
        steps=sec.at_least("steps", sec.get("steps", "an integer", defaults.steps), 1),
    )


def _load_init_arrays(problem: Problem, shapes: list[tuple[int, ...]]) -> tuple[np.ndarray, ...]:
    """The leaves (``W1..WL`` or a user model's leaf names) from ``init.path``, each
    checked for name, shape and finiteness."""
    sec = _Section(problem.source, "init", {})
    path = Path(problem.init.path)
    arrays = _read_npz(sec, "path", path)
    names = list(problem.leaf_names())
    shown = f"path {str(path)!r}"
    for name in arrays:
        if problem.user is None and re.fullmatch(r"W\d+", name) and name not in names:
            raise sec.error(f"{shown} has array {name!r} but depth is {len(shapes)}")
    weights = []
    for name, shape in zip(names, shapes, strict=True):
        if name not in arrays:
            raise sec.error(f"{shown} has no array {name!r} (it needs {names[0]}..{names[-1]})")
        weight = _float_array(sec, f"{shown} array {name!r}", arrays[name])
        if weight.shape != shape:
            raise sec.error(f"{shown} array {name!r} has shape {weight.shape}, expected {shape}")
        _check_finite(sec, f"{shown} array {name!r}", weight)
        weights.append(np.array(weight))  # writable copy for the caller
    return tuple(weights)


def _merge_sections(raw: Mapping[str, Any], changes: Mapping[str, Mapping]) -> dict[str, Any]:
    """``raw`` with the keys of ``changes`` set (``None`` removes), dropping alternatives."""
    merged = copy.deepcopy(dict(raw))
    for name, change in changes.items():
        section = dict(merged.get(name, {}))
        alternatives = _ALTERNATIVES.get(name, ())
        for chosen in alternatives:
            if any(key in change for key in chosen):
                for other in alternatives:
                    if other is not chosen:
                        for key in other:
                            section.pop(key, None)
        for key, value in change.items():
            if value is None:
                section.pop(key, None)
            else:
                section[key] = value
        merged[name] = section
    return merged
