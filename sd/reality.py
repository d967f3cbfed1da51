"""Reality checks: extreme-condition tests and declared conservation, from a TOML file.

A tests file sits beside the model (``model.tests.toml``) and holds two kinds
of tables::

    [[test]]
    name = "no programme: nobody converts"
    scenario = "baseline"                      # optional: a scenario beside the model
    constants = { "Programme Start Year" = 3000 }   # the extreme inputs
    time = { final_time = 2010 }               # optional
    expect = [
      '"Propane Share" <= 0',                  # at every saved time
      { that = '"Total Kilns" <= 515', at = 2000, tolerance = 1e-6 },
      { that = '"Propane Kilns" >= 0', from = 1990, to = 2000 },
    ]

    [[conservation]]
    name = "kilns leave only by closure"
    stocks = ["Traditional Kilns", "Kilns in Conversion", "Propane Kilns"]
    inflows = []                               # flows allowed to add to the total
    outflows = ["Traditional Closures", "Propane Closures"]

A condition compares two arithmetic expressions of variable names (quoted
``"..."`` or bare) and numbers with ``+ - * /`` and parentheses, using ``<``,
``<=``, ``>``, ``>=`` or ``==``; it is parsed here, never evaluated as
Python. ``tolerance`` (absolute, default 1e-9) loosens the comparison to absorb
rounding. A conservation declaration is checked on the structure (every flow
that crosses the boundary of the stock set is declared, no flow creates or
destroys stock inside it) and numerically (over each time step the total
changes by exactly the declared flows; the model is run saving every step).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._common import known_keys, nesting_depth, number, read_toml, time_key
from .errors import SdInputError, SdRuntimeError, suggest

__all__ = ["Expectation", "ExtremeTest", "Conservation", "TestsFile", "CheckResult",
           "load_tests", "run_tests"]

_TEST_KEYS = ("name", "description", "scenario", "constants", "time", "expect")
_EXPECT_KEYS = ("that", "at", "from", "to", "tolerance")
_CONSERVATION_KEYS = ("name", "description", "stocks", "inflows", "outflows", "scenario",
                      "tolerance")
_DEFAULT_TOL = 1e-9


@dataclass(frozen=True)
class Expectation:
    """A condition that must hold, with where in time and how loosely."""

    text: str
    tree: tuple
    at: float | None = None
    start: float | None = None
    end: float | None = None
    tolerance: float = _DEFAULT_TOL

    def when(self) -> str:
        if self.at is not None:
            return f"at time {self.at:g}"
        if self.start is not None or self.end is not None:
            lo = "start" if self.start is None else f"{self.start:g}"
            hi = "end" if self.end is None else f"{self.end:g}"
            return f"from {lo} to {hi}"
        return "at all times"


@dataclass(frozen=True)
class ExtremeTest:
    """Inputs set to extremes and what must then hold."""

    name: str
    scenario: str | None
    constants: dict
    time: dict
    expect: tuple[Expectation, ...]
    where: str


@dataclass(frozen=True)
class Conservation:
    """A set of stocks whose total changes only through the declared flows."""

    name: str
    stocks: tuple[str, ...]
    inflows: tuple[str, ...]
    outflows: tuple[str, ...]
    scenario: str | None
    tolerance: float
    where: str


@dataclass(frozen=True)
class TestsFile:
    """A parsed tests file: its extreme-condition tests and conservation declarations."""

    path: Path
    tests: tuple[ExtremeTest, ...]
    conservation: tuple[Conservation, ...]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one expectation or conservation declaration."""

    name: str
    passed: bool
    message: str
    checked: bool = True  # False: a construct sd cannot run; the message says which

    def __str__(self) -> str:
        state = "NOT CHECKED" if not self.checked else "PASS" if self.passed else "FAIL"
        return f"{state} {self.name}: {self.message}"


