"""The result store of a sweep: an xarray Dataset persisted as a zarr directory, point by point.

Layout (one store per sweep, at ``--out``)::

    dims       the sweep's exponents (e.g. gamma, gamma_prime), then width and seed
    rd_W1 ...  one float variable per result field (rd_W1, rd_W2[, rd_W3], final_loss_ratio,
    steps      lr; steps is an integer, -1 until known); a field an evaluator adds later
    lr         becomes a new float variable on first sight
    status     int8: 0 pending, 1 done, 2 failed
    error      string: the failure's message ('' when none)
    attrs      effdyn_sweep (the sweep as JSON), effdyn_problem (the problem's tables as
               JSON, without [sweep] and width), effdyn_store_version

Why it survives a kill at any moment:

- the store is created in a hidden sibling folder and renamed into place, so a half-created
  store never exists under ``--out``;
- zarr's local store (zarr >= 3.1.3) writes every chunk to a temporary file and renames it
  over the old one, so a chunk is either the old one or the new one;
- a point's values (and error) are written first and its ``status`` last: a point whose
  values were written but not its status still reads as pending (or failed) and is simply
  computed again. Exponent dimensions are chunked one value at a time (width and seed whole),
  so a write touches one small chunk per variable.

There is one writer (the process running the sweep; Dask workers return results to it).

    >>> ds = open_store("sweep.zarr")                                     # doctest: +SKIP
    >>> ds.rd_W1.where(ds.status == STATUS_DONE).mean("seed")             # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from effdyn.errors import EffdynError

from .spec import DEPTHS, SweepSpec

STATUS_PENDING, STATUS_DONE, STATUS_FAILED = 0, 1, 2
STORE_VERSION = 1
_SPEC_ATTR, _PROBLEM_ATTR, _VERSION_ATTR = "effdyn_sweep", "effdyn_problem", "effdyn_store_version"
_BOOKKEEPING = ("status", "error")


def result_fields(kind: str) -> dict[str, str]:
    """The result variables a store of ``kind`` starts with, and their dtypes."""
    fields = {f"rd_W{l}": "float64" for l in range(1, DEPTHS[kind] + 1)}
    return {**fields, "final_loss_ratio": "float64", "steps": "int64", "lr": "float64"}


def _fill(dtype: str):
    return -1 if dtype == "int64" else np.nan


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class SweepStore:
    """A sweep's zarr store, opened for writing results point by point.

    Open (or create) it with :meth:`open`; read one without a spec with :meth:`read`.
    """

    def __init__(self, path: Path, spec: SweepSpec, group) -> None:
        self.path = path
        self.spec = spec
        self._group = group
        self._arrays = {name: group[name] for name in group.array_keys()}

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, spec: SweepSpec, problem: str | None = None) -> SweepStore:
        """Open the store at ``path`` for ``spec``, creating it when absent (or an empty folder).

        ``problem`` is the fingerprint of the base problem
        (:func:`effdyn.sweeps.spec.problem_fingerprint`). An existing store made for another
        sweep or another problem is refused with a one-line :class:`EffdynError`.
        """
        path = Path(path)
        if path.exists() and not (path.is_dir() and not any(path.iterdir())):
            store = cls.read(path)
            difference = store.spec.difference(spec)
            if difference is not None:
                raise EffdynError(
                    f"{path}: the store holds a different sweep ({difference}); "
                    "give another --out, or delete the store to start over"
                )
            stored = store._group.attrs.get(_PROBLEM_ATTR)
            if problem is not None and stored is not None and stored != problem:
                raise EffdynError(
                    f"{path}: the store holds results of a different problem "
                    f"({_changed_sections(stored, problem)} changed); "
                    "give another --out, or delete the store to start over"
                )
            return store
        _create(path, spec, problem)
        return cls.read(path)

    @classmethod
    def read(cls, path: str | Path) -> SweepStore:
        """Open an existing store; its sweep is taken from the store itself."""
        import zarr

        path = Path(path)
        if not path.exists():
            raise EffdynError(f"{path}: no such store")
        if not (path / "zarr.json").is_file():
            raise EffdynError(f"{path}: exists and is not a sweep store (no zarr.json)")
        try:
            group = zarr.open_group(str(path), mode="r+", use_consolidated=False)
            attrs = dict(group.attrs)
        except Exception as err:  # zarr raises many kinds for a damaged folder
            raise EffdynError(
                _one_line(f"{path}: cannot be opened as a zarr store ({err})")
            ) from None
        if _SPEC_ATTR not in attrs:
            raise EffdynError(f"{path}: is a zarr store but not an effdyn sweep store")
        if attrs.get(_VERSION_ATTR) != STORE_VERSION:
            raise EffdynError(
                f"{path}: store version {attrs.get(_VERSION_ATTR)!r} is not "
                f"{STORE_VERSION}; rerun the sweep into a new store"
            )
        spec = SweepSpec.from_dict(json.loads(attrs[_SPEC_ATTR]), source=str(path))
        missing = [name for name in _BOOKKEEPING if name not in group.array_keys()]
        if missing:
            raise EffdynError(f"{path}: damaged sweep store (no variable {missing[0]!r})")
        return cls(path, spec, group)

    # -- reading --------------------------------------------------------------------------

    def status(self) -> np.ndarray:
        """The status grid (``spec.shape``): 0 pending, 1 done, 2 failed."""
        return np.asarray(self._arrays["status"][...])

    def counts(self) -> dict[str, int]:
        status = self.status()
        return {
            "pending": int((status == STATUS_PENDING).sum()),
            "done": int((status == STATUS_DONE).sum()),
            "failed": int((status == STATUS_FAILED).sum()),
        }

    def pending_points(self) -> list[dict]:
        """Points not done yet (pending or failed), in grid order."""
        status = self.status()
        return [p for p in self.spec.points() if status[self.spec.index(p)] != STATUS_DONE]

    def dataset(self):
        """The whole store as an in-memory :class:`xarray.Dataset`."""
        return open_store(self.path)

    def results(self, status: int = STATUS_DONE) -> list[tuple[dict, dict]]:
        """``(point, result)`` for every point with ``status`` (done by default), grid order.

        A result holds every result variable (floats; ``steps`` an int) and ``error``
        (``None`` when empty), the dict an evaluator returned.
        """
        grids = {name: np.asarray(array[...]) for name, array in self._arrays.items()}
        fields = [name for name in grids if name not in (*_BOOKKEEPING, *self.spec.dims)]
        out = []
        for point in self.spec.points():
            index = self.spec.index(point)
            if grids["status"][index] != status:
                continue
            result: dict[str, Any] = {}
            for name in fields:
                value = grids[name][index].item()
                result[name] = int(value) if grids[name].dtype.kind in "iu" else float(value)
            error = str(grids["error"][index])
            result["error"] = error or None
            out.append((point, result))
        return out

    # -- writing --------------------------------------------------------------------------

    def write(self, point: Mapping[str, Any], result: Mapping[str, Any]) -> int:
        """Record one point's result: values and error first, ``status`` last.

        ``result["error"]`` (``None`` or a message) decides the status: done or failed.
        Numeric fields (``None`` reads as NaN) are stored, a new one as a new variable;
        other values are ignored. Returns the status written.
        """
        index = self.spec.index(point)
        error = result.get("error")
        for name, value in result.items():
            if name in ("error", *_BOOKKEEPING, *self.spec.dims) or not _is_numeric(value):
                continue
            if name not in self._arrays:
                self._add_variable(name)
            self._arrays[name][index] = _coerce(value, self._arrays[name].dtype)
        self._arrays["error"][index] = "" if error is None else _one_line(error)
        status = STATUS_DONE if error is None else STATUS_FAILED
        self._arrays["status"][index] = status
        return status

    def _add_variable(self, name: str) -> None:
        """A new float result variable (NaN everywhere), readable by xarray."""
        spec = self.spec
        self._arrays[name] = self._group.create_array(
            name,
            shape=spec.shape,
            chunks=_chunks(spec),
            dtype="float64",
            fill_value=np.nan,
            dimension_names=spec.dims,
        )

    def __repr__(self) -> str:
        return f"SweepStore({str(self.path)!r}, {self.spec.kind}, {self.counts()})"


def open_store(path: str | Path):
    """A finished or partial sweep store as an in-memory :class:`xarray.Dataset`.

    ``error`` comes back as Python strings (object dtype).
    """
    import xarray as xr

    SweepStore.read(path)  # checks it is a sweep store, with a clear message if not
    ds = xr.open_zarr(str(path), consolidated=False, chunks=None).load()  # numpy, not dask
    ds = ds.assign(error=ds["error"].astype(object))
    first = [name for name in result_fields(json.loads(ds.attrs[_SPEC_ATTR])["kind"]) if name in ds]
    rest = sorted(name for name in ds.data_vars if name not in (*first, *_BOOKKEEPING))
    return ds[[*first, *rest, *_BOOKKEEPING]]  # a stable order, whatever zarr lists first


def _is_numeric(value: Any) -> bool:
    """``None``, a number, or a 0-d array of one (numpy or JAX scalars); not a string."""
    if value is None:
        return True
    if isinstance(value, str | bytes) or np.ndim(value) != 0:
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _coerce(value: Any, dtype) -> Any:
    if value is None:
        return -1 if np.dtype(dtype).kind in "iu" else np.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        return -1 if np.dtype(dtype).kind in "iu" else np.nan
    if np.dtype(dtype).kind in "iu":
        return int(number) if math.isfinite(number) else -1
    return number


def _chunks(spec: SweepSpec) -> tuple[int, ...]:
    """One exponent value per chunk; width and seed whole (a point's write is one small chunk)."""
    return tuple(1 for _ in spec.exponent_names) + (len(spec.widths), len(spec.seeds))


def _create(path: Path, spec: SweepSpec, problem: str | None) -> None:
    """Write an empty store in a hidden sibling folder, then rename it to ``path``."""
    import xarray as xr

    shape, dims = spec.shape, spec.dims
    variables = {
        name: (dims, np.full(shape, _fill(dtype), dtype=dtype))
        for name, dtype in result_fields(spec.kind).items()
    }
    variables["status"] = (dims, np.full(shape, STATUS_PENDING, dtype=np.int8))
    variables["error"] = (dims, np.full(shape, "", dtype=object))
    attrs = {_SPEC_ATTR: spec.to_json(), _VERSION_ATTR: STORE_VERSION}
    if problem is not None:
        attrs[_PROBLEM_ATTR] = problem
    coords = {
        name: np.asarray(values, dtype=np.int64 if name in ("width", "seed") else np.float64)
        for name, values in spec.coords.items()
    }
    ds = xr.Dataset(variables, coords=coords, attrs=attrs)
    encoding = {name: {"chunks": _chunks(spec)} for name in variables}

    import shutil

    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.creating-*"):  # left by a killed creation
        shutil.rmtree(stale, ignore_errors=True)
    staging = path.parent / f".{path.name}.creating-{uuid.uuid4().hex[:8]}"
    try:
        ds.to_zarr(str(staging), mode="w-", consolidated=False, encoding=encoding)
        os.rename(staging, path)  # replaces an empty folder; atomic on one file system
    except OSError as err:
        raise EffdynError(_one_line(f"{path}: cannot create the store ({err})")) from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _changed_sections(stored: str, now: str) -> str:
    try:
        a, b = json.loads(stored), json.loads(now)
    except ValueError:
        return "the problem"
    changed = [f"[{name}]" for name in sorted({*a, *b}) if a.get(name) != b.get(name)]
    return ", ".join(changed) or "the problem"
