"""Run a compiled model for a table of samples and return an xarray.Dataset."""
from __future__ import annotations

import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import xarray as xr

from .._common import TIME_KEYS, time_key
from ..errors import SdInputError, canon, suggest
from ..model.timing import settings as time_settings
from . import runtime
from .build import CompiledModel, compile_model, eval_controls


def run_fast(path, samples: pd.DataFrame | None = None, variables=None, times=None,
             lookups=None, time=None, *, mode: str | None = None) -> xr.Dataset:
    """Simulate one run per row of ``samples`` with the fast engine.

    Parameters
    ----------
    path : str or Path or object with ``.path``
        The Vensim ``.mdl``.
    samples : pandas.DataFrame, optional
        One row per run; columns are constants (Vensim names, any case;
        ``Name[elem]`` sets one element of a subscripted constant). ``None``
        runs the model once as written.
    variables : list of str, optional
        Vensim names to keep (default: all).
    times : sequence of float, optional
        Integration times to keep (default: PySD's saving times).
    lookups : dict, optional
        ``{lookup name: (xs, ys)}`` replacing tables for every run.
    time : dict, optional
        Overrides of ``initial_time``, ``final_time``, ``time_step``, ``saveper``.
    mode : {"numba", "numpy"}, optional
        Back end (default numba when importable).

    Returns
    -------
    xarray.Dataset
        Dims ``run`` and ``time`` (plus subscript ranges), one variable per
        model variable, sampled parameters as coordinates along ``run``.

    Raises
    ------
    UnsupportedModel
        The model uses a construct the engine does not implement.
    SdInputError
        A column, variable, lookup or time key is not in the model.
    """
    return run_compiled(compile_model(path, mode), samples, variables, times, lookups, time)


def run_compiled(cm: CompiledModel, samples: pd.DataFrame | None = None, variables=None,
                 times=None, lookups=None, time=None) -> xr.Dataset:
    """:func:`run_fast` on a model already compiled (:func:`compile_model`)."""
    # the one check of time settings, for every engine (sd.model.timing)
    time_settings(cm.model, time)
    if samples is None:
        samples = pd.DataFrame(index=pd.RangeIndex(1, name="run"))
    P = _constants(cm, samples)
    C = _time_values(cm, time)
    # PySD (initial_condition=(t, {})) initialises at the model's INITIAL TIME
    Ci = _time_values(cm, {k: v for k, v in (time or {}).items()
                           if time_key(k, "time") != "initial_time"})
    LX, LY, LO, LN = _tables(cm, lookups)
    grid, saved, labels = runtime.time_grid(*C)
    rows = _rows(saved, labels, times)
    keep = _outputs(cm, variables)
    ncols = sum(o[4] for o in keep)
    sel = np.full(sum(o[4] for o in cm.outputs), -1, dtype=np.int64)
    col = 0
    for o in keep:
        sel[o[3]:o[3] + o[4]] = np.arange(col, col + o[4])
        col += o[4]
    nsave = int((rows >= 0).sum())
    # every kept (run, time, column) cell is written by the simulation
    out = np.empty((len(samples), nsave, ncols))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _simulate(cm, P, (np.asarray(C, dtype=float), np.asarray(Ci, dtype=float), LX, LY, LO,
                          LN, grid, rows, sel), out)
    return _dataset(out, keep, labels[rows >= 0], samples)


#: Runs per thread below which one thread is faster (thread hand-off ~50 us).
MIN_RUNS_PER_THREAD = 128


def _simulate(cm: CompiledModel, P, args, out) -> None:
    """Call the compiled function, splitting the runs over the cores.

    The numba function releases the GIL (``nogil``) and runs are independent,
    so slices of runs go to threads; each writes its own rows of ``out`` and
    the numbers do not depend on the split. Measured on 2 cores, Juárez model,
    1,000 runs: 4.9 ms in one thread, 2.5 ms in two.
    """
    n = P.shape[0]
    k = min(_cores(), n // MIN_RUNS_PER_THREAD) if cm.mode == "numba" else 1
    if k > 1:
        # Fault the output's pages in here: first-touch page faults taken by
        # two threads at once contend in the kernel (measured on this VM: 1,000
        # runs of all 72 variables, median 34 ms with lazy pages, 5 ms
        # pre-faulted).
        out.fill(0.0)
    start = 0
    if cm.mode == "numba" and n and not cm.fn.signatures:
        # numba compiles on the first call: do it here, in this thread, with
        # room for its recursive passes over a long generated function
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20000))
        try:
            cm.fn(P[:1], *args, out[:1])
        finally:
            sys.setrecursionlimit(limit)
        start = 1
    if k <= 1:
        if start < n:
            cm.fn(P[start:], *args, out[start:])
        return
    cuts = np.linspace(start, n, k + 1).astype(int)
    futures = [_pool(k).submit(cm.fn, P[a:b], *args, out[a:b])
               for a, b in zip(cuts[:-1], cuts[1:])]
    for f in futures:
        f.result()


def _cores() -> int:
    env = os.environ.get("SD_THREADS")
    if env:
        return max(1, int(env))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_POOLS: dict[int, ThreadPoolExecutor] = {}
# A forked child (multiprocessing's default on Linux) inherits the pools but not
# their threads: work submitted there would wait forever. It makes its own.
os.register_at_fork(after_in_child=_POOLS.clear)