# -- condition language ----------------------------------------------------------
_TOKENS = re.compile(r'\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)'
                     r'|"(?P<qname>[^"]+)"|(?P<cmp><=|>=|==|<|>)|(?P<op>[-+*/()])'
                     r"|(?P<name>[A-Za-z_][\w ']*[\w']|[A-Za-z_]))")



def parse_condition(text: str, where: str) -> tuple:
    """Parse ``a op b`` into ``("cmp", op, left, right)``; SdInputError when malformed."""
    if nesting_depth(text) > 100:  # the parser recurses once per level
        raise SdInputError(f"{where}: condition {text[:60]!r}... nests parentheses too deeply "
                           "(at most 100).")
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKENS.match(text, pos)
        if not m:
            raise SdInputError(f"{where}: cannot read {text[pos:].strip()!r} in condition {text!r}; "
                               'write e.g. \'"Propane Share" <= 1\'.')
        kind = m.lastgroup
        value = m.group(kind)
        tokens.append(("name", value.strip()) if kind in ("name", "qname") else (kind, value))
        pos = m.end()
    cmps = [i for i, t in enumerate(tokens) if t[0] == "cmp"]
    if len(cmps) != 1:
        raise SdInputError(f"{where}: condition {text!r} needs exactly one comparison "
                           "(<, <=, >, >=, ==).")
    i = cmps[0]
    left, right = _expr(tokens[:i], text, where), _expr(tokens[i + 1:], text, where)
    return ("cmp", tokens[i][1], left, right)


def _expr(tokens, text, where):
    tree, pos = _sum(tokens, 0, text, where)
    if pos != len(tokens):
        raise SdInputError(f"{where}: unexpected {tokens[pos][1]!r} in condition {text!r}.")
    return tree


def _sum(tokens, pos, text, where):
    left, pos = _prod(tokens, pos, text, where)
    while pos < len(tokens) and tokens[pos] in (("op", "+"), ("op", "-")):
        right, nxt = _prod(tokens, pos + 1, text, where)
        left, pos = (tokens[pos][1], left, right), nxt
    return left, pos


def _prod(tokens, pos, text, where):
    left, pos = _atom(tokens, pos, text, where)
    while pos < len(tokens) and tokens[pos] in (("op", "*"), ("op", "/")):
        right, nxt = _atom(tokens, pos + 1, text, where)
        left, pos = (tokens[pos][1], left, right), nxt
    return left, pos


def _atom(tokens, pos, text, where):
    if pos >= len(tokens):
        raise SdInputError(f"{where}: condition {text!r} ends too early.")
    kind, value = tokens[pos]
    if kind == "num":
        return ("num", float(value)), pos + 1
    if kind == "name":
        return ("var", value), pos + 1
    if (kind, value) == ("op", "-"):
        inner, pos = _atom(tokens, pos + 1, text, where)
        return ("neg", inner), pos
    if (kind, value) == ("op", "("):
        inner, pos = _sum(tokens, pos + 1, text, where)
        if pos >= len(tokens) or tokens[pos] != ("op", ")"):
            raise SdInputError(f"{where}: unbalanced parenthesis in condition {text!r}.")
        return inner, pos + 1
    raise SdInputError(f"{where}: unexpected {value!r} in condition {text!r}.")


def _names(tree) -> list[str]:
    if tree[0] == "var":
        return [tree[1]]
    return [n for part in tree[1:] if isinstance(part, tuple) for n in _names(part)]


def _evaluate(tree, ds, model):
    kind = tree[0]
    if kind == "num":
        return tree[1]
    if kind == "var":
        return ds[model.variable(tree[1]).name]
    if kind == "neg":
        return -_evaluate(tree[1], ds, model)
    a, b = _evaluate(tree[1], ds, model), _evaluate(tree[2], ds, model)
    if kind == "/":  # numpy's division: x / 0 is inf (the check then says so), not an error
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.divide(a, b)
    return {"+": a + b, "-": a - b, "*": a * b}[kind]


