"""The result store of a sweep: an xarray Dataset persisted as a zarr directory, point by point.

Layout (one store per sweep, at ``--out``; docs/commands.md#phase-diagram)::

    dims       the sweep's dims, as declared by its science module (:class:`~.spec.Dim`)
    fields     one variable per declared result field (:class:`~.spec.Field`, float64 or
               int64; NaN or -1 until known); a number a result adds later becomes a new
               float variable on first sight
    status     int8, a :class:`~effdyn.results.Result` code: PENDING, COMPLETED or FAILED
    error      string: the failure's message ('' when none)
    attrs      effdyn_sweep (the spec as JSON: kind, dims with values and dtypes, fields,
               options), effdyn_problem (what else defines the results, as JSON),
               effdyn_result_codes (``effdyn.results.NAME_TABLE``: {"10": "pending", ...}),
               effdyn_store_version

The store is self-describing: ``ds.attrs["effdyn_result_codes"][str(int(ds.status[i]))]``
names a status (docs/results.md).

Why it survives a kill at any moment:

- the store is created in a hidden sibling folder and renamed into place, so a half-created
  store never exists under ``--out``;
- zarr's local store (zarr >= 3.1.3) writes every chunk to a temporary file and renames it
  over the old one, so a chunk is either the old one or the new one;
- a point's values (and error) are written first and its ``status`` last: a point whose
  values were written but not its status still reads as pending (or failed) and is simply
  computed again. The science chunks its outer dims one value at a time
  (:attr:`~.spec.Dim.chunk`), so a write touches one small chunk per variable.

There is one writer (the process running the sweep; Dask workers return results to it).

    >>> ds = open_store("sweep.zarr")                                     # doctest: +SKIP
    >>> ds.where(ds.status == Result.COMPLETED).mean("seed")              # doctest: +SKIP
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
from effdyn.results import NAME_TABLE, Result

from .spec import SweepSpec, one_line

STORE_VERSION = 2
"""2: Result codes in ``status`` and the name table in the attributes (1: codes 0/1/2)."""
_SPEC_ATTR, _PROBLEM_ATTR, _VERSION_ATTR = "effdyn_sweep", "effdyn_problem", "effdyn_store_version"
_CODES_ATTR = "effdyn_result_codes"
_BOOKKEEPING = ("status", "error")
STATUSES = (Result.PENDING, Result.COMPLETED, Result.FAILED)
"""The codes a point's ``status`` takes."""


