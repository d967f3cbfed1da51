"""Vensim's Reality Check equations of a ``.mdl``, run as Vensim's "Test All" does.

Each constraint ``name :THE CONDITION: condition :IMPLIES: consequence`` is
tested in its own run. The condition is forced true first (Vensim's active
testing): each test input it names, and each ``variable = value`` in its
top-level ``:AND:`` chain, sets its variable; an inequality ``variable < number``
is forced to the number only when the model does not already satisfy it. The
rest of the condition (``Time`` comparisons, ``:OR:``, ``:NOT:``, comparisons of
two variables) is evaluated passively on that run. At every saved time where
the condition holds, the consequence must hold; a comparison holds within
``1e-6`` relative (``1e-9`` absolute), which absorbs rounding and nothing a
modeler would call a difference.

What a setting can do (the rest is reported ``NOT CHECKED`` with the reason):

* a number: a constant (or some elements of a subscripted constant) takes it for
  the whole run; a variable without subscripts is held at it;
* ``RC STEP``, ``RC RAMP``, ``RC DECAY``, ``RC GROW`` (``basis, ...[, start[,
  duration]]``): a variable or constant without subscripts follows the path, its
  ``basis`` read on the unforced run at ``start`` (``RC START TIME`` if the model
  has it, else ``INITIAL TIME + TIME STEP``), as Vensim keeps the model's own value
  before the start.

The consequence may use the ``RC ... CHECK(grace, basis, ...)`` functions: before
``start`` the reference is the basis itself, from ``start`` to ``start + grace``
nothing is checked, then the reference follows the path. ``:CROSSING:``, ``:AT
LEAST ONCE:`` and ``RC COMPARE`` are not supported. Names resolve against the
model's variables (closest names suggested on a miss) before any run; no text is
ever evaluated as code.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from .errors import SdInputError, SdRuntimeError, canon, suggest
from .reality import CheckResult, _element, _value

__all__ = ["run_model_checks", "RTOL", "ATOL"]

RTOL, ATOL = 1e-6, 1e-9
_PATHS = {"RC STEP": ("mult",), "RC RAMP": ("mult", "ramptime"), "RC DECAY": ("decaytime",),
          "RC GROW": ("growrate",)}
_ARITH = {"ABS": 1, "MIN": 2, "MAX": 2}


class _Unsupported(Exception):
    """A construct sd does not run: the constraint is reported NOT CHECKED."""


def run_model_checks(defs, model) -> list[CheckResult]:
    """Run every constraint of ``defs`` (:func:`sd.model.reality_syntax.read_reality_checks`).

    Raises
    ------
    SdInputError
        A name that is neither a variable nor a test input (closest names
        suggested), before any run.
    """
    tests = {canon(t.name): t for t in defs.test_inputs}
    where_of = lambda line: f"{defs.path}:{line}"  # noqa: E731
    for t in defs.test_inputs:
        for s in t.settings:
            _resolve(s.target, model, tests, where_of(t.line))
            _resolve(s.value, model, tests, where_of(t.line))
    for c in defs.constraints:
        _resolve(c.condition, model, tests, where_of(c.line))
        _resolve(c.consequence, model, tests, where_of(c.line))
    base = None
    results = []
    for c in defs.constraints:
        label = f"{c.name} (line {c.line})"
        try:
            if base is None:
                from .simulation import run
                base = run(model)
            results.append(_constraint(c, tests, model, base, label))
        except _Unsupported as exc:
            results.append(CheckResult(label, True, f"not checked: {exc}", checked=False))
        except SdRuntimeError as exc:
            results.append(CheckResult(label, False, f"the run failed: {exc}"))
    return results


def _resolve(tree, model, tests, where: str) -> None:
    kind = tree[0]
    if kind == "ref" and canon(tree[1]) != "time":
        model.variable(tree[1], where=f" (in the reality check at {where})")
    elif kind == "test" and canon(tree[1]) not in tests:
        raise SdInputError(f"{where}: {tree[1]!r} is not a test input of the model and is "
                           "compared to nothing; write a comparison (x = 0) or a test input's "
                           "name." + suggest(tree[1], [t.name for t in tests.values()]
                                             + model.names()))
    for part in tree[1:]:
        if isinstance(part, tuple) and part and isinstance(part[0], str):
            _resolve(part, model, tests, where)
        elif isinstance(part, tuple):
            for arg in part:
                if isinstance(arg, tuple) and arg and isinstance(arg[0], str):
                    _resolve(arg, model, tests, where)


# -- one constraint ---------------------------------------------------------------------
def _constraint(c, tests, model, base, label) -> CheckResult:
    forcings, passive = [], []
    for term in _conjuncts(c.condition):
        forcings_of = _forcing(term, tests, model, base)
        if forcings_of is None:
            passive.append(term)
        else:
            forcings += forcings_of
    ds = _forced_run(forcings, model, base)
    ctx = _Context(model, ds, base)
    cond = xr.DataArray(True)
    for term in passive:
        cond = cond & _logic(term, ctx)
    cons = _logic(c.consequence, ctx)
    bad = (cond & ~cons).broadcast_like(ds["time"])
    if not bool(cond.any()):
        return CheckResult(label, True, "the condition is never true on the run, so nothing "
                                        "was tested")
    if not bool(bad.any()):
        return CheckResult(label, True, f"holds wherever the condition does (within {RTOL:g} "
                                        f"relative, {ATOL:g} absolute)")
    flat = bad.transpose("time", ...)
    rows = flat.values.reshape(flat.sizes["time"], -1)
    k = int(np.argmax(rows.any(axis=1)))
    el, at = _element(flat.astype(float), int(np.argmax(rows[k])))
    values = ", ".join(f"{_shown(name, subs, el, at)} = {_value(ctx.select(name, subs), k, at):.6g}"
                       for name, subs in dict.fromkeys(_refs(c.consequence))
                       if canon(name) != "time")
    return CheckResult(label, False, f"first violated at time {float(ds['time'][k]):g}: {values}")


def _shown(name, subs, el, at) -> str:
    """``name`` with the violating element in place of each range subscript."""
    if not subs:
        return name + el
    by_dim = {canon(d): str(v) for d, v in at.items()}
    return f"{name}[{','.join(by_dim.get(canon(s), s) for s in subs)}]"


def _conjuncts(tree) -> list:
    if tree[0] == "and":
        return _conjuncts(tree[1]) + _conjuncts(tree[2])
    return [tree]


def _forcing(term, tests, model, base):
    """The settings that make ``term`` true, or None when it is tested passively."""
    if term[0] == "test":
        test = tests[canon(term[1])]
        swap = {canon(a): b for a, b in zip(test.subscripts, term[2])}
        out = []
        for s in test.settings:
            name, subs = s.target[1], tuple(swap.get(canon(x), x) for x in s.target[2])
            out.append((name, subs, _substitute(s.value, swap), s.text))
        return out
    if term[0] == "cmp" and term[2][0] == "num" and term[3][0] == "ref":  # 0 = x is x = 0
        term = ("cmp", {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(term[1], term[1]),
                term[3], term[2])
    if term[0] != "cmp" or term[2][0] != "ref" or canon(term[2][1]) == "time" or term[1] == "<>":
        return None
    op, (_, name, subs), value = term[1], term[2], term[3]
    shown = f"{name} {op} {_text(value)}"
    if op == "=":
        if value[0] == "num" or (value[0] == "call" and value[1] in _PATHS):
            return [(name, subs, value, shown)]
        raise _Unsupported(f"'{shown}' forces {name!r} to an expression; sd forces a number or "
                           "an RC STEP/RAMP/DECAY/GROW path")
    ctx = _Context(model, base, base)
    if bool(_compare(op, ctx.select(name, subs), _arith(value, ctx)).all()):
        return None  # already true on the model's own run: Vensim leaves the variable alone
    if value[0] != "num":
        raise _Unsupported(f"'{shown}' is false on the model's run and would force {name!r} to "
                           "an expression")
    return [(name, subs, value, shown)]


def _text(tree) -> str:
    """A short rendering of an arithmetic tree, for messages."""
    if tree[0] == "num":
        return f"{tree[1]:g}"
    if tree[0] == "ref":
        return tree[1] + (f"[{','.join(tree[2])}]" if tree[2] else "")
    if tree[0] == "call":
        return f"{tree[1]}(...)"
    return "(expression)"


def _substitute(tree, swap):
    if tree[0] == "ref":
        return ("ref", tree[1], tuple(swap.get(canon(x), x) for x in tree[2]))
    if tree[0] == "call":
        return ("call", tree[1], tuple(_substitute(a, swap) for a in tree[2]))
    return tuple(_substitute(p, swap) if isinstance(p, tuple) else p for p in tree)


def _forced_run(forcings, model, base):
    if not forcings:
        return base
    from .simulation import run_many

    columns, paths = {}, {}
    ctx = _Context(model, base, base)
    times = base["time"].values
    for name, subs, value, text in forcings:
        var = model.variable(name)
        if value[0] == "num" and var.kind == "constant":
            for key in _element_keys(var, subs, base):
                columns[key] = value[1]
            continue
        if var.kind not in ("constant", "stock", "flow", "auxiliary"):
            raise _Unsupported(f"'{text}' sets {var.name!r}, a {var.kind}")
        new = xr.DataArray(value[1]) if value[0] == "num" else _rc(value, ctx, check=False)
        keys = _element_keys(var, subs, base)
        if var.subscripts and var.kind != "constant" and \
                len(keys) < len(_element_keys(var, (), base)):
            raise _Unsupported(f"'{text}' holds some elements of the {var.kind} {var.name!r}; "
                               "sd holds a subscripted variable that is not a constant only as "
                               "a whole")
        for key in _element_keys(var, (), base):  # the others keep their (constant) path
            src = new if key in keys else base[var.name]
            paths[key] = (times, _path(src, key, var.name, times)[None, :])
    samples = pd.DataFrame([columns]) if columns else pd.DataFrame(index=[0])
    try:
        ds = run_many(model, samples, forced=paths or None).isel(run=0)
    except SdInputError as exc:  # e.g. a subscripted path on a model only PySD runs
        raise _Unsupported(str(exc)) from None
    for key in list(ds.coords):
        if key not in ds.dims and key not in ds.data_vars and key != "time":
            ds = ds.drop_vars(key)
    for name in base.data_vars:  # a constant set by a column comes back as a coordinate
        if name not in ds.data_vars:
            ds[name] = _overridden(base[name], columns, name)
    return ds


def _path(da, key: str, name: str, times) -> np.ndarray:
    """The values over ``times`` of element ``key`` (``Name[a,b]``) of ``da``."""
    if "[" in key and isinstance(da, xr.DataArray):
        dims = [d for d in da.dims if d != "time"]
        els = key[len(name) + 1:-1].split(",")
        if dims:
            da = da.sel(dict(zip(dims, els)))
    return np.broadcast_to(np.asarray(da, float), times.shape).astype(float)


def _element_keys(var, subs, base) -> list[str]:
    if not var.subscripts:
        return [var.name]
    da = base[var.name]
    dims = [d for d in da.dims if d != "time"]
    if not subs:
        subs = tuple(dims)
    if len(subs) != len(dims):
        raise _Unsupported(f"{var.name}[{','.join(subs)}] does not match its subscripts "
                           f"{', '.join(dims)}")
    choices = [_elements(da, d, s, var.name) for d, s in zip(dims, subs)]
    keys = [[]]
    for options in choices:
        keys = [k + [o] for k in keys for o in options]
    return [f"{var.name}[{','.join(k)}]" for k in keys]


def _elements(da, dim, sub, name) -> list[str]:
    values = [str(v) for v in da[dim].values]
    if canon(sub) == canon(dim):
        return values
    hit = [v for v in values if canon(v) == canon(sub)]
    if not hit:
        raise _Unsupported(f"subscript {sub!r} of {name!r} is neither its range {dim!r} nor one "
                           "of its elements (subranges and mappings are not supported here)")
    return hit


def _overridden(da, columns, name):
    out = da.copy()
    for key, value in columns.items():
        if key == name:
            out[...] = value
        elif key.startswith(name + "["):
            els = key[len(name) + 1:-1].split(",")
            dims = [d for d in da.dims if d != "time"]
            out.loc[dict(zip(dims, els))] = value
    return out


# -- evaluation -------------------------------------------------------------------------
class _Context:
    def __init__(self, model, ds, base):
        self.model, self.ds, self.base = model, ds, base

    def select(self, name, subs):
        if canon(name) == "time":
            return self.ds["time"]
        var = self.model.variable(name)
        da = self.ds[var.name]
        dims = [d for d in da.dims if d != "time"]
        if not subs:
            return da
        if len(subs) != len(dims):
            raise _Unsupported(f"{name}[{','.join(subs)}] does not match its subscripts "
                               f"({', '.join(dims) or 'none'})")
        for d, s in zip(dims, subs):
            if canon(s) != canon(d):
                da = da.sel({d: _elements(da, d, s, name)[0]})
        return da

    def start(self):
        try:
            return float(np.asarray(self.base[self.model.variable("RC START TIME").name])
                         .ravel()[0])
        except SdInputError:
            pass
        times = self.base["time"].values
        try:
            step = float(np.asarray(self.base[self.model.variable("TIME STEP").name]).ravel()[0])
        except (SdInputError, KeyError):
            step = float(times[1] - times[0]) if len(times) > 1 else 0.0
        return float(times[0]) + step


def _arith(tree, ctx):
    kind = tree[0]
    if kind == "num":
        return tree[1]
    if kind == "ref":
        return ctx.select(tree[1], tree[2])
    if kind == "neg":
        return -_arith(tree[1], ctx)
    if kind == "call":
        return _call(tree, ctx)
    a, b = _arith(tree[1], ctx), _arith(tree[2], ctx)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                "/": lambda: a / b, "^": lambda: a ** b}[kind]()


def _call(tree, ctx):
    name, args = tree[1], tree[2]
    if name in _ARITH:
        if len(args) != _ARITH[name]:
            raise _Unsupported(f"{name} with {len(args)} arguments")
        vals = [_arith(a, ctx) for a in args]
        return {"ABS": lambda: abs(vals[0]), "MIN": lambda: np.minimum(*vals),
                "MAX": lambda: np.maximum(*vals)}[name]()
    if name.endswith(" CHECK") and name[:-6] in _PATHS:
        return _rc(tree, ctx, check=True)
    if name in _PATHS:
        raise _Unsupported(f"{name} outside a test input (use {name} CHECK in a consequence)")
    raise _Unsupported(f"the function {name} in a reality check")


def _rc(tree, ctx, check: bool):
    """The path of an RC function on ``ctx``'s run: the basis until ``start``,
    then the new trajectory until ``start + duration``; NaN (not checked) in a
    CHECK's grace period."""
    name, args = tree[1], tree[2]
    kind = name[:-6] if check else name
    fixed = ("grace", "basis") if check else ("basis",)
    need = len(fixed) + len(_PATHS[kind])
    if not need <= len(args) <= need + 2:
        raise _Unsupported(f"{name} with {len(args)} arguments (Vensim takes {need} to {need + 2})")
    scalar = lambda a: float(np.asarray(_arith(a, ctx)).ravel()[0])  # noqa: E731
    grace = scalar(args[0]) if check else 0.0
    basis = _arith(args[len(fixed) - 1], ctx)
    params = [_arith(a, ctx) for a in args[len(fixed):need]]
    start = scalar(args[need]) if len(args) > need else ctx.start()
    duration = scalar(args[need + 1]) if len(args) > need + 1 else np.inf
    t = ctx.ds["time"]
    at = basis.interp(time=start) if isinstance(basis, xr.DataArray) and "time" in basis.dims \
        else basis
    since = t - start
    if kind == "RC STEP":
        new = at * params[0]
    elif kind == "RC RAMP":
        frac = np.clip(since / params[1], 0, 1)
        new = at * (params[0] * frac + (1 - frac))
    elif kind == "RC DECAY":
        new = at * np.exp(-since / params[0])
    else:
        new = at * np.exp(params[0] * since)
    tol = 1e-9 * max(1.0, abs(start))
    active = (t >= start - tol) & (t < start + duration - tol)
    path = xr.where(active, new, basis)
    if check:
        path = path.where(~((t >= start - tol) & (t < start + grace - tol)))
    return path


