"""Time settings: computed from the model, overridden by a scenario, checked once.

Both engines and every scenario go through :func:`settings`: the model's
INITIAL TIME, FINAL TIME, TIME STEP and SAVEPER are evaluated from the parsed
equations (numbers, or arithmetic of constants and other control values, as
Vensim requires), the run's overrides are applied (an overridden TIME STEP is
followed by ``SAVEPER = TIME STEP``, as in PySD), and the result is refused
unless it describes a finite run:

* TIME STEP > 0 (0 made PySD loop forever) and SAVEPER > 0;
* FINAL TIME >= INITIAL TIME;
* SAVEPER a whole multiple of TIME STEP (otherwise PySD and the engine save
  only the steps that happen to fall on it, silently changing the grid);
* no more than :func:`step_limit` time steps x variables (a limit the user
  raises with the environment variable ``SD_STEP_LIMIT``);
* no control value that depends on a stock, a delay or Time (FINAL TIME that
  depends on a stock made PySD run forever).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from .._common import TIME_KEYS as NAMES
from .._common import env_limit, number, time_key
from ..errors import SdInputError, canon
from .structure import STATEFUL as _STATEFUL, walk

#: Scenario keys of the four control variables, in Vensim's order.
KEYS = tuple(NAMES)
#: Default bound on time steps x variables of one run.
DEFAULT_STEP_LIMIT = 10**7


@dataclass(frozen=True)
class TimeSettings:
    """The checked time settings of one run."""

    initial_time: float
    final_time: float
    time_step: float
    saveper: float

    @property
    def steps(self) -> int:
        """Euler steps from INITIAL TIME to FINAL TIME."""
        return int(math.ceil((self.final_time - self.initial_time) / self.time_step - 1e-9))


def step_limit() -> int:
    """Time steps x variables allowed in one run (``SD_STEP_LIMIT``)."""
    return env_limit("SD_STEP_LIMIT", DEFAULT_STEP_LIMIT, "time steps x variables")


def settings(model, time: Mapping[str, float] | None = None,
             constants: Mapping[str, float] | None = None, where: str = "") -> TimeSettings:
    """The checked time settings of a run of ``model`` (a loaded Model).

    Parameters
    ----------
    time : mapping, optional
        Overrides by key of :data:`KEYS` (Vensim names accepted too).
    constants : mapping, optional
        Constant overrides by Vensim name (control values may use constants).
    where : str
        Where the overrides came from, for messages (e.g. ``" (in s.toml)"``).

    Raises
    ------
    SdInputError
        See the module docstring; the message names the model file, the
        setting and, for overrides, ``where``.
    """
    fixed = {}
    for key, value in (time or {}).items():
        k = time_key(key, f"time settings{where}")
        fixed[NAMES[k]] = number(value, f"{NAMES[k]}{where}", strings=True)
    values = _recorded(model, fixed, constants or {}) or \
        _Evaluator(model, fixed, constants or {}).controls()
    s = TimeSettings(*(values[NAMES[k]] for k in KEYS))
    _check(s, model, where)
    return s


def recorded_controls(model) -> dict | None:
    """``{control: [value, names it reads]}`` of the model as written (what
    :mod:`sd.model.stored` keeps, so a run need not parse the model for its
    time settings); ``None`` when a control cannot be evaluated (a run then
    says why)."""
    out = {}
    try:
        for name in NAMES.values():
            ev = _Evaluator(model, {}, {})
            out[name] = [ev.value(canon(name), name, ()), sorted(ev.memo)]
    except SdInputError:
        return None
    return out


def _recorded(model, fixed: dict, constants: Mapping) -> dict | None:
    """The recorded control values, with ``fixed`` applied, when no override
    reaches one that is not fixed; else ``None`` (evaluate from the equations)."""
    stored = getattr(model, "stored", None)
    recorded = stored.get("controls") if stored else None
    if not recorded:
        return None
    overridden = {canon(k) for k in constants}
    changed = {canon(k) for k in fixed} | overridden
    out = {}
    for name in NAMES.values():
        if canon(name) in overridden:
            return None
        if name in fixed:
            out[name] = fixed[name]
            continue
        value, reads = recorded[name]
        if changed & set(reads):
            return None
        out[name] = float(value)
    return out


def _located(model, where: str, control: str) -> str:
    """``file:line`` of the model's time settings (or the file, when the
    values come from overrides, which ``where`` names)."""
    from .structure import line_of_definition

    if where:
        return str(model.path)
    line = line_of_definition(model.source.text, control)
    return f"{model.path}:{line}" if line else str(model.path)


def _check(s: TimeSettings, model, where: str) -> None:
    def at(control: str) -> str:     # computed only for a message (a regex over the file)
        return _located(model, where, control)

    if not s.time_step > 0:
        raise SdInputError(f"{at('TIME STEP')}: TIME STEP{where} is {s.time_step:g}; it must be "
                           "positive (e.g. 1, 0.25 or 0.0625 of the model's time unit).")
    if not s.saveper > 0:
        raise SdInputError(f"{at('SAVEPER')}: SAVEPER{where} is {s.saveper:g}; it must be "
                           "positive (set it to TIME STEP to save every step).")
    if s.final_time < s.initial_time:
        raise SdInputError(f"{at('FINAL TIME')}: FINAL TIME{where} ({s.final_time:g}) is before "
                           f"INITIAL TIME ({s.initial_time:g}).")
    ratio = s.saveper / s.time_step
    if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6 * max(1.0, ratio):
        lower = max(1, math.floor(ratio)) * s.time_step
        upper = max(1, math.ceil(ratio)) * s.time_step
        raise SdInputError(
            f"{at('SAVEPER')}: SAVEPER{where} ({s.saveper:g}) is not a whole multiple of TIME "
            f"STEP ({s.time_step:g}): only the steps that fall on multiples of SAVEPER would be "
            f"saved, so the output grid would not be every {s.saveper:g}. Use SAVEPER = "
            f"{lower:g}" + (f" or {upper:g}." if upper != lower else "."))
    n_vars = max(1, len(model.variables))
    limit = step_limit()
    span = (s.final_time - s.initial_time) / s.time_step
    # FINAL TIME = 1e308 with INITIAL TIME < 0, or a TIME STEP of 1e-320: too many
    # steps to count (an infinite float has no integer); refused like any long run
    steps = s.steps if math.isfinite(span) else math.inf
    if steps * n_vars > limit:
        raise SdInputError(
            f"{at('FINAL TIME')}: the run{where} has {_count(steps)} time steps ((FINAL TIME - "
            f"INITIAL TIME) / TIME STEP) for {n_vars} variables, {_count(steps * n_vars)} values, "
            f"above the limit of {limit:.3g}. Check FINAL TIME and TIME STEP, or raise the limit with the "
            "environment variable SD_STEP_LIMIT"
            + (f" (e.g. SD_STEP_LIMIT={steps * n_vars:.0f})." if steps < 1e15 else "."))


def _count(n) -> str:
    """A count for a message: exact with separators, or 3 digits when absurdly large."""
    if not math.isfinite(n):
        return "more than 1e308"
    return f"{n:,}" if n < 1e15 else f"{n:.3g}"


_FUNCTIONS = {"min": min, "max": max, "abs": abs, "integer": lambda x: float(math.trunc(x)),
              "exp": math.exp, "ln": math.log, "sqrt": math.sqrt}
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
        "/": lambda a, b: a / b, "^": lambda a, b: a ** b}


_COMPARE = {"=": lambda a, b: a == b, "<>": lambda a, b: a != b, "<": lambda a, b: a < b,
            ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}


def _references(node) -> list:
    return [n.reference for n in walk(node) if type(n).__name__ == "ReferenceStructure"]


class _Evaluator:
    """Values of control variables from the abstract model: numbers and
    arithmetic of constants and other controls, nothing that changes in time."""

    def __init__(self, model, fixed: dict, constants: Mapping):
        self.model = model
        main = model.abstract.sections[0]
        self.elements = {canon(el.name): el for el in main.elements}
        self.fixed = {canon(k): v for k, v in fixed.items()}
        self.fixed.update({canon(k): float(v) for k, v in constants.items()})
        self.memo: dict = {}

    def controls(self) -> dict:
        return {name: self.value(canon(name), name, ()) for name in NAMES.values()}

    def value(self, key: str, control: str, chain: tuple) -> float:
        if key in self.fixed:
            return self.fixed[key]
        if key in self.memo:
            return self.memo[key]
        el = self.elements.get(key)
        if el is None:
            if key == "time":
                self._refuse(control, "it depends on Time, which changes during the run")
            self._refuse(control, f"it uses {key!r}, which is not a variable of the model")
        if key in chain:
            self._refuse(control, f"{el.name!r} depends on itself")
        if len(el.components) == 1 and type(el.components[0].ast).__name__ in _STATEFUL:
            self._refuse(control, f"it depends on {el.name!r}, a stock or delay, which changes "
                         "during the run")
        if len(el.components) != 1 or el.components[0].subscripts[0]:
            self._refuse(control, f"{el.name!r} is subscripted")
        v = self.expr(el.components[0].ast, control, chain + (key,), el.name)
        if not math.isfinite(v):
            raise SdInputError(f"{self.model.path.name}: {control} evaluates to {v} (through "
                               f"{el.name!r}); it must be a finite number.")
        self.memo[key] = v
        return v

    def expr(self, node, control: str, chain: tuple, owner: str) -> float:
        name = type(node).__name__
        if isinstance(node, bool):
            return float(node)
        if isinstance(node, (int, float)):
            return float(node)
        if name == "ReferenceStructure":
            if node.subscripts:
                self._refuse(control, f"{owner!r} uses a subscripted value")
            return self.value(canon(node.reference), control, chain)
        if name == "ArithmeticStructure":
            ops, args = list(node.operators), list(node.arguments)
            if ops == ["negative"]:
                return -self.expr(args[0], control, chain, owner)
            vals = [self.expr(a, control, chain, owner) for a in args]
            try:
                if all(o == "^" for o in ops):
                    out = vals[-1]
                    for v in reversed(vals[:-1]):
                        out = v ** out
                    return float(out)
                out = vals[0]
                for op, v in zip(ops, vals[1:]):
                    out = _OPS[op](out, v)
                return float(out)
            except (ZeroDivisionError, OverflowError, KeyError, TypeError, ValueError):
                self._refuse(control, f"the arithmetic of {owner!r} has no finite value")
        if name == "LogicStructure" and all(o in _COMPARE for o in node.operators) and \
                len(node.arguments) == 2:
            a, b = (self.expr(x, control, chain, owner) for x in node.arguments)
            return float(_COMPARE[node.operators[0]](a, b))
        if name == "CallStructure" and node.function.reference == "if_then_else" and \
                len(node.arguments) == 3:
            cond = self.expr(node.arguments[0], control, chain, owner)
            return self.expr(node.arguments[1 if cond else 2], control, chain, owner)
        if name == "CallStructure" and node.function.reference in _FUNCTIONS:
            args = [self.expr(a, control, chain, owner) for a in node.arguments]
            try:
                return float(_FUNCTIONS[node.function.reference](*args))
            except (TypeError, ValueError, OverflowError):
                self._refuse(control, f"a function in {owner!r} has no finite value")
        if name in _STATEFUL:
            self._refuse(control, f"{owner!r} is a stock or delay, which changes during the run")
        # say why when a reference inside is the reason (Time, a stock, ...)
        for ref in _references(node):
            self.value(canon(ref), control, chain)
        self._refuse(control, f"{owner!r} uses a function sd cannot evaluate before the run")

    def _refuse(self, control: str, why: str):
        raise SdInputError(
            f"{_located(self.model, '', control)}: {control} changes during "
            f"the run ({why}). sd reads the time settings once, before the run: time "
            "settings that change during a run (which Vensim allows) are not supported. "
            f"Give {control} a number or an expression of constants.")
