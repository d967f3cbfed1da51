"""Run-time helpers called by the generated code, and PySD's time grid.

Every helper copies the formula of its counterpart in
``pysd.py_backend.functions`` / ``lookups`` (same operations in the same
order), so the engine rounds like PySD. Two flavours exist: scalar
functions, compiled with numba when it is importable (one run at a time),
and numpy functions over the run axis (the fallback back end).
"""
from __future__ import annotations

import math

import numpy as np

SMALL_VENSIM = 1e-6   # pysd.py_backend.functions.SMALL_VENSIM
RPREC = 1e-5          # pysd.py_backend.components.Time.rprec


# -- PySD's time grid ---------------------------------------------------------
def time_grid(t0: float, tf: float, dt: float, saveper: float):
    """Integration times and which of them PySD saves, as PySD computes them.

    PySD advances ``time += time_step`` while ``time + time_step*1e-5 <
    final_time`` and saves a time when ``(time - initial_time) % saveper`` is
    within ``time_step*1e-5`` of 0 or of ``saveper``; a SAVEPER that is not a
    multiple of TIME STEP therefore saves only the steps that fall on it.
    The saved times are reported rounded as ``Time.round`` does.

    Returns
    -------
    (times, saved, labels) : ndarray, bool ndarray, ndarray
    """
    if not dt > 0:
        raise ValueError(f"TIME STEP must be positive, got {dt}")
    times = []
    t = t0
    prec = dt * RPREC
    while t + prec < tf:
        times.append(t)
        t = t + dt
    times.append(t)
    times = np.array(times, dtype=float)
    saved = np.zeros(len(times), dtype=bool)
    for i, t in enumerate(times):
        delay = t - t0
        saved[i] = delay % saveper < prec or -delay % saveper < prec
    labels = np.round(times, -int(np.log10(prec)))
    return times, saved, labels


# -- scalar helpers (numba-compiled when available) --------------------------
def _min(a, b):
    # np.minimum: NaN propagates
    if a != a:
        return a
    if b != b:
        return b
    return a if a <= b else b


def _max(a, b):
    if a != a:
        return a
    if b != b:
        return b
    return a if a >= b else b


def _pow(a, b):
    return a ** b


def _log(x, b):
    return np.log(x) / np.log(b)


def _integer(x):
    return float(math.trunc(x))


def _quantum(a, b):
    if b < SMALL_VENSIM:
        return a
    return b * float(math.trunc(a / b))


def _modulo(x, m):
    # quantum inlined: numba helpers do not call each other
    if m < SMALL_VENSIM:
        return x - x
    return x - m * float(math.trunc(x / m))


def _xidz(a, b, x):
    if abs(b) < SMALL_VENSIM:
        return x
    return a / b


def _zidz(a, b):
    if abs(b) < SMALL_VENSIM:
        return 0.0
    return a / b


def _step(t, dt, value, tstep):
    return value * (1.0 if t + dt / 2 > tstep else 0.0)


def _ramp(t, dt, slope, start, finish):
    final = finish if finish <= t or finish != finish else t   # np.minimum
    return (1.0 if t + SMALL_VENSIM > start else 0.0) * slope * (final - start)


def _pulse(t, dt, start, width):
    return 1.0 if start - SMALL_VENSIM <= t < start + width else 0.0


def _pulse_train(t, dt, start, repeat, width, end):
    if repeat == 0:
        return 1.0 if start - SMALL_VENSIM <= t < start + width else 0.0
    if start <= t and t < end:
        return 1.0 if (t - start + SMALL_VENSIM) % repeat < width else 0.0
    return 0.0


def _lookup(LX, LY, off, n, x):
    # xarray's interp (np.interp) with PySD's hold-at-the-ends extrapolation
    if x <= LX[off]:
        return LY[off]
    last = off + n - 1
    if x >= LX[last]:
        return LY[last]
    lo, hi = off, last
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if LX[mid] <= x:
            lo = mid
        else:
            hi = mid
    if LX[lo] == x:
        return LY[lo]
    slope = (LY[hi] - LY[lo]) / (LX[hi] - LX[lo])
    return slope * (x - LX[lo]) + LY[lo]


