"""Run a model once or many times: one result shape, one failure policy.

:func:`run` (dims ``time``) and :func:`run_many` (dims ``run``, ``time``)
take a path, a :class:`~sd.model.Model` or a prepared
:class:`~sd.simulation.engines.Simulator` alike, run it on the engine decided
once by :func:`~sd.simulation.engines.prepare`, and return an
``xarray.Dataset`` whose variables carry ``units``, ``comment`` and ``kind``
attributes and whose attributes record the model, its hash, the scenario and
the engine -- on both engines.

A run that produces NaN or infinity has failed: :func:`run` raises
:class:`SdRuntimeError` naming the first variable to go bad and the time;
:func:`run_many` raises the same for the first failed run, or, with
``on_failure="record"``, blanks every value of the failed runs (NaN, so no
partial trajectory is ever used) and lists them (:func:`failed_runs`).
"""
from __future__ import annotations

import itertools
import json
from dataclasses import replace
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .. import _xarray  # noqa: F401 - xarray without dask until dask is used
from .. import provenance
from .._common import time_text
from ..errors import SdInputError, SdRuntimeError, canon
from ..model import Model
from ..model.loading import as_model
from ..model.timing import settings as time_settings
from ..scenarios import Scenario, validate
from . import pysd_backend
from .engines import Simulator, prepare

#: What to do with a run that produces NaN or infinity.
ON_FAILURE = ("raise", "record")


def run(model, scenario: Scenario | None = None, *, variables: Sequence[str] | None = None,
        engine: str = "auto") -> xr.Dataset:
    """Simulate ``scenario`` (default: the model as written) once.

    Parameters
    ----------
    model : str, Path, Model or Simulator
        The Vensim ``.mdl``, loaded or not.
    scenario : Scenario, optional
        Overrides of constants, lookups and time settings.
    variables : sequence of str, optional
        Vensim names to keep (default: every variable).
    engine : {"auto", "fast", "pysd"}
        See :func:`sd.simulation.engines.prepare`.

    Returns
    -------
    xarray.Dataset
        Dimension ``time`` (plus a dimension per subscript range of a
        subscripted variable); one data variable per model variable under its
        Vensim name, with ``units``, ``comment`` and ``kind`` attributes. The
        dataset's attributes record the model file and SHA-256, the scenario,
        its overrides and the engine.

    Raises
    ------
    SdInputError
        A name in the scenario or ``variables`` is not in the model.
    SdRuntimeError
        The simulation produced NaN or infinity, or divided by zero (the
        message names the first variable to go bad and the time).
    """
    # The scenario (and the time settings it gives the model) first: a model that
    # cannot run at all says why, whatever the engine.
    scenario = validate(scenario or Scenario(), _model(model))
    sim = prepare(model, engine, runs=1)
    ds = _single(sim, scenario, _variables(sim.model, variables))
    if first_failure(ds, sim.model) is not None:
        raise SdRuntimeError(f"{sim.model.path.name}, scenario {scenario.name!r}: "
                             f"{_diagnose(sim, scenario)}")
    return _annotate(ds, sim, scenario)