# -- reading the file ----------------------------------------------------------------
def load_tests(path: str | Path, model) -> TestsFile:
    """Read and validate a tests file against ``model`` (names checked now, not mid-run).

    Raises
    ------
    SdInputError
        Missing file, malformed TOML, unknown key, malformed condition, or a
        variable the model does not have (with the closest names).
    """
    path = Path(path)
    data = read_toml(path, "Tests file")
    unknown = set(data) - {"test", "conservation", "model", "description"}
    if unknown:
        key = sorted(unknown)[0]
        raise SdInputError(f"{path}: unknown top-level key {key!r}; expected [[test]] or "
                           "[[conservation]] tables." + suggest(key, ["test", "conservation"]))
    tests = tuple(_test(t, i, path, model) for i, t in enumerate(_tables(data, "test", path)))
    cons = tuple(_conservation(t, i, path, model)
                 for i, t in enumerate(_tables(data, "conservation", path)))
    if not tests and not cons:
        raise SdInputError(f"{path}: no [[test]] or [[conservation]] table.")
    return TestsFile(path, tests, cons)


def _tables(data, key, path) -> list:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise SdInputError(f"{path}: '{key}' must be an array of tables, written [[{key}]].")
    return value


def _test(table: dict, i: int, path: Path, model) -> ExtremeTest:
    name = str(table.get("name", f"test {i + 1}"))
    where = f"{path} [[test]] {name!r}"
    known_keys(table, _TEST_KEYS, where)
    constants = {}
    for key, value in _mapping(table, "constants", where).items():
        var = model.variable(key, kinds=("constant",), what="constant", where=f" (in {where})")
        constants[var.name] = number(value, f"{where}: constants {key!r}")
    time = {time_key(k, f"{where}: time"): number(v, f"{where}: time {k!r}")
            for k, v in _mapping(table, "time", where).items()}
    raw = table.get("expect")
    if not isinstance(raw, list) or not raw:
        raise SdInputError(f"{where}: 'expect' must be a non-empty list of conditions, e.g. "
                           'expect = [\'"Propane Share" >= 0\'].')
    expect = tuple(_expectation(e, f"{where} expect[{j}]", model) for j, e in enumerate(raw))
    scenario = table.get("scenario")
    return ExtremeTest(name, None if scenario is None else str(scenario), constants, time,
                       expect, where)


def _mapping(table, key, where) -> dict:
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise SdInputError(f"{where}: '{key}' must be a table of NAME = VALUE.")
    return value


def _expectation(raw, where: str, model) -> Expectation:
    if isinstance(raw, str):
        raw = {"that": raw}
    if not isinstance(raw, dict) or "that" not in raw:
        raise SdInputError(f"{where}: expected a condition string or a table with 'that'.")
    known_keys(raw, _EXPECT_KEYS, where)
    text = str(raw["that"])
    tree = parse_condition(text, where)
    for name in _names(tree):
        model.variable(name, where=f" (in {where})")
    opt = {k: number(raw[k], f"{where}: {k}") for k in ("at", "from", "to", "tolerance") if k in raw}
    if "at" in opt and ("from" in opt or "to" in opt):
        raise SdInputError(f"{where}: give either 'at' or 'from'/'to', not both.")
    tol = opt.get("tolerance", _DEFAULT_TOL)
    if tol < 0:
        raise SdInputError(f"{where}: tolerance must be >= 0, got {tol}.")
    return Expectation(text, tree, opt.get("at"), opt.get("from"), opt.get("to"), tol)