def _held(LX, LY, off, n, x, forward):
    # a data variable's HOLD BACKWARD (xarray sel method="pad": the last point
    # at or before x) or LOOK FORWARD (method="backfill": the first at or
    # after x), and a lookup's hold_backward; ends held
    if x <= LX[off]:
        return LY[off]
    last = off + n - 1
    if x >= LX[last]:
        return LY[last]
    lo, hi = off, last
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if LX[mid] < x or (LX[mid] == x and not forward):
            lo = mid
        else:
            hi = mid
    return LY[hi] if forward else LY[lo]


def _raw(LX, LY, off, n, x):
    # RAW data: the value at a time in the file, NaN at any other time
    lo, hi = off, off + n - 1
    while lo <= hi:
        mid = (lo + hi) >> 1
        if LX[mid] == x:
            return LY[mid]
        if LX[mid] < x:
            lo = mid + 1
        else:
            hi = mid - 1
    return np.nan


def _extrapolate(LX, LY, off, n, x):
    # XMILE "extrapolate" lookups: linear beyond the ends from the two end points
    last = off + n - 1
    if n > 1 and x > LX[last]:
        k = (LY[last] - LY[last - 1]) / (LX[last] - LX[last - 1])
        return LY[last] + k * (x - LX[last])
    if n > 1 and x < LX[off]:
        k = (LY[off + 1] - LY[off]) / (LX[off + 1] - LX[off])
        return LY[off] + k * (x - LX[off])
    return _lookup(LX, LY, off, n, x)


#: How a table is read (PySD's lookup types and data keywords) -> helper.
TABLE_MODES = {"interpolate": ("_lookup", ""), "hold_backward": ("_held", ", 0.0"),
               "look_forward": ("_held", ", 1.0"), "raw": ("_raw", ""),
               "extrapolate": ("_extrapolate", "")}


# -- stateful updates (keep loops out of the big generated function: numba's
# compile time grows fast with the number of loops in one function) --------
def _smooth_step(s, n, g, T, dt):
    # pysd Smooth.ddt: targets = roll(state); targets[0] = input;
    # (targets - state) * order / smooth_time; state + ddt * dt
    for j in range(n):
        o = s[j]
        s[j] = o + (((g - o) * n) / T) * dt
        g = o


def _delay_step(s, n, g, T, dt):
    # pysd Delay.ddt: outflows = state / delay_time; inflows = roll(outflows)
    for j in range(n):
        o = s[j] / T
        s[j] = s[j] + ((g - o) * n) * dt
        g = o


def _delayn_step(s, tm, n, g, T, dt):
    # pysd DelayN.ddt: times rolled, times[0] = current delay time
    for j in range(n - 1, 0, -1):
        tm[j] = tm[j - 1]
    tm[0] = T
    for j in range(n):
        o = s[j] / tm[j]
        s[j] = s[j] + ((g - o) * n) * dt
        g = o


def _delay_order(order, dt, mindelay):
    # pysd Delay.initialize: int(order), lowered while order*dt > min(delay)
    n = int(order)
    while n * dt > mindelay:
        n -= 1
    return n


SCALAR = ("_smooth_step", "_delay_step", "_delayn_step", "_delay_order",
          "_min", "_max", "_pow", "_log", "_integer", "_quantum", "_modulo", "_xidz",
          "_zidz", "_step", "_ramp", "_pulse", "_pulse_train", "_lookup", "_held", "_raw",
          "_extrapolate")


def numba_helpers() -> dict:
    """The scalar helpers compiled with numba (cached on disk)."""
    import numba

    from . import vector_runtime

    if not _NUMBA:
        g = globals()
        for name in SCALAR:
            # rebound here, so a helper calling another (``_extrapolate`` ->
            # ``_lookup``) calls the compiled one when numba compiles it
            g[name] = _NUMBA[name] = numba.njit(cache=True, nogil=True)(g[name])
        _NUMBA.update(vector_runtime.numba_helpers(numba.njit(cache=True, nogil=True)))
    return dict(_NUMBA)


#: the compiled helpers of this process (compiled lazily, once)
_NUMBA: dict = {}


