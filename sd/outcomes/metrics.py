"""Outcome metrics: one number per run, computed on an ensemble Dataset.

A metric reduces one variable's trajectory (dims ``run``, ``time``) to one
value per run. The kinds, and the keys each takes in a spec's ``[metrics]``
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
=============  ===================  ===========================================

``start`` and ``end`` are optional and default to the whole run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..errors import SdInputError, suggest
from ..errors import number as _number

#: Metric kind -> the optional/required keys besides ``variable``.
KINDS = {
    "at": ("time",),
    "final": (),
    "max": ("start", "end"),
    "min": ("start", "end"),
    "time_of_max": ("start", "end"),
    "time_of_min": ("start", "end"),
    "mean": ("start", "end"),
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
            return f"{self.variable} at {self.time:g}"
        window = ""
        if self.start is not None or self.end is not None:
            lo = "start" if self.start is None else f"{self.start:g}"
            hi = "end" if self.end is None else f"{self.end:g}"
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
        Dims ``run`` and ``time`` (a single run without ``run`` also works).
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
    da = ds[m.variable]
    times = ds["time"].values
    if m.kind == "at":
        _inside(m.time, times, m)
        out = da.interp(time=m.time)
    elif m.kind == "final":
        out = da.isel(time=-1)
    else:
        da = _window(da, times, m)
        if m.kind in ("max", "min"):
            out = getattr(da, m.kind)("time")
        elif m.kind == "mean":
            t = da["time"].values
            out = da.integrate("time") / (t[-1] - t[0]) if len(t) > 1 else da.isel(time=0)
        else:
            # argmax returns the first occurrence: the time the peak is reached.
            idx = getattr(da, "argmax" if m.kind == "time_of_max" else "argmin")("time")
            out = xr.DataArray(da["time"].values[idx.values], dims=idx.dims, coords=idx.coords)
    out = out.drop_vars("time", errors="ignore")
    out.attrs = {"description": m.describe(),
                 "units": "" if m.kind.startswith("time_of") else ds[m.variable].attrs.get("units", "")}
    return out


def _inside(t: float, times: np.ndarray, m: Metric) -> None:
    if not times[0] <= t <= times[-1]:
        raise SdInputError(f"metric {m.name!r}: time {t:g} is outside the simulated span "
                           f"[{times[0]:g}, {times[-1]:g}].")


def _window(da: xr.DataArray, times: np.ndarray, m: Metric) -> xr.DataArray:
    lo = times[0] if m.start is None else m.start
    hi = times[-1] if m.end is None else m.end
    for t in (lo, hi):
        _inside(t, times, m)
    sub = da.sel(time=slice(lo, hi))
    if sub.sizes["time"] == 0:
        raise SdInputError(f"metric {m.name!r}: no saved time in [{lo:g}, {hi:g}].")
    return sub