def _compare(op, a, b):
    with np.errstate(invalid="ignore"):
        gap = a - b
        tol = ATOL + RTOL * np.maximum(abs(a), abs(b))
        ok = {"=": abs(gap) <= tol, "<>": abs(gap) > tol, "<": gap < tol, "<=": gap <= tol,
              ">": gap > -tol, ">=": gap >= -tol}[op]
    unchecked = np.isnan(gap) if not isinstance(gap, xr.DataArray) else gap.isnull()
    return ok | unchecked  # NaN: inside an RC CHECK's grace period


def _logic(tree, ctx):
    kind = tree[0]
    if kind == "cmp":
        out = _compare(tree[1], _arith(tree[2], ctx), _arith(tree[3], ctx))
        return out if isinstance(out, xr.DataArray) else xr.DataArray(bool(out))
    if kind == "and":
        return _logic(tree[1], ctx) & _logic(tree[2], ctx)
    if kind == "or":
        return _logic(tree[1], ctx) | _logic(tree[2], ctx)
    if kind == "not":
        return ~_logic(tree[1], ctx)
    if kind == "unsupported":
        raise _Unsupported(f"{tree[1]} (a statement about the shape of a trajectory)")
    if kind == "test":
        raise _Unsupported(f"the test input {tree[1]!r} under :OR:/:NOT: or in a consequence "
                           "(it can only be forced in the condition's :AND: chain)")
    raise _Unsupported(f"{kind} in a logical expression")


def _refs(tree) -> list[tuple]:
    """``(name, subscripts)`` of every variable a tree mentions."""
    if tree[0] == "ref":
        return [(tree[1], tree[2])]
    out = []
    for part in tree[1:]:
        if isinstance(part, tuple) and part and isinstance(part[0], str):
            out += _refs(part)
        elif isinstance(part, tuple):
            for a in part:
                if isinstance(a, tuple) and a and isinstance(a[0], str):
                    out += _refs(a)
    return out
