"""Vensim functions PySD 3.14 does not implement, as run-time functions of a translation.

:mod:`sd.model.extend` registers them with PySD's builder and makes them importable
from ``pysd.py_backend.functions`` (where the builder's generated code imports
every function from); :mod:`sd.model.verify` allows exactly these names there.
Each takes the vector argument as an ``xarray.DataArray`` whose dimension
``dim[0]`` is the vector (PySD's ``!`` dimension), and returns one value per
remaining coordinate.
"""
from __future__ import annotations

import numpy as np
import xarray as xr


def _without(arr, dim: str):
    """``arr`` without the vector dimension PySD may have broadcast it along
    (its values do not vary along it)."""
    if isinstance(arr, xr.DataArray) and dim in arr.dims:
        return arr.isel({dim: 0}, drop=True)
    return arr


def sd_vector_lookup(vec, x, xmin, xmax, mode, base, dim):
    """VECTOR LOOKUP(vec, x, xmin, xmax, mode): ``vec`` (from its element
    ``base`` on) as the y values of a lookup at n equally spaced x from xmin to
    xmax. Mode 0 holds the end values outside [xmin, xmax] (a normal lookup),
    mode 3 extrapolates the end segments; other modes raise
    ``NotImplementedError`` (refused before a run by :mod:`sd.model.extend`)."""
    axis = dim[0]
    vec = vec.isel({axis: slice(int(base), None)})
    x = _without(x, axis)
    xmin, xmax = float(_without(xmin, axis)), float(_without(xmax, axis))
    n = vec.sizes[axis]
    xs = np.linspace(xmin, xmax, n)
    mode = int(mode)
    if mode not in (0, 3):
        raise NotImplementedError(f"VECTOR LOOKUP mode {mode}")

    def one(xv, ys):
        y = np.interp(xv, xs, ys)
        if mode == 3 and n > 1:
            if xv < xs[0]:
                y = ys[0] + (xv - xs[0]) * (ys[1] - ys[0]) / (xs[1] - xs[0])
            elif xv > xs[-1]:
                y = ys[-1] + (xv - xs[-1]) * (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        return y

    out = xr.apply_ufunc(one, x, vec, input_core_dims=[[], [axis]], vectorize=True)
    return float(out) if not getattr(out, "dims", ()) else out


def sd_vector_elm_map(vec, offset, base, dim):
    """VECTOR ELM MAP(vec[e], offset): the element of ``vec`` ``offset`` places
    after its element ``e`` (position ``base`` along the vector). An offset
    outside the vector gives NaN (a run that uses it fails, naming it)."""
    axis = dim[0]
    offset = _without(offset, axis)
    n = vec.sizes[axis]

    def one(off, values):
        k = int(base) + int(np.floor(off + 1e-9))
        return values[k] if 0 <= k < n else np.nan

    out = xr.apply_ufunc(one, offset, vec, input_core_dims=[[], [axis]], vectorize=True)
    return float(out) if not getattr(out, "dims", ()) else out


#: Name in PySD's functions module -> the function (imported by translations).
RUNTIME = {"sd_vector_lookup": sd_vector_lookup, "sd_vector_elm_map": sd_vector_elm_map}