def run_many(model, samples: pd.DataFrame, *, scenario: Scenario | None = None,
             variables: Sequence[str] | None = None, times=None, engine: str = "auto",
             on_failure: str = "raise", forced=None) -> xr.Dataset:
    """Run ``model`` once per row of ``samples``.

    Parameters
    ----------
    model : str, Path, Model or Simulator
    samples : pandas.DataFrame
        One row per run; columns are the model's constants (Vensim names,
        any case; ``Name[element]`` sets one element of a subscripted
        constant on the fast engine). A frame with an index but no columns
        runs the scenario once per row.
    scenario : Scenario, optional
        Applied to every run before the row's values (which win).
    variables : sequence of str, optional
        Vensim names to keep (default: all) -- keeps memory bounded.
    times : sequence of float, optional
        Saved times to keep (default: all).
    engine : {"auto", "fast", "pysd"}
    on_failure : {"raise", "record"}
        ``raise``: :class:`SdRuntimeError` for the first run producing NaN or
        infinity. ``record``: that run's values are all NaN and
        :func:`failed_runs` says why.
    forced : mapping, optional
        ``{variable: (times, values)}`` with ``values`` of shape (runs,
        len(times)): each run holds the variable on its own path (linear
        interpolation in time; a stock is not integrated), e.g. a mediator
        held on its reference path. PySD: ``params={name: pandas.Series}``;
        the fast engine: a compiled variant reading a per-run table. A
        subscripted variable is held element by element (``"Name[a,b]"``,
        every element given; fast engine only). Runs one by one.

    Returns
    -------
    xarray.Dataset
        Dims ``run`` (= ``samples.index``) and ``time``; variables and
        attributes as :func:`run`; the sampled constants as coordinates
        along ``run``.
    """
    if on_failure not in ON_FAILURE:
        raise SdInputError(f"on_failure={on_failure!r}: choose one of {', '.join(ON_FAILURE)}.")
    scenario = validate(scenario or Scenario(), _model(model))
    sim = prepare(model, engine)
    samples = _samples(sim, samples)
    names = _variables(sim.model, variables)
    if forced:
        ds = _forced_many(sim, samples, scenario, names, times, _forced(sim, forced, len(samples)))
    elif sim.engine == "fast":
        ds = _fast_many(sim, samples, scenario, names, times)
    else:
        ds = _pysd_many(sim, samples, scenario, names, times)
    ds = _settle_failures(ds, sim, samples, scenario, on_failure)
    return _annotate(ds, sim, scenario)


def failed_runs(ds: xr.Dataset) -> dict:
    """``{run label: why}`` of the runs :func:`run_many` recorded as failed."""
    return {k: v for k, v in json.loads(ds.attrs.get("failed_runs", "[]"))}


def read_at(model, times) -> tuple[dict, list[float] | None]:
    """How to save runs whose values are read at ``times`` (e.g. data times).

    Values between two saved times are read by linear interpolation
    (:mod:`sd.outcomes.metrics`). Between two points of the SAVEPER grid that
    is an approximation, often far coarser than the data's errors (a yearly
    grid read at 2.3 misses the curvature of a diffusion by several per cent),
    so every time off the save grid is read between the two integration steps
    around it instead: the model's own values, interpolated over one TIME STEP.

    Parameters
    ----------
    model : Model or Simulator
    times : iterable of float
        Times within the run.

    Returns
    -------
    (time, saved) : (dict, list of float or None)
        ``({}, None)`` when every time is a saved time; else the time settings
        that save every step (``{"saveper": TIME STEP}``) and the saved times to
        keep (the save grid and the steps around each time), for
        :func:`run_many`'s ``scenario`` and ``times``.
    """
    from ..engine.runtime import time_grid

    s = time_settings(_model(model))
    steps, saved, labels = time_grid(s.initial_time, s.final_time, s.time_step, s.saveper)
    keep = saved.copy()
    for t in np.atleast_1d(np.asarray(list(times), dtype=float)):
        tol = 1e-9 * max(1.0, abs(t))
        if np.any(saved & (np.abs(labels - t) <= tol)):
            continue
        i = int(np.clip(np.searchsorted(steps, t, side="right") - 1, 0, len(steps) - 1))
        keep[i] = True
        keep[min(i + 1, len(steps) - 1)] = True
    if np.array_equal(keep, saved):
        return {}, None
    return {"saveper": s.time_step}, [float(x) for x in labels[keep]]


# -- the fast engine --------------------------------------------------------------------
def _single(sim: Simulator, scenario: Scenario, names) -> xr.Dataset:
    if sim.engine == "fast":
        return _fast_single(sim, scenario, names)
    return pysd_backend.run(sim.model, scenario, variables=names)