def python_helpers() -> dict:
    """The scalar helpers as plain Python, for the numba back end's code run
    by CPython (:mod:`.build`, back end ``python``)."""
    from . import vector_runtime

    g = globals()
    out = {name: g[name] for name in SCALAR}
    out.update({name: getattr(vector_runtime, name) for name in vector_runtime.VECTOR_HELPERS})
    return out


# -- numpy helpers (run axis) ------------------------------------------------
def _np_quantum(a, b):
    with np.errstate(all="ignore"):
        return np.where(b < SMALL_VENSIM, a, b * np.trunc(a / b))


def _np_xidz(a, b, x):
    with np.errstate(all="ignore"):
        return np.where(np.abs(b) < SMALL_VENSIM, x, a / b)


def _np_lookup(LX, LY, off, n, x):
    return np.interp(x, LX[off:off + n], LY[off:off + n])


def _np_table(scalar):
    """A table reader over the run axis (x is a float or one value per run)."""
    def read(LX, LY, off, n, x):
        xs = np.asarray(x, dtype=float)
        if xs.ndim == 0:
            return scalar(LX, LY, off, n, float(xs))
        return np.array([scalar(LX, LY, off, n, float(v)) for v in xs])
    return read


def _np_pulse_train(t, dt, start, repeat, width, end):
    on = np.where(np.asarray(repeat) == 0,
                  (start - SMALL_VENSIM <= t) & (t < start + width),
                  (start <= t) & (t < end) & (np.mod(t - start + SMALL_VENSIM,
                                                     np.where(repeat == 0, 1.0, repeat)) < width))
    return 1.0 * on


def _np_smooth_step(s, n, g, T, dt):
    for j in range(n):
        o = s[j].copy()
        s[j] = o + (((g - o) * n) / T) * dt
        g = o


def _np_delayn_step(s, tm, n, g, T, dt):
    for j in range(n - 1, 0, -1):
        tm[j] = tm[j - 1]
    tm[0] = T
    _delay_step_np(s, n, g, tm, dt)


def _delay_step_np(s, n, g, tm, dt):
    for j in range(n):
        o = s[j] / tm[j]
        s[j] = s[j] + ((g - o) * n) * dt
        g = o


NUMPY = {
    "_smooth_step": _np_smooth_step, "_delay_step": _delay_step,
    "_delayn_step": _np_delayn_step,
    "_delay_order": lambda o, dt, m: _delay_order(uniform_int(o, "DELAY order"), dt, np.min(m)),
    "_min": np.minimum, "_max": np.maximum, "_pow": np.power,
    "_log": lambda x, b: np.log(x) / np.log(b),
    "_integer": np.trunc, "_quantum": _np_quantum,
    "_modulo": lambda x, m: x - _np_quantum(x, m),
    "_xidz": _np_xidz, "_zidz": lambda a, b: _np_xidz(a, b, 0.0),
    "_step": lambda t, dt, v, ts: v * (1.0 * (t + dt / 2 > ts)),
    "_ramp": lambda t, dt, s, a, f: (1.0 * (t + SMALL_VENSIM > a)) * s * (np.minimum(f, t) - a),
    "_pulse": lambda t, dt, a, w: 1.0 * ((a - SMALL_VENSIM <= t) & (t < a + w)),
    "_pulse_train": _np_pulse_train, "_lookup": _np_lookup,
    "_held": lambda LX, LY, off, n, x, f: _np_table(
        lambda *a: _held(*a, f))(LX, LY, off, n, x),
    "_raw": _np_table(_raw), "_extrapolate": _np_table(_extrapolate),
}


def uniform_int(values, what: str) -> int:
    """A structural integer (delay order, pipeline length) must be the same in
    every run of a vectorised batch; the numba back end has no such limit."""
    arr = np.unique(np.asarray(values, dtype=float))
    if len(arr) != 1:
        from .common import UnsupportedModel

        raise UnsupportedModel(f"{what} differs between runs (numpy back end)")
    return int(arr[0])


def _vector_numpy() -> dict:
    from .vector_runtime import numpy_helpers

    return numpy_helpers()


NUMPY.update(_vector_numpy())
