"""Many runs of one model: the fast engine where it applies, else PySD.

:func:`run_many` is the entry point for calibration, Monte Carlo and
sensitivity analysis. The fast engine (:mod:`sd.engine`) compiles the model
once per content hash and advances all runs in one call; models it does not
support run in a loop of fresh PySD models (``engine="auto"`` warns).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import SdInputError

ENGINES = ("auto", "fast", "pysd")


def run_many(model, samples: pd.DataFrame, *, variables=None, times=None, lookups=None,
             time=None, engine: str = "auto") -> xr.Dataset:
    """Run ``model`` once per row of ``samples``.

    Parameters
    ----------
    model : str, Path or object with a ``.path`` attribute
        The Vensim ``.mdl`` (e.g. an :class:`sd.model.Model`).
    samples : pandas.DataFrame
        One row per run; columns are the model's constants (Vensim names,
        case-insensitive). An empty frame with an index runs the model as
        written once per row.
    variables : list of str, optional
        Vensim names to keep (default: all) -- keeps memory bounded.
    times : sequence of float, optional
        Times to keep (default: PySD's saving times).
    lookups : dict, optional
        ``{lookup name: (xs, ys)}``, the same for every run.
    time : dict, optional
        ``initial_time``, ``final_time``, ``time_step``, ``saveper`` overrides.
    engine : {"auto", "fast", "pysd"}
        ``auto``: fast engine where supported, else PySD with a warning;
        ``fast`` raises :class:`sd.engine.UnsupportedModel` when refused.

    Returns
    -------
    xarray.Dataset
        Dims ``run`` (= ``samples.index``) and ``time``; one data variable
        per model variable under its Vensim name (subscripted variables get
        their subscript ranges as extra dims on the fast engine, and one
        ``name[element]`` variable per element on PySD); the sampled
        parameters as coordinates along ``run``.

    Raises
    ------
    SdInputError
        Unknown engine, sample column, variable, lookup or time key.
    """
    if engine not in ENGINES:
        raise SdInputError(f"engine={engine!r}: choose one of {', '.join(ENGINES)}.")
    if not isinstance(samples, pd.DataFrame):
        raise SdInputError("samples must be a pandas.DataFrame with one row per run.")
    path = Path(getattr(model, "path", model))
    if engine != "pysd":
        from ..engine import UnsupportedModel, run_fast

        try:
            # a loaded Model is run from its snapshot, not the file as it is now
            return run_fast(model if hasattr(model, "abstract") else path, samples, variables,
                            times, lookups, time)
        except UnsupportedModel as exc:
            if engine == "fast":
                raise
            warnings.warn(f"fast engine refused {path.name} ({exc}); running "
                          f"{len(samples)} PySD runs instead", stacklevel=2)
    return _run_pysd(model, path, samples, variables, times, lookups, time)


def _run_pysd(model, path, samples, variables, times, lookups, time) -> xr.Dataset:
    """One isolated :func:`sd.simulation.pysd_backend.run` per row (a fresh PySD model each, from
    the translation cached by content hash), stacked along ``run``."""
    from ..model.model import Model, load
    from .pysd_backend import run
    from ..scenarios import TIME_KEYS, Scenario

    m = model if isinstance(model, Model) else load(path)
    for key in time or {}:
        if key.lower().replace(" ", "_") not in TIME_KEYS:
            raise SdInputError(f"time setting {key!r} is not one of {', '.join(TIME_KEYS)}.")
    names = {col: m.variable(str(col), kinds=("constant",), what="constant",
                             where=" (sample column)").name for col in samples.columns}
    settings = {k.lower().replace(" ", "_"): float(v) for k, v in (time or {}).items()}
    frames = []
    for i, (_, row) in enumerate(samples.iterrows()):
        scenario = Scenario(name=f"run {i}", constants={names[c]: float(row[c]) for c in names},
                            lookups=dict(lookups or {}), time=settings)
        frames.append(run(m, scenario, variables=variables))
    if not frames:
        raise SdInputError("samples has no rows: nothing to run.")
    labels = frames[0]["time"].values
    keep = np.ones(len(labels), dtype=bool)
    if times is not None:
        keep = np.zeros(len(labels), dtype=bool)
        for t in np.atleast_1d(np.asarray(times, dtype=float)):
            hit = np.flatnonzero(np.isclose(labels, t, rtol=0, atol=1e-9 * max(1, abs(t))))
            if not len(hit):
                raise SdInputError(f"time {t} is not a saved time of the model.")
            keep[hit[0]] = True
    sampled = {name.lower() for name in names.values()}
    cols = [c for c in frames[0].data_vars if c.lower() not in sampled]
    data = {c: (("run", "time"), np.stack([f[c].values[keep] for f in frames])) for c in cols}
    coords = {"run": samples.index.to_numpy(), "time": labels[keep]}
    for col in samples.columns:
        coords[str(col)] = ("run", samples[col].to_numpy())
    return xr.Dataset(data, coords=coords)
