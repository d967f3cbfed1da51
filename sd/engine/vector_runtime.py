"""Run-time helpers of the vector functions (one run, 1-D arrays).

Each copies its PySD counterpart (``pysd.py_backend.functions`` and
``allocation``) step by step, in a form numba compiles; the numpy back end
calls the same functions once per run. Where PySD raises (an invalid
argument, a singular matrix, a priority profile it does not implement), the
helper returns NaN, so the run fails loudly with the variable named.

Two documented differences, both far below any modelling tolerance:

* ties in VECTOR SORT ORDER / RANK keep their original order (a stable
  sort); PySD uses numpy's default sort, whose order of equal values is
  unspecified for vectors longer than 16;
* ALLOCATE AVAILABLE solves "total allocation = available" by bisection to
  machine precision; PySD calls ``scipy.optimize.least_squares`` (stopping
  at its default tolerance, ~1e-8 relative), so allocations agree to about
  that.
"""
from __future__ import annotations

import math

import numpy as np

NAN = np.nan


def _vselect(sel, expr, missing, action, error):
    """VECTOR SELECT of one output element (``functions.vector_select``)."""
    sel, expr = np.array(sel), np.array(expr)
    n = sel.shape[0]
    nonzero = 0
    for i in range(n):
        if sel[i] != 0:
            nonzero += 1
    allzero = True
    for i in range(n):
        if not sel[i] == 0:
            allzero = False
    if allzero and (error == 1 or error == 3):
        return NAN      # PySD: FloatingPointError
    if nonzero > 1 and (error == 2 or error == 3):
        return NAN
    if action != action or action < 0 or action > 10 or action != math.floor(action):
        return NAN      # PySD: ValueError
    a = int(action)
    total, count = 0.0, 0
    prod = 1.0
    lo, hi = np.inf, -np.inf
    for i in range(n):
        if sel[i] == 0:
            continue
        if a <= 4:
            v = sel[i] * expr[i]
        elif a == 5:
            v = expr[i] ** sel[i]
        else:
            v = expr[i]
        if v != v:
            continue    # skipna
        total += v
        prod *= v
        count += 1
        lo = min(lo, v)
        hi = max(hi, v)
    if allzero:
        return missing
    if a == 0 or a == 6:
        return total
    if a == 1 or a == 5 or a == 7:
        return prod
    if count == 0:
        return NAN
    if a == 2 or a == 8:
        return lo
    if a == 3 or a == 9:
        return hi
    return total / count


def _vsort(v, direction):
    """VECTOR SORT ORDER: 0-based positions of the sorted values (``argsort``),
    descending when direction <= 0 (``np.flip`` of the ascending order)."""
    order = np.argsort(np.array(v), kind="mergesort").astype(np.float64)
    if direction <= 0:
        order = order[::-1].copy()
    return order


def _vrank(v, direction):
    """VECTOR RANK: ``vector_sort_order(v, direction).argsort() + 1``
    (the sort order written out: numba helpers do not call each other)."""
    order = np.argsort(np.array(v), kind="mergesort")
    if direction <= 0:
        order = order[::-1].copy()
    return np.argsort(order, kind="mergesort").astype(np.float64) + 1.0


def _pick(vec, x):
    """VECTOR REORDER's element: ``vector[order]`` (NaN out of range)."""
    if x != x:
        return NAN
    i = int(x)
    if i < 0 or i >= len(vec):
        return NAN
    return vec[i]


def _inv(flat, n):
    """INVERT MATRIX of an n x n matrix given row-major; NaN when singular
    (``np.linalg.inv`` raises)."""
    n = int(n)
    a = np.array(flat).reshape((n, n))
    out = np.eye(n)
    for c in range(n):
        p = c
        for r in range(c + 1, n):
            if abs(a[r, c]) > abs(a[p, c]):
                p = r
        if a[p, c] == 0 or a[p, c] != a[p, c]:
            return np.full(n * n, NAN)
        if p != c:
            for k in range(n):
                a[c, k], a[p, k] = a[p, k], a[c, k]
                out[c, k], out[p, k] = out[p, k], out[c, k]
        d = a[c, c]
        for k in range(n):
            a[c, k] /= d
            out[c, k] /= d
        for r in range(n):
            if r != c and a[r, c] != 0:
                f = a[r, c]
                for k in range(n):
                    a[r, k] -= f * a[c, k]
                    out[r, k] -= f * out[c, k]
    return out.reshape(n * n)