def _fast_single(sim: Simulator, scenario: Scenario, names) -> xr.Dataset:
    from ..engine import run_compiled

    consts = dict(scenario.constants)
    samples = pd.DataFrame([consts]) if consts else None
    ds = run_compiled(sim.compiled, samples, names, None, dict(scenario.lookups) or None,
                      dict(scenario.time) or None)
    ds = ds.isel(run=0).drop_vars("run")
    # One run: an overridden constant is an ordinary (constant) time series again.
    for name in consts:
        value = ds.coords[name]
        ds = ds.drop_vars(name)
        if names is None or name in names:
            ds[name] = value.broadcast_like(ds["time"]).astype(float)
    return ds


def _fast_many(sim, samples, scenario, names, times) -> xr.Dataset:
    from ..engine import run_compiled

    # The scenario's constants go in as columns; a sampled value wins.
    fixed = {k: v for k, v in scenario.constants.items()
             if canon(k) not in {canon(c) for c in samples.columns}}
    frame = samples.assign(**fixed) if fixed else samples
    ds = run_compiled(sim.compiled, frame, names, times, dict(scenario.lookups) or None,
                      dict(scenario.time) or None)
    return ds.drop_vars([k for k in fixed if k in ds.coords])


def _forced(sim: Simulator, forced, n: int) -> dict:
    """``forced`` checked: Vensim name (``Name[a,b]`` for one element of a
    subscripted variable) -> (times, values (n, len(times)))."""
    out = {}
    for name, pair in dict(forced).items():
        base, _, elements = str(name).partition("[")
        var = sim.model.variable(base, kinds=("stock", "flow", "auxiliary", "constant"),
                                 what="variable to hold on a path", where=" (forced)")
        if var.subscripts and not elements.endswith("]"):
            raise SdInputError(f"forced {var.name!r}: a subscripted variable is held element by "
                               f"element, e.g. '{var.name}[{', '.join(var.subscripts)}]' with "
                               "element names.")
        if elements and not var.subscripts:
            raise SdInputError(f"forced {name!r}: {var.name!r} has no subscripts.")
        key = var.name + ("[" + ",".join(e.strip() for e in elements[:-1].split(",")) + "]"
                          if elements else "")
        try:
            xs, ys = (np.asarray(v, dtype=float) for v in pair)
        except (TypeError, ValueError):
            raise SdInputError(f"forced {name!r}: expected (times, values).") from None
        ys = np.atleast_2d(ys)
        if xs.ndim != 1 or ys.shape != (n, len(xs)) or not np.isfinite(ys).all() \
                or not np.isfinite(xs).all() or np.any(np.diff(xs) <= 0):
            raise SdInputError(f"forced {name!r}: expected increasing finite times and finite "
                               f"values of shape ({n}, {len(xs)}), got {ys.shape}.")
        out[key] = (xs, ys)
    return out


def _held(sim, cm, forced) -> None:
    """Every element of a subscripted variable held needs its own path."""
    owners = {canon(t[2]) for t in cm.tables}
    given = {canon(k) for k in forced}
    for var in {k.partition("[")[0] for k in forced if "[" in k}:
        missing = sorted(o for o in owners - given if o.startswith(canon(var) + "["))
        if missing:
            raise SdInputError(f"forced {var!r}: every element needs a path; missing "
                               + ", ".join(missing[:5]) + ".")