def _pool(k: int) -> ThreadPoolExecutor:
    if k not in _POOLS:
        _POOLS[k] = ThreadPoolExecutor(k, thread_name_prefix="sd-engine")
    return _POOLS[k]


def _constants(cm: CompiledModel, samples: pd.DataFrame) -> np.ndarray:
    defaults = np.array([p[2] for p in cm.params], dtype=float)
    P = np.tile(defaults, (len(samples), 1))
    columns = cm.param_columns()
    for col in samples.columns:
        key = canon(str(col))
        if key not in columns:
            kind = cm.kinds.get(key)
            if kind == "control":
                raise SdInputError(f"sample column {col!r} is a time setting; pass it in "
                                   "time= (initial_time, final_time, time_step, saveper).")
            if kind is not None:
                raise SdInputError(f"sample column {col!r} is not a constant of "
                                   f"{cm.path.name} (it is a {'lookup' if kind == 'lookup' else 'computed variable, e.g. a stock or flow'}); "
                                   "only constants can be sampled.")
            names = sorted({p[0] for p in cm.params})
            raise SdInputError(f"sample column {col!r} is not a constant of {cm.path.name}."
                               + (suggest(str(col), names) or " Constants: "
                                  + ", ".join(names[:20])))
        try:
            values = samples[col].to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise SdInputError(f"sample column {col!r} must hold numbers.") from None
        for c in columns[key]:
            P[:, c] = values
    return np.ascontiguousarray(P)


def _time_values(cm: CompiledModel, time) -> list:
    fixed = {}
    for key, value in (time or {}).items():
        fixed[list(TIME_KEYS).index(time_key(key, "time"))] = float(value)
    return eval_controls(cm, fixed)


def _tables(cm: CompiledModel, lookups):
    tables = [(xs, ys) for xs, ys, _ in cm.tables]
    owners = {}
    for i, (_, _, owner) in enumerate(cm.tables):
        owners.setdefault(canon(owner), []).append(i)
    for name, pair in (lookups or {}).items():
        ids = owners.get(canon(name))
        if ids is None:
            raise SdInputError(f"{name!r} is not a lookup table of {cm.path.name}."
                               + suggest(name, sorted({t[2] for t in cm.tables})))
        xs, ys = (np.asarray(v, dtype=float) for v in pair)
        if xs.shape != ys.shape or xs.ndim != 1 or len(xs) < 1:
            raise SdInputError(f"lookup {name!r}: xs and ys must be 1-D of equal length.")
        order = np.argsort(xs, kind="stable")
        for i in ids:
            tables[i] = (xs[order], ys[order])
    LN = np.array([len(x) for x, _ in tables], dtype=np.int64)
    LO = np.concatenate([[0], np.cumsum(LN)[:-1]]).astype(np.int64) if tables else \
        np.zeros(0, np.int64)
    LX = np.concatenate([x for x, _ in tables]) if tables else np.zeros(1)
    LY = np.concatenate([y for _, y in tables]) if tables else np.zeros(1)
    return LX, LY, LO, LN


def _rows(saved, labels, times) -> np.ndarray:
    if times is None:
        mask = saved
    else:
        mask = np.zeros(len(labels), dtype=bool)
        for t in np.atleast_1d(np.asarray(times, dtype=float)):
            hit = np.flatnonzero(np.isclose(labels, t, rtol=0, atol=1e-9 * max(1, abs(t))))
            if not len(hit):
                near = labels[np.argmin(np.abs(labels - t))]
                raise SdInputError(f"time {t} is not an integration time of the model; "
                                   f"nearest is {near}.")
            mask[hit[0]] = True
    rows = np.full(len(labels), -1, dtype=np.int64)
    rows[mask] = np.arange(int(mask.sum()))
    return rows


def _outputs(cm: CompiledModel, variables):
    if variables is None:
        return list(cm.outputs)
    by = {canon(o[0]): o for o in cm.outputs}
    keep = []
    for v in variables:
        o = by.get(canon(v))
        if o is None:
            raise SdInputError(f"{v!r} is not a variable of {cm.path.name}."
                               + suggest(v, [o[0] for o in cm.outputs]))
        keep.append(o)
    return keep


def _dataset(out, keep, labels, samples) -> xr.Dataset:
    variables = {}
    col = 0
    # a sampled constant is reported once, as a coordinate along ``run``
    sampled = {canon(str(c)) for c in samples.columns}
    coords = {"run": samples.index.to_numpy(), "time": labels}
    for name, dims, subs, _, size in keep:
        block = out[:, :, col:col + size]
        col += size
        if canon(name) in sampled:
            continue
        if dims:
            block = block.reshape(out.shape[:2] + tuple(len(c) for c in subs))
            for d, c in zip(dims, subs):
                coords[d] = list(c)
        else:
            block = block[:, :, 0]
        variables[name] = xr.Variable(("run", "time") + tuple(dims), block, fastpath=True)
    for col in samples.columns:
        coords[str(col)] = ("run", samples[col].to_numpy())
    base = xr.Dataset(coords=coords)
    try:
        # one run is ~0.05 ms of simulation; the public constructor's merge
        # and alignment of ~70 variables costs ~1.5 ms, so add them directly
        # (their dims and coords are consistent by construction)
        return base._replace(variables={**base._variables, **variables})
    except (AttributeError, TypeError):   # private API changed: public path
        return base.assign(variables)