def _trivial(request, supply, invalid):
    """PySD's checks and short cuts shared by both allocations: NaN where it
    raises (a negative request or supply, an invalid argument), the requests
    when the supply covers them, zeros when there is none; else None."""
    n = request.shape[0]
    bad = invalid or supply < 0 or supply != supply
    for i in range(n):
        if request[i] < 0:
            bad = True
    if bad:
        return np.full(n, NAN)
    if supply >= np.sum(request):
        return request.copy()
    if supply == 0:
        return np.zeros(n)
    return None


def _alloc_priority(request, priority, width, supply):
    """ALLOCATE BY PRIORITY along one vector
    (``allocation._allocate_by_priority_1d``)."""
    request, priority = np.array(request), np.array(priority)
    n = request.shape[0]
    early = _trivial(request, supply, width <= 0)
    if early is not None:
        return early
    keep = request != 0
    req = request[keep]
    pri = priority[keep]
    sort = np.argsort(-pri, kind="mergesort")
    req = req[sort]
    pri = pri[sort]
    m = req.shape[0]
    out = np.zeros(m)
    distances = np.full(m, NAN)
    for i in range(m - 1):
        distances[i] = min((pri[i] - pri[i + 1]) / width, 1.0) * req[i]
    active = np.zeros(m, dtype=np.bool_)
    active[0] = True
    c_i = 0
    for _ in range(4 * m + 100):
        if not supply > 0:
            break
        slopes = np.where(active, req, 0.0)
        slopes = slopes / np.sum(slopes)
        dx_top = np.inf
        for i in range(m):
            if active[i]:
                step = (req[i] - out[i]) / slopes[i]
                if step < dx_top:
                    dx_top = step
        dx_start = (distances[c_i] - out[c_i]) / slopes[c_i]
        dx = min(dx_top, supply)
        if dx_start == dx_start and dx_start < dx:
            dx = dx_start
        out = out + slopes * dx
        if abs(dx - dx_start) <= 1e-16 + 1e-10 * abs(dx_start) and c_i + 1 < m:
            c_i += 1
            active[c_i] = True
        if dx == dx_top:
            for i in range(m):
                if out[i] == req[i]:
                    active[i] = False
        supply -= dx
    result = np.zeros(n)
    back = np.argsort(sort, kind="mergesort")
    j = 0
    for i in range(n):
        if keep[i]:
            result[i] = out[back[j]]
            j += 1
    return result


def _demand(q0, ptype, ppriority, pwidth, x):
    """One target's demand at priority ``x`` (``allocation.Priorities``)."""
    if q0 == 0:
        return 0.0
    if ptype == 1:      # rectangular
        if x <= ppriority - pwidth * .5:
            return q0
        if x < ppriority + pwidth * .5:
            return q0 * (1 - (x - ppriority + pwidth * .5) / pwidth)
        return 0.0
    if ptype == 2:      # triangular
        if x <= ppriority - pwidth * .5:
            return q0
        if x < ppriority:
            return q0 * (1 - 2 * (x - ppriority + pwidth * .5) ** 2 / pwidth ** 2)
        if x < ppriority + pwidth * .5:
            return 2 * q0 * (ppriority + pwidth * .5 - x) ** 2 / pwidth ** 2
        return 0.0
    if ptype == 3:      # normal
        return q0 * .5 * (2 - math.erfc((ppriority - x) / (np.sqrt(2) * pwidth)))
    if x < ppriority:   # 4: exponential
        return q0 * (1 - .5 * np.exp((x - ppriority) / pwidth))
    return q0 * .5 * np.exp((ppriority - x) / pwidth)