def _forced_many(sim, samples, scenario, names, times, forced) -> xr.Dataset:
    """One run per row, each holding the ``forced`` variables on its own path."""
    runs = []
    if sim.engine == "fast":
        from ..engine import compile_model, run_compiled

        # numba when it can (the variant is compiled once and its machine code cached by
        # source); the numpy back end for a model too big for numba
        mode = "numpy" if sim.compiled.mode == "numpy" else None
        cm = compile_model(sim.model, mode, forced=tuple({k.partition("[")[0] for k in forced}))
        _held(sim, cm, forced)
    elif any("[" in k for k in forced):
        raise SdInputError("holding an element of a subscripted variable on a path needs the fast "
                           "engine; this model runs on PySD.")
    for i in range(len(samples)):
        paths = {k: (x, y[i]) for k, (x, y) in forced.items()}
        row = samples.iloc[[i]]
        if sim.engine == "fast":
            fixed = {k: v for k, v in scenario.constants.items()
                     if canon(k) not in {canon(c) for c in row.columns}}
            ds = run_compiled(cm, row.assign(**fixed) if fixed else row, names, times,
                              {**scenario.lookups, **paths}, dict(scenario.time) or None)
            runs.append(ds.drop_vars([k for k in fixed if k in ds.coords]))
        else:
            one = scenario.merged(Scenario(name=f"run {i}", constants=row.iloc[0].to_dict(),
                                           lookups={k: (tuple(x), tuple(y))
                                                    for k, (x, y) in paths.items()}))
            try:
                runs.append(pysd_backend.run(sim.model, one, variables=names))
            except SdRuntimeError:
                runs.append(None)
    if sim.engine == "fast":
        ds = xr.concat(runs, dim="run")
        return ds.assign_coords(run=samples.index.to_numpy())
    template = next((r for r in runs if r is not None), None)
    if template is None:
        raise SdRuntimeError(f"{sim.model.path.name}: every run with a forced path failed.")
    ds = pysd_backend.as_runs([pysd_backend.nan_like(template) if r is None else r
                               for r in runs], samples.index)
    ds = ds.drop_vars([c for c in samples.columns if c in ds.data_vars])
    ds = ds.assign_coords({str(c): ("run", samples[c].to_numpy()) for c in samples.columns})
    return _select_times(ds, times)


# -- PySD ---------------------------------------------------------------------------------
def _pysd_many(sim, samples, scenario, names, times) -> xr.Dataset:
    """One isolated PySD run per row, spread over the cores (:mod:`.pool`); a
    run that raises is kept as NaN and recorded, so the failure policy is the
    same as on the fast engine."""
    from .pool import run_scenarios

    scenarios = [scenario.merged(Scenario(name=f"run {label}", constants=row.to_dict()))
                 for label, row in samples.iterrows()]
    runs, errors = [], {}
    for i, result in enumerate(run_scenarios(sim.model, scenarios, names)):
        if isinstance(result, SdRuntimeError):
            runs.append(None)
            errors[i] = str(result)
        else:
            runs.append(result)
    template = next((r for r in runs if r is not None), None)
    if template is None:
        raise SdRuntimeError(f"{sim.model.path.name}: every run failed; first: {errors[0]}")
    runs = [pysd_backend.nan_like(template) if r is None else r for r in runs]
    ds = pysd_backend.as_runs(runs, samples.index)
    ds = ds.drop_vars([c for c in samples.columns if c in ds.data_vars])
    ds = ds.assign_coords({str(c): ("run", samples[c].to_numpy()) for c in samples.columns})
    if errors:
        ds.attrs["pysd_errors"] = json.dumps(sorted(errors.items()))
    return _select_times(ds, times)


def _select_times(ds: xr.Dataset, times) -> xr.Dataset:
    if times is None:
        return ds
    labels = ds["time"].values
    index = []
    for t in np.atleast_1d(np.asarray(times, dtype=float)):
        hit = np.flatnonzero(np.isclose(labels, t, rtol=0, atol=1e-9 * max(1, abs(t))))
        if not len(hit):
            raise SdInputError(f"time {time_text(t)} is not a saved time of the model.")
        index.append(int(hit[0]))
    return ds.isel(time=sorted(set(index)))


# -- names ---------------------------------------------------------------------------------
def _model(model) -> Model:
    """The loaded model of a path, Model or Simulator (a path read once per content)."""
    return model.model if isinstance(model, Simulator) else as_model(model)


