"""Metrics: a trajectory -> a number, the one implementation sd has.

A metric reduces one variable's trajectory to one value per run. Sensitivity
metrics, the key figures of a scenario comparison, the counterfactual
explanation of a fit and every calibration target (:mod:`.targets`) are
computed here. The kinds, and the keys each takes in a spec's ``[metrics]``
table (every kind takes ``variable``):

=============  ===================  ===========================================
kind           keys                 value
=============  ===================  ===========================================
``at``         ``time``             value at ``time`` (linear interpolation)
``final``                           value at the last saved time
``max``        ``start``, ``end``   largest value (optionally in a window)
``min``        ``start``, ``end``   smallest value (optionally in a window)
``time_of_max`` ``start``, ``end``  first time the largest value is reached
``time_of_min`` ``start``, ``end``  first time the smallest value is reached
``mean``       ``start``, ``end``   time-weighted (trapezoid) mean over window
``halving_time`` ``start``, ``end`` time from the largest value until the value
                                    first falls to half of it (the speed of a
                                    collapse); NaN if it never does in the window
=============  ===================  ===========================================

``start`` and ``end`` are optional and default to the whole run. Trajectories
are piecewise linear between saved times: a value between two saved times is
interpolated, and a window's ends are interpolated points of it (so a window
need not fall on saved times, and ``mean`` is exact for the polyline). A run
with any NaN or infinity (a failed run) has NaN for every metric.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from .._common import number as _number
from .._common import time_text
from ..errors import SdInputError, suggest

#: Metric kind -> the optional/required keys besides ``variable``.
KINDS = {
    "at": ("time",),
    "final": (),
    "max": ("start", "end"),
    "min": ("start", "end"),
    "time_of_max": ("start", "end"),
    "time_of_min": ("start", "end"),
    "mean": ("start", "end"),
    "halving_time": ("start", "end"),
}


@dataclass(frozen=True)
class Metric:
    """One outcome metric.

    Attributes
    ----------
    name : str
        Label used in tables and plots.
    variable : str
        Vensim name of the variable it reduces.
    kind : str
        One of :data:`KINDS`.
    time, start, end : float or None
        The time of ``at``; the window of the other kinds.
    """

    name: str
    variable: str
    kind: str
    time: float | None = None
    start: float | None = None
    end: float | None = None

    def describe(self) -> str:
        """``max of Propane Share in [1988, 2000]``, for reports."""
        if self.kind == "at":
            return f"{self.variable} at {time_text(self.time)}"
        window = ""
        if self.start is not None or self.end is not None:
            lo = "start" if self.start is None else time_text(self.start)
            hi = "end" if self.end is None else time_text(self.end)
            window = f" in [{lo}, {hi}]"
        return f"{self.kind.replace('_', ' ')} of {self.variable}{window}"


def make(name: str, table, model, where: str) -> Metric:
    """Build a :class:`Metric` from a spec table, checking names against ``model``.

    Raises
    ------
    SdInputError
        Unknown kind, missing ``variable`` or ``time``, unknown variable
        (with suggestions), keys the kind does not take, a window with
        ``start >= end``.
    """
    if not isinstance(table, dict):
        raise SdInputError(f"{where}: expected a table such as "
                           "{ variable = \"Propane Share\", kind = \"max\" }.")
    kind = str(table.get("kind", ""))
    if kind not in KINDS:
        raise SdInputError(f"{where}: unknown metric kind {table.get('kind')!r}; expected one "
                           f"of {', '.join(KINDS)}." + suggest(kind, KINDS))
    if "variable" not in table:
        raise SdInputError(f"{where}: a metric needs 'variable' (a Vensim name).")
    extra = set(table) - {"kind", "variable", *KINDS[kind]}
    if extra:
        key = sorted(extra)[0]
        allowed = ", ".join(("variable", *KINDS[kind]))
        raise SdInputError(f"{where}: a {kind!r} metric takes {allowed}, not {key!r}.")
    var = model.variable(str(table["variable"]), what="variable", where=f" (in {where})")
    nums = {k: _number(table[k], f"{where}.{k}") for k in KINDS[kind] if k in table}
    if kind == "at" and "time" not in nums:
        raise SdInputError(f"{where}: an 'at' metric needs 'time'.")
    if "start" in nums and "end" in nums and nums["start"] >= nums["end"]:
        raise SdInputError(f"{where}: start must be before end "
                           f"(got {nums['start']:g} >= {nums['end']:g}).")
    return Metric(name=name, variable=var.name, kind=kind, **nums)


def compute(ds: xr.Dataset, metrics: list[Metric]) -> xr.Dataset:
    """Every metric of every run of ``ds``.

    Parameters
    ----------
    ds : xarray.Dataset
        Dims ``run`` and ``time``, or ``time`` only (one run); a subscripted
        variable's extra dims are kept in the result.
    metrics : list of Metric

    Returns
    -------
    xarray.Dataset
        One data variable per metric (its ``name``), dim ``run``.

    Raises
    ------
    SdInputError
        A time or window outside the simulated time span.
    """
    return xr.Dataset({m.name: _one(ds, m) for m in metrics})


def _one(ds: xr.Dataset, m: Metric) -> xr.DataArray:
    da = ds[m.variable].transpose(..., "time")
    rest = da.dims[:-1]
    y = np.asarray(da.values, dtype=float).reshape(-1, da.sizes["time"])
    out = values(m, ds["time"].values, y).reshape(da.shape[:-1])
    units = "" if m.kind.startswith("time_of") else ds[m.variable].attrs.get("units", "")
    coords = {d: da[d] for d in rest if d in da.coords}
    return xr.DataArray(out, dims=rest, coords=coords,
                        attrs={"description": m.describe(), "units": units})


def matrix(ds: xr.Dataset, name: str) -> np.ndarray:
    """The (run, time) values of the scalar variable ``name`` of a batch.

    Read through the bare variable: transposing the DataArray would copy
    every coordinate along ``run`` (each sampled constant is one), which cost
    more than the simulation for batches of a few hundred runs.
    """
    return np.asarray(ds.variables[name].transpose("run", "time").values, dtype=float)


def values(m: Metric, times, y) -> np.ndarray:
    """Metric ``m`` of each row of ``y`` (shape (runs, T)) saved at ``times``."""
    times = np.asarray(times, dtype=float)
    y = np.atleast_2d(np.asarray(y, dtype=float))
    if m.kind == "at":
        _inside(m.time, times, m)
        out = interpolate(y, times, np.array([m.time]))[:, 0]
    elif m.kind == "final":
        out = y[:, -1].copy()
    else:
        out = _windowed(m, times, y)
    out[~np.isfinite(y).all(axis=1)] = np.nan     # a failed run is never summarised
    return out


def _windowed(m: Metric, times, y) -> np.ndarray:
    lo = times[0] if m.start is None else m.start
    hi = times[-1] if m.end is None else m.end
    for t in (lo, hi):
        _inside(t, times, m)
    at = window(times, lo, hi)
    w = interpolate(y, times, at)
    if m.kind == "max":
        return w.max(axis=1)
    if m.kind == "min":
        return w.min(axis=1)
    if m.kind == "mean":
        if hi <= lo:
            return w[:, 0]
        return ((w[:, 1:] + w[:, :-1]) / 2 * np.diff(at)).sum(axis=1) / (hi - lo)
    if m.kind == "halving_time":
        return _halving(at, w)
    # argmax/argmin return the first occurrence: the time the extreme is reached.
    pick = np.argmax if m.kind == "time_of_max" else np.argmin
    return at[pick(np.where(np.isfinite(w), w, 0.0), axis=1)]


def _halving(at: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Time from each row's first maximum until it first falls to half of it
    (between saved times by linear interpolation); NaN if it never does."""
    filled = np.where(np.isfinite(w), w, -np.inf)
    top = np.argmax(filled, axis=1)
    peak = filled[np.arange(len(w)), top]
    after = np.arange(w.shape[1])[None, :] > top[:, None]
    below = after & (w <= peak[:, None] / 2)
    hit = np.argmax(below, axis=1)
    out = np.full(len(w), np.nan)
    ok = below.any(axis=1) & (peak > 0)
    i = np.flatnonzero(ok)
    k = hit[i]
    y0, y1 = w[i, k - 1], w[i, k]
    frac = np.where(y0 != y1, (y0 - peak[i] / 2) / np.where(y0 != y1, y0 - y1, 1.0), 1.0)
    out[i] = at[k - 1] + np.clip(frac, 0.0, 1.0) * (at[k] - at[k - 1]) - at[top[i]]
    return out


def _inside(t: float, times: np.ndarray, m: Metric) -> None:
    if not times[0] - 1e-9 <= t <= times[-1] + 1e-9:
        raise SdInputError(f"metric {m.name!r}: time {time_text(t)} is outside the simulated "
                           f"span [{time_text(times[0])}, {time_text(times[-1])}].")


def window(times, start: float, end: float) -> np.ndarray:
    """The saved times inside ``[start, end]`` plus both ends."""
    inside = times[(times > start) & (times < end)]
    return np.unique(np.concatenate([[start], inside, [end]]))


def interpolate(y, times, at) -> np.ndarray:
    """Linear interpolation of every row of ``y`` at the times ``at``."""
    if len(times) == 1:
        return np.repeat(y[:, :1], len(at), axis=1)
    idx = np.clip(np.searchsorted(times, at, side="right") - 1, 0, len(times) - 2)
    t0, t1 = times[idx], times[idx + 1]
    frac = np.clip((at - t0) / (t1 - t0), 0.0, 1.0)
    return y[:, idx] * (1 - frac) + y[:, idx + 1] * frac