#: half-width of the interval where each profile varies, in units of pwidth
_REACH = (0.0, 0.5, 0.5, 8.2923611, 36.7368005696)


def _alloc_available(request, pp, nprof, avail):
    """ALLOCATE AVAILABLE along one vector (``allocation._allocate_available_1d``);
    ``pp`` holds the profiles row-major (ptype, ppriority, pwidth, pextra)."""
    request, pp = np.array(request), np.array(pp)
    n = request.shape[0]
    early = _trivial(request, avail, nprof != 4)
    if early is not None:
        return early
    lo, hi = np.inf, -np.inf
    for i in range(n):
        ptype, prio, width = pp[i * 4], pp[i * 4 + 1], pp[i * 4 + 2]
        if not width > 0:
            return np.full(n, NAN)     # PySD: "pwidth values must be positive"
        if request[i] == 0:
            continue
        if not (ptype == 1 or ptype == 2 or ptype == 3 or ptype == 4):
            return np.full(n, NAN)     # PySD: not implemented / not valid
        reach = _REACH[int(ptype)] * width
        lo = min(lo, prio - reach)
        hi = max(hi, prio + reach)
    # the total demand falls from sum(request) at lo to 0 at hi: bisect
    for _ in range(2000):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        total = 0.0
        for i in range(n):
            total += _demand(request[i], pp[i * 4], pp[i * 4 + 1], pp[i * 4 + 2], mid)
        if total > avail:
            lo = mid
        else:
            hi = mid
    x = 0.5 * (lo + hi)
    out = np.empty(n)
    for i in range(n):
        out[i] = _demand(request[i], pp[i * 4], pp[i * 4 + 1], pp[i * 4 + 2], x)
    return out


#: helpers taking (vector args..., scalar args...): number of vector args
VECTOR_HELPERS = {"_vselect": 2, "_vsort": 1, "_vrank": 1, "_pick": 1, "_inv": 1,
                  "_alloc_priority": 2, "_alloc_available": 2}
#: scalar helpers the vector helpers call (compiled first for numba)
INNER = ("_demand", "_trivial")


def numba_helpers(njit) -> dict:
    """The helpers compiled with ``njit``. numba resolves a called function
    from the module's globals when it compiles the caller, so the inner
    helpers are replaced by their compiled versions first (plain-Python
    callers, the numpy back end, then call compiled code too)."""
    g = globals()
    out = {}
    for name in INNER:
        if not hasattr(g[name], "py_func"):
            g[name] = njit(g[name])
        out[name] = g[name]
    for name in VECTOR_HELPERS:
        out[name] = njit(g[name])
    return out


def _vec(*xs):
    """numpy back end: stack element values (floats or per-run arrays)."""
    return np.stack(np.broadcast_arrays(*[np.asarray(x, dtype=float) for x in xs]))


def numpy_helpers() -> dict:
    """The helpers for the numpy back end: each run in turn."""
    out = {"_vec": _vec}
    for name, nvec in VECTOR_HELPERS.items():
        out[name] = _per_run(globals()[name], nvec)
    return out


def _per_run(fn, nvec):
    def apply(*args):
        vecs = [np.asarray(a, dtype=float) for a in args[:nvec]]
        rest = [np.asarray(a, dtype=float) for a in args[nvec:]]
        runs = max([v.shape[1] for v in vecs if v.ndim == 2]
                   + [r.shape[0] for r in rest if r.ndim == 1] + [1])
        res = []
        for r in range(runs):
            va = [v[:, r] if v.ndim == 2 else v for v in vecs]
            ra = [x[r] if x.ndim == 1 else x[()] for x in rest]
            res.append(fn(*va, *ra))
        out = np.asarray(res, dtype=float)
        return out.T if out.ndim == 2 else out
    return apply