def _variables(model: Model, variables) -> list[str] | None:
    if variables is None:
        return None
    return [model.variable(str(v)).name for v in variables]


def _samples(sim: Simulator, samples) -> pd.DataFrame:
    """``samples`` with every column checked and renamed to its Vensim name."""
    if not isinstance(samples, pd.DataFrame):
        raise SdInputError("samples must be a pandas.DataFrame with one row per run.")
    if len(samples) == 0:
        raise SdInputError("samples has no rows: nothing to run.")
    names = {}
    for col in samples.columns:
        base, bracket, rest = str(col).partition("[")
        var = sim.model.variable(base.strip(), kinds=("constant",), what="constant",
                                 where=" (sample column)")
        if bracket and sim.engine != "fast":
            raise SdInputError(f"sample column {col!r}: setting one element of a subscripted "
                               "constant needs the fast engine; sample the whole constant.")
        names[col] = var.name + (bracket + rest if bracket else "")
    if len(set(names.values())) != len(names):
        raise SdInputError(f"samples name a constant twice: {', '.join(map(str, samples.columns))}.")
    return samples.rename(columns=names)


# -- failures --------------------------------------------------------------------------------
def first_failure(ds: xr.Dataset, model: Model) -> str | None:
    """"'X' is nan at time T ..." for the first variable of one run to go bad, or None.

    Of the variables first non-finite at the same time, the one whose
    same-step inputs are all still finite is named: the root, not one of its
    consequences.
    """
    first = {}
    for name in ds.data_vars:
        values, bad = _bad(model, name, ds, "time")
        values, bad = values.reshape(len(values), -1), bad.reshape(len(values), -1)
        rows = np.flatnonzero(bad.any(axis=1))
        if len(rows):
            first[name] = (int(rows[0]), values[rows[0]][bad[rows[0]]][0])
    if not first:
        return None
    step = min(i for i, _ in first.values())
    candidates = [n for n, (i, _) in first.items() if i == step]
    root = next((n for n in candidates
                 if not set(model.dependencies.get(n, ())) & set(candidates)), candidates[0])
    t = ds["time"].values[step]
    return (f"{root!r} is {first[root][1]} at time {time_text(t)}. Look for a division by zero "
            "or an overflow in that equation (XIDZ/ZIDZ guard divisions), or a TIME STEP too "
            "large for the fastest loop.")


def _bad(model: Model, name, ds: xr.Dataset, lead: str):
    """``(values, bad)`` of variable ``name`` of ``ds`` with ``lead`` first (then
    ``time``): bad is NaN or infinity where the model computes a number; NaN is
    expected in the elements a variable does not define and in a variable that
    may be Vensim's :NA: (:mod:`sd.model.missing`)."""
    # the bare Variable: a DataArray's transpose copies every run coordinate
    var = ds.variables[name]
    head = [d for d in dict.fromkeys((lead, "time")) if d in var.dims]
    var = var.transpose(*head, ...)
    values = np.asarray(var.values, dtype=float)
    bad = np.isinf(values) if name in model.missing.na else ~np.isfinite(values)
    extra = var.dims[len(head):]
    if extra and name in model.missing.defined:
        hole = model.missing.undefined(name, [list(ds[d].values) if d in ds.coords
                                              else list(range(var.sizes[d])) for d in extra])
        if hole is not None:
            bad &= ~hole
    return values, bad


def _diagnose(sim: Simulator, scenario: Scenario) -> str:
    """Why a run failed, from a rerun that saves every integration step and
    every variable: between two saved times, the variable that went bad first
    has usually dragged the stocks and the rest of the model along."""
    step = time_settings(sim.model, scenario.time, scenario.constants).time_step
    ds = _single(sim, replace(scenario, time={**scenario.time, "saveper": step}), None)
    return first_failure(ds, sim.model) or "the run produced NaN or infinity."