def _conservation(table: dict, i: int, path: Path, model) -> Conservation:
    name = str(table.get("name", f"conservation {i + 1}"))
    where = f"{path} [[conservation]] {name!r}"
    known_keys(table, _CONSERVATION_KEYS, where)

    def names(key, kinds, what):
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SdInputError(f"{where}: '{key}' must be a list of Vensim names.")
        return tuple(model.variable(v, kinds=kinds, what=what, where=f" (in {where})").name
                     for v in value)

    stocks = names("stocks", ("stock",), "stock")
    if not stocks:
        raise SdInputError(f"{where}: 'stocks' must name at least one stock.")
    tol = number(table.get("tolerance", 1e-6), f"{where}: tolerance")
    scenario = table.get("scenario")
    return Conservation(name, stocks, names("inflows", ("flow",), "flow"),
                        names("outflows", ("flow",), "flow"),
                        None if scenario is None else str(scenario), tol, where)


# -- running ------------------------------------------------------------------------
def run_tests(spec: TestsFile, model, equations) -> list[CheckResult]:
    """Run every extreme-condition test and conservation declaration.

    Parameters
    ----------
    spec : TestsFile
        From :func:`load_tests`.
    model : sd.model.Model
        The loaded model (runs go through :func:`sd.simulation.run`).
    equations : sd.equations.Equations
        The parsed equations (for the structure of stocks and flows).

    Returns
    -------
    list of CheckResult
        One per expectation and per conservation declaration.
    """
    results = []
    for test in spec.tests:
        try:
            ds = _run(model, test.scenario, test.constants, test.time, test.name, test.where)
        except SdRuntimeError as exc:  # an extreme input that breaks the run fails the test
            results.append(CheckResult(test.name, False, f"the run failed: {exc}"))
            continue
        for exp in test.expect:
            results.append(_judge(test.name, exp, ds, model))
    for cons in spec.conservation:
        results.extend(_conserve(cons, model, equations))
    return results


def _run(model, scenario_name, constants, time, label, where):
    from .scenarios import Scenario, resolve
    from .simulation import run

    base = resolve(scenario_name, model.path) if scenario_name else Scenario(name="baseline")
    return run(model, base.merged(Scenario(name=label, constants=constants, time=time,
                                           source=where)))


def _judge(test_name: str, exp: Expectation, ds, model) -> CheckResult:
    _, op, left, right = exp.tree
    a, b = _evaluate(left, ds, model), _evaluate(right, ds, model)
    gap = np.asarray(_broadcast(a - b, ds))  # a - b, with time first
    times = ds["time"].values
    mask = np.ones(times.shape, bool)
    if exp.at is not None:
        idx = int(np.argmin(np.abs(times - exp.at)))
        if not math.isclose(times[idx], exp.at, rel_tol=0, abs_tol=1e-9 * max(1, abs(exp.at))):
            return CheckResult(f"{test_name}: {exp.text}", False,
                               f"time {exp.at:g} is not a saved time (saved {times[0]:g} to "
                               f"{times[-1]:g} every {times[1] - times[0]:g})")
        mask[:] = False
        mask[idx] = True
    else:
        if exp.start is not None:
            mask &= times >= exp.start
        if exp.end is not None:
            mask &= times <= exp.end
    tol = exp.tolerance
    ok = {"<": gap < tol, "<=": gap <= tol, ">": gap > -tol, ">=": gap >= -tol,
          "==": np.abs(gap) <= tol}[op]
    bad = ~ok.reshape(len(times), -1) & mask[:, None]
    label = f"{test_name}: {exp.text} ({exp.when()})"
    if not bad.any():
        return CheckResult(label, True, "holds")
    k = int(np.argmax(bad.any(axis=1)))
    label_el, where = _element(a - b, int(np.argmax(bad[k])))
    values = ", ".join(f"{n}{label_el} = {_value(ds[model.variable(n).name], k, where):.6g}"
                       for n in dict.fromkeys(_names(exp.tree)))
    return CheckResult(label, False, f"first violated at time {times[k]:g}: {values}")


def _broadcast(value, ds):
    if np.isscalar(value):
        return np.full(ds.sizes["time"], value)
    return value.transpose("time", ...).values