def code_table() -> dict[str, str]:
    """``NAME_TABLE`` with string keys (JSON attributes have string keys)."""
    return {str(code): name for code, name in NAME_TABLE.items()}


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
                one_line(f"{path}: cannot be opened as a zarr store ({err})")
            ) from None
        if _SPEC_ATTR not in attrs:
            raise EffdynError(f"{path}: is a zarr store but not an effdyn sweep store")
        version = attrs.get(_VERSION_ATTR)
        if version == 1 or (version == STORE_VERSION and _CODES_ATTR not in attrs):
            raise EffdynError(
                f"{path}: written by an older effdyn (status codes 0/1/2, no result code "
                "table); rerun the sweep into a new store"
            )
        if version != STORE_VERSION:
            raise EffdynError(
                f"{path}: store version {version!r} is not {STORE_VERSION}; "
                "rerun the sweep into a new store"
            )
        spec = SweepSpec.from_dict(json.loads(attrs[_SPEC_ATTR]), source=str(path))
        missing = [name for name in _BOOKKEEPING if name not in group.array_keys()]
        if missing:
            raise EffdynError(f"{path}: damaged sweep store (no variable {missing[0]!r})")
        return cls(path, spec, group)

    # -- reading --------------------------------------------------------------------------

    def status(self) -> np.ndarray:
        """The status grid (``spec.shape``) of :class:`~effdyn.results.Result` codes:
        ``PENDING``, ``COMPLETED`` or ``FAILED``."""
        return np.asarray(self._arrays["status"][...])

    def counts(self) -> dict[str, int]:
        """Points per status, by the codes' JSON names: ``pending``, ``completed``, ``failed``."""
        status = self.status()
        return {code.label: int((status == code).sum()) for code in STATUSES}

    def pending_points(self) -> list[dict]:
        """Points not completed yet (pending or failed), in grid order."""
        status = self.status()
        return [p for p in self.spec.points() if status[self.spec.index(p)] != Result.COMPLETED]

    def dataset(self):
        """The whole store as an in-memory :class:`xarray.Dataset`."""
        return open_store(self.path)

    def results(self, status: int = Result.COMPLETED) -> list[tuple[dict, dict]]:
        """``(point, result)`` for every point with ``status`` (completed by default), in grid
        order.

        A result holds every result variable (floats; int64 fields as ints) and ``error``
        (``None`` when empty): the dict the science's ``run_points`` returned.
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

    def write(self, point: Mapping[str, Any], result: Mapping[str, Any]) -> Result:
        """Record one point's result: values and error first, ``status`` last.

        ``result["error"]`` (``None`` or a message) decides the status:
        ``Result.COMPLETED`` or ``Result.FAILED``. Numeric fields (``None`` reads as NaN) are
        stored, a new one as a new variable; other values are ignored. Returns the status
        written.
        """
        index = self.spec.index(point)
        error = result.get("error")
        for name, value in result.items():
            if name in ("error", *_BOOKKEEPING, *self.spec.dims) or not _is_numeric(value):
                continue
            if name not in self._arrays:
                self._add_variable(name)
            self._arrays[name][index] = _coerce(value, self._arrays[name].dtype)
        self._arrays["error"][index] = "" if error is None else one_line(error)
        status = Result.COMPLETED if error is None else Result.FAILED
        self._arrays["status"][index] = int(status)
        return status

    def _add_variable(self, name: str) -> None:
        """A new float result variable (NaN everywhere), readable by xarray."""
        spec = self.spec
        self._arrays[name] = self._group.create_array(
            name,
            shape=spec.shape,
            chunks=spec.chunks,
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
    declared = json.loads(ds.attrs[_SPEC_ATTR]).get("fields", [])
    first = [f["name"] for f in declared if f["name"] in ds]
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


def _create(path: Path, spec: SweepSpec, problem: str | None) -> None:
    """Write an empty store in a hidden sibling folder, then rename it to ``path``."""
    import xarray as xr

    shape, dims = spec.shape, spec.dims
    variables = {
        f.name: (dims, np.full(shape, f.fill, dtype=f.dtype))
        for f in spec.fields
        if f.name not in (*_BOOKKEEPING, *dims)
    }
    status_attrs = {  # CF-style flags: the status codes and their names
        "flag_values": [int(code) for code in STATUSES],
        "flag_meanings": " ".join(code.label for code in STATUSES),
    }
    variables["status"] = (dims, np.full(shape, int(Result.PENDING), dtype=np.int8), status_attrs)
    variables["error"] = (dims, np.full(shape, "", dtype=object))
    attrs = {
        _SPEC_ATTR: spec.to_json(),
        _VERSION_ATTR: STORE_VERSION,
        _CODES_ATTR: code_table(),
    }
    if problem is not None:
        attrs[_PROBLEM_ATTR] = problem
    coords = {dim.name: np.asarray(dim.values, dtype=dim.dtype) for dim in spec.grid}
    ds = xr.Dataset(variables, coords=coords, attrs=attrs)
    encoding = {name: {"chunks": spec.chunks} for name in variables}

    import shutil

    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.creating-*"):  # left by a killed creation
        shutil.rmtree(stale, ignore_errors=True)
    staging = path.parent / f".{path.name}.creating-{uuid.uuid4().hex[:8]}"
    try:
        ds.to_zarr(str(staging), mode="w-", consolidated=False, encoding=encoding)
        os.rename(staging, path)  # replaces an empty folder; atomic on one file system
    except OSError as err:
        raise EffdynError(one_line(f"{path}: cannot create the store ({err})")) from None
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
