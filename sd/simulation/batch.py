"""Run a batch of constant sets through one function.

Calibration, profiles and counterfactuals all evaluate many parameter vectors;
they do it through :func:`simulate_batch`, so the engine is chosen in one
place: the fast ensemble engine (``sd.simulation.ensemble.run_many``) when it is
installed and accepts the model, else a loop of isolated PySD runs.
"""
from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import SdRuntimeError
from ..model.model import Model
from .pysd_backend import run as run_pysd
from ..scenarios import Scenario


class BatchResult:
    """Saved times, one (n_runs, T) array per variable, and failed runs.

    ``failed`` maps a run index to the reason it produced no finite result;
    those rows of ``series`` are NaN and must never be used as a fit.
    """

    def __init__(self, times, series, failed, engine="pysd"):
        self.engine = engine
        self.times = np.asarray(times, dtype=float)
        self.series = series
        self.failed = failed


def simulate_batch(model: Model, rows: Sequence[Mapping[str, float]],
                   variables: Sequence[str], engine: str = "auto") -> BatchResult:
    """Simulate every constant set in ``rows`` and keep ``variables``.

    Parameters
    ----------
    model : Model
    rows : sequence of mapping
        Vensim constant name -> value, one mapping per run (validated names).
    variables : sequence of str
        Vensim names of the variables to return.
    engine : {"auto", "fast", "pysd"}
        ``auto``: the fast engine where it supports the model, else PySD.

    Returns
    -------
    BatchResult
        ``engine`` says which engine ran the batch.
    """
    if engine != "pysd" and model.sha256 not in _DISABLED:
        fast = _fast_engine()
        if fast is not None:
            try:
                return _run_fast(fast, model, rows, variables)
            except Exception as exc:  # noqa: BLE001 - fall back, but say so once
                if engine == "fast":
                    raise SdRuntimeError(f"the fast engine cannot run {model.path.name}: "
                                         f"{exc}") from exc
                warnings.warn(f"fast engine failed on {model.path.name} ({exc}); using PySD",
                              stacklevel=2)
                _DISABLED.add(model.sha256)
    return _run_pysd(model, rows, variables)


#: Models the fast engine refused in this process (so it is not retried per batch).
_DISABLED: set[str] = set()


def _fast_engine():
    """``sd.simulation.ensemble.run_many``, or None where the engine cannot be imported."""
    try:
        from .ensemble import run_many
    except ImportError:
        return None
    return run_many


def _run_fast(run_many, model, rows, variables) -> BatchResult:
    # A frame needs one value per column in every row: run each set of keys
    # as its own frame (counterfactuals override different constants).
    groups: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(tuple(sorted(row)), []).append(i)
    times, series = None, {}
    for keys, idx in groups.items():
        frame = pd.DataFrame([[rows[i][k] for k in keys] for i in idx], columns=list(keys)) \
            if keys else None
        ds = run_many(model, frame if frame is not None else pd.DataFrame(index=range(len(idx))),
                      variables=list(variables))
        times = np.asarray(ds["time"].values, dtype=float)
        for v in variables:
            arr = series.setdefault(v, np.full((len(rows), len(times)), np.nan))
            arr[idx] = np.asarray(ds[v].transpose("run", "time").values, dtype=float)
    failed = {}
    for v, arr in series.items():
        for i in np.flatnonzero(~np.isfinite(arr).all(axis=1)):
            j = int(np.argmax(~np.isfinite(arr[i])))
            failed.setdefault(int(i), f"{v!r} is {arr[i, j]} at time {times[j]:g} "
                                      f"(fast engine)")
    return BatchResult(times, series, failed, engine="fast")


def _run_pysd(model, rows, variables) -> BatchResult:
    times, series, failed = None, {v: [] for v in variables}, {}
    for i, row in enumerate(rows):
        try:
            ds = run_pysd(model, Scenario(name=f"run {i}", constants=dict(row)),
                          variables=variables)
        except SdRuntimeError as exc:
            failed[i] = str(exc)
            ds = None
        if ds is not None and times is None:
            times = np.asarray(ds["time"].values, dtype=float)
        for v in variables:
            series[v].append(None if ds is None else np.asarray(ds[v].values, dtype=float))
    if times is None:
        raise SdRuntimeError("every run of the batch failed: " + next(iter(failed.values())))
    nan_row = np.full(len(times), np.nan)
    out = {v: np.vstack([nan_row if a is None else a for a in arrs]) for v, arrs in series.items()}
    return BatchResult(times, out, failed)