def _settle_failures(ds, sim: Simulator, samples: pd.DataFrame, scenario: Scenario,
                     on_failure: str) -> xr.Dataset:
    errors = {int(k): v for k, v in json.loads(ds.attrs.pop("pysd_errors", "[]"))}
    bad_rows = np.zeros(ds.sizes["run"], dtype=bool)
    for name in ds.data_vars:
        bad = _bad(sim.model, name, ds, "run")[1]
        bad_rows |= bad.reshape(len(bad), -1).any(axis=1)
    failures = []
    for i in np.flatnonzero(bad_rows):
        label = ds["run"].values[i]
        if on_failure == "raise":     # the one message shown: worth a diagnostic rerun
            one = scenario.merged(Scenario(name=f"run {label}", constants=samples.iloc[i].to_dict()))
            why = errors.get(int(i)) or _diagnose(sim, one)
        else:
            why = errors.get(int(i)) or first_failure(ds.isel(run=i), sim.model)
        params = ", ".join(f"{c} = {samples.iloc[i][c]:.10g}" for c in samples.columns)
        failures.append((_json_label(label), f"run {label}" + (f" ({params})" if params else "")
                         + f": {why}"))
        if on_failure == "raise":
            raise SdRuntimeError(f"{sim.model.path.name}: {failures[0][1]}"
                                 + (f" ({int(bad_rows.sum())} runs failed.)"
                                    if bad_rows.sum() > 1 else ""))
    if failures:
        blank = xr.DataArray(~bad_rows, dims="run")
        ds = ds.where(blank)
        ds.attrs["failed_runs"] = json.dumps(failures)
    return ds


def _json_label(label):
    return label.item() if hasattr(label, "item") else label


# -- attributes --------------------------------------------------------------------------------
#: Variable attribute: JSON list of the element combinations a partly defined
#: variable does not define (NaN in the array; no column in results.csv).
UNDEFINED_ATTR = "undefined_elements"


def _annotate(ds: xr.Dataset, sim: Simulator, scenario: Scenario) -> xr.Dataset:
    """Units, comment and kind on every variable (and the elements it does not
    define); model, scenario, engine and the full provenance record (JSON,
    attribute ``provenance``) on the dataset."""
    for name, var in ds.variables.items():
        info = sim.model.variables.get(name)
        if info is not None and name not in ds.dims:
            var.attrs.update({"units": info.units, "comment": info.comment, "kind": info.kind})
            extra = [d for d in var.dims if d not in ("run", "time")]
            coords = [list(map(str, ds[d].values)) for d in extra]
            hole = sim.model.missing.undefined(name, coords) if extra else None
            if hole is not None:
                cells = [list(c) for c, h in zip(itertools.product(*coords), hole.ravel()) if h]
                var.attrs[UNDEFINED_ATTR] = json.dumps(cells)
    record = provenance.record(
        sim.model, scenario=scenario.name, scenario_source=scenario.source,
        constants=dict(scenario.constants),
        lookups={k: {"x": list(x), "y": list(y)} for k, (x, y) in scenario.lookups.items()},
        time=dict(scenario.time), **sim.provenance())
    ds.attrs.update({
        "model_file": str(sim.model.path),
        "model_sha256": sim.model.sha256,
        "scenario": scenario.name,
        "scenario_source": scenario.source,
        "overrides": _describe_overrides(scenario),
        **sim.provenance(),
        "provenance": json.dumps(record),
    })
    return ds


def _describe_overrides(scenario: Scenario) -> str:
    parts = [f"{k}={v:g}" for k, v in scenario.constants.items()]
    parts += [f"{k}=lookup({len(x)} points)" for k, (x, _) in scenario.lookups.items()]
    parts += [f"{k}={v:g}" for k, v in scenario.time.items()]
    return "; ".join(parts)