def _element(diff, flat: int) -> tuple[str, dict]:
    """The subscript element at ``flat`` (after time): ``("[a,b]", {dim: coord})``."""
    if np.isscalar(diff):
        return "", {}
    dims = [d for d in diff.transpose("time", ...).dims if d != "time"]
    if not dims:
        return "", {}
    index = np.unravel_index(flat, [diff.sizes[d] for d in dims])
    where = {d: diff[d].values[i] for d, i in zip(dims, index)}
    return "[" + ",".join(str(v) for v in where.values()) + "]", where


def _value(da, k: int, where: dict) -> float:
    """A variable's value at time index ``k`` and the violating element."""
    da = da.isel(time=k)
    da = da.sel({d: v for d, v in where.items() if d in da.dims})
    return float(np.asarray(da.values).ravel()[0])


def _conserve(cons: Conservation, model, equations) -> list[CheckResult]:
    label = f"conservation {cons.name!r}"
    problems = _structure(cons, equations)
    if problems:
        return [CheckResult(label, False, "; ".join(problems))]
    step = _time_step(equations)
    time = {"saveper": step} if step else {}
    ds = _run(model, cons.scenario, {}, time, cons.name, cons.where)
    total = sum(ds[s].values for s in cons.stocks)
    net = sum((ds[f].values for f in cons.inflows), np.zeros_like(total)) \
        - sum((ds[f].values for f in cons.outflows), np.zeros_like(total))
    dt = np.diff(ds["time"].values)
    residual = np.diff(total) - dt * net[:-1]
    scale = max(float(np.max(np.abs(total))), 1e-12)
    worst = int(np.argmax(np.abs(residual))) if residual.size else 0
    if residual.size and abs(residual[worst]) > cons.tolerance * scale:
        t = ds["time"].values[worst]
        return [CheckResult(label, False, f"the total of {', '.join(cons.stocks)} changes by "
                            f"{np.diff(total)[worst]:.6g} from time {t:g} to "
                            f"{ds['time'].values[worst + 1]:g}, the declared flows by "
                            f"{dt[worst] * net[worst]:.6g}")]
    what = "stays constant" if not cons.inflows and not cons.outflows else \
        "changes only by " + ", ".join(cons.inflows + cons.outflows)
    return [CheckResult(label, True, f"total of {', '.join(cons.stocks)} {what} "
                        f"(structure, and {residual.size} steps within {cons.tolerance:g})")]


def _structure(cons: Conservation, equations) -> list[str]:
    """Flows that cross the stock set's boundary undeclared, or create stock inside it."""
    from .model.equations import norm

    inside = {norm(s) for s in cons.stocks}
    declared_in = {norm(f) for f in cons.inflows}
    declared_out = {norm(f) for f in cons.outflows}
    net: dict[str, int] = {}
    unclear = set()
    for stock in inside:
        for flow, sign in equations.flows.get(stock, ()):
            if sign == 0:
                unclear.add(flow)
            net[flow] = net.get(flow, 0) + sign
    problems = [f"'{equations.name(f)}' enters a stock through an expression whose sign is "
                "unclear" for f in sorted(unclear)]
    for flow, total in sorted(net.items()):
        name = equations.name(flow)
        if total == 0 and (flow in declared_in or flow in declared_out):
            problems.append(f"'{name}' moves stock between two stocks of the set; it is not a "
                            "boundary flow")
        elif total > 0 and flow not in declared_in:
            problems.append(f"'{name}' adds to the set without being declared in inflows"
                            + (" (a flow counted twice creates stock)" if total > 1 else ""))
        elif total < 0 and flow not in declared_out:
            problems.append(f"'{name}' drains the set without being declared in outflows")
    for flow in sorted((declared_in | declared_out) - set(net)):
        problems.append(f"declared flow '{equations.name(flow)}' touches none of the stocks")
    return problems


def _time_step(equations) -> float | None:
    el = equations.elements.get("time_step")
    if el and el.asts and isinstance(el.asts[0], (int, float, np.number)):
        return float(el.asts[0])
    return None
