"""Vensim's Units Check: dimensional analysis of every equation.

Units are inferred from the inside out, as Vensim does: a reference has its
declared units, products multiply them, sums and comparisons need equal units,
functions have defined units (INTEG: rate = stock / time; SMOOTH, DELAY: the
input's; IF THEN ELSE: both branches equal; ZIDZ(a, b): a/b; a lookup returns
its declared units). Each disagreement is one :class:`UnitFinding` naming the
variable and the two unit expressions.

Conventions, chosen to match Vensim's practice:

* a number in an equation is dimensionless in a product (``2 * x``) and takes
  the units of the other side in a sum or comparison (``1 - x``, ``x > 0``);
  an expression made only of numbers fits any declared units;
* a variable without units is not checked and makes the expressions that use
  it unchecked (the missing units are reported by the documentation check);
* the time unit is the units of TIME STEP (else INITIAL TIME / FINAL TIME).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .equations import Equations, norm
from .units import DMNL, Unit, UnitSyntaxError, UnitSystem, model_synonyms

__all__ = ["UnitFinding", "check_units"]


class _Any:
    """Units of an expression made only of numbers: fits any units."""

    def __repr__(self):
        return "ANY"


class _Unknown:
    """Units that cannot be known (missing units, an error further in)."""

    def __repr__(self):
        return "UNKNOWN"


ANY, UNKNOWN = _Any(), _Unknown()


@dataclass(frozen=True)
class UnitFinding:
    """One units problem.

    Attributes
    ----------
    variable : str
        Vensim name of the variable whose equation is wrong.
    message : str
        What disagrees, with both unit expressions.
    severity : str
        ``error`` (Vensim reports a units error) or ``warning`` (Vensim warns,
        e.g. a lookup called with an argument that has units).
    """

    variable: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        tag = "" if self.severity == "error" else " (warning)"
        return f"'{self.variable}'{tag}: {self.message}"


# Functions whose result has the units of their (equal-unit) arguments.
_SAME_UNITS = {"min", "max", "abs", "integer", "round", "modulo", "sum", "vmin", "vmax",
               "random_uniform", "random_normal", "random_triangular", "quantum",
               "active_initial", "initial", "reinitial", "elmcount", "vector_select",
               "delay", "smooth", "if_then_else"}
# Dimensionless in, dimensionless out.
_DMNL_FUNCS = {"exp", "ln", "log", "sin", "cos", "tan", "arcsin", "arccos", "arctan",
               "sinh", "cosh", "tanh", "random_poisson", "random_exponential"}
# Functions of time returning a dimensionless pulse.
_PULSES = {"pulse", "pulse_train"}
_TIME_VARS = {"time", "initial_time", "final_time", "time_step", "saveper"}


class _Checker:
    def __init__(self, eqs: Equations, system: UnitSystem):
        self.eqs = eqs
        self.system = system
        self.findings: list[UnitFinding] = []
        self.declared: dict[str, object] = {}
        for key, el in eqs.elements.items():
            self.declared[key] = self._declared(el)
        self.time = next((self.declared[k] for k in ("time_step", "initial_time", "final_time")
                          if isinstance(self.declared.get(k), Unit)), UNKNOWN)
        self.current = ""

    def _declared(self, el):
        if not el.units:
            return UNKNOWN
        try:
            return self.system.parse(el.units)
        except UnitSyntaxError as exc:
            self.findings.append(UnitFinding(el.name, f"units field {el.units!r} is not Vensim "
                                             f"unit syntax ({exc})"))
            return UNKNOWN

    # -- reporting -------------------------------------------------------
    def fmt(self, unit) -> str:
        return self.system.format(unit) if isinstance(unit, Unit) else "?"

    def text(self, node) -> str:
        return _text(node, lambda ref: self.eqs.name(norm(ref)))

    def report(self, message: str, severity: str = "error") -> None:
        finding = UnitFinding(self.current, message, severity)
        if finding not in self.findings:  # subscripted equations repeat the same mistake
            self.findings.append(finding)

    # -- equations -------------------------------------------------------
    def check_element(self, el) -> None:
        from pysd.translators.structures import abstract_expressions as ae

        if el.kind in ("lookup", "data"):
            return
        self.current = el.name
        declared = self.declared[el.key]
        for ast in el.asts:
            if isinstance(ast, ae.IntegStructure):
                self.check_stock(el, ast, declared)
                continue
            if isinstance(ast, (ae.InlineLookupsStructure,)):
                self.infer(ast.argument, lookup_arg=True)
                continue
            got = self.infer(ast)
            self.compare(declared, got, f"'{el.name}' is declared in {self.fmt(declared)} "
                                        f"but its equation {self.text(ast)} gives {{got}}")

    def compare(self, want, got, template: str) -> None:
        if not isinstance(want, Unit) or not isinstance(got, Unit) or want == got:
            return
        self.report(template.format(want=self.fmt(want), got=self.fmt(got)))

    def check_stock(self, el, ast, declared) -> None:
        from pysd.translators.structures import abstract_expressions as ae

        rate = declared / self.time if isinstance(declared, Unit) and isinstance(self.time, Unit) \
            else UNKNOWN
        terms = [ast.flow]
        flow = ast.flow
        if isinstance(flow, ae.ArithmeticStructure) and set(flow.operators) <= {"+", "-", "negative"}:
            terms = list(flow.arguments)
        for term in terms:
            got = self.infer(term)
            what = f"flow '{self.eqs.name(norm(term.reference))}'" \
                if isinstance(term, ae.ReferenceStructure) else f"rate {self.text(term)}"
            self.compare(rate, got, f"stock in {self.fmt(declared)} needs flows in {{want}} "
                                    f"(stock units / time units {self.fmt(self.time)}), but its "
                                    f"{what} is in {{got}}")
        got = self.infer(ast.initial)
        self.compare(declared, got, f"stock is in {{want}} but its initial value "
                                    f"{self.text(ast.initial)} is in {{got}}")

    # -- expressions -----------------------------------------------------
    def infer(self, node, lookup_arg: bool = False):
        unit = self._infer(node)
        if lookup_arg and isinstance(unit, Unit) and not unit.dimensionless:
            self.report(f"lookup argument {self.text(node)} is in {self.fmt(unit)}; Vensim expects "
                        "a dimensionless input (divide by a reference value)", "warning")
        return unit

    def _infer(self, node):
        from pysd.translators.structures import abstract_expressions as ae

        if isinstance(node, (int, float, np.ndarray, np.number)):
            return ANY
        if isinstance(node, str):
            return UNKNOWN
        if isinstance(node, ae.ReferenceStructure):
            key = norm(node.reference)
            if key == "time":
                return self.time
            return self.declared.get(key, UNKNOWN)
        if isinstance(node, ae.ArithmeticStructure):
            return self._arith(node)
        if isinstance(node, ae.LogicStructure):
            return self._logic(node)
        if isinstance(node, ae.CallStructure):
            return self._call(node)
        handler = _STRUCTURES.get(type(node).__name__)
        return handler(self, node) if handler else UNKNOWN

    def _arith(self, node):
        ops, args = list(node.operators), node.arguments
        if ops == ["negative"]:
            return self._infer(args[0])
        if set(ops) <= {"+", "-"}:
            return self.same([self._infer(a) for a in args], args, "add", "+")
        if set(ops) <= {"*", "/"}:
            unit = self._infer(args[0])
            for op, arg in zip(ops, args[1:]):
                unit = _product(unit, self._infer(arg), op)
            return unit
        if ops and set(ops) == {"^"}:
            unit = self._infer(args[0])
            for arg in args[1:]:
                unit = self._power(unit, arg)
            return unit
        return UNKNOWN

    def _power(self, base, exponent):
        exp_unit = self._infer(exponent)
        if isinstance(exp_unit, Unit) and not exp_unit.dimensionless:
            self.report(f"exponent {self.text(exponent)} is in {self.fmt(exp_unit)}; "
                        "an exponent must be dimensionless")
            return UNKNOWN
        value = _number(exponent)
        if value is None and isinstance(exponent, ae_reference()):
            el = self.eqs.elements.get(norm(exponent.reference))
            if el is not None and el.kind == "constant" and len(el.asts) == 1:
                value = _number(el.asts[0])  # a named constant: its value is known
        if base is ANY:
            return ANY
        if not isinstance(base, Unit):
            return UNKNOWN
        if value is not None:
            return base ** Fraction(value).limit_denominator(1000)
        if not base.dimensionless:
            self.report(f"a quantity in {self.fmt(base)} is raised to the power "
                        f"{self.text(exponent)}, which is not a fixed number: a base with units "
                        "needs a numeric exponent")
            return UNKNOWN
        return DMNL

    def same(self, units, nodes, verb, joiner):
        """Units that must agree (sums, comparisons, MIN/MAX, IF branches)."""
        known = [(u, n) for u, n in zip(units, nodes) if isinstance(u, Unit)]
        if any(u is UNKNOWN for u in units):
            return UNKNOWN
        if not known:
            return ANY
        first, first_node = known[0]
        for unit, node in known[1:]:
            if unit != first:
                self.report(f"cannot {verb} {self.fmt(first)} ({self.text(first_node)}) and "
                            f"{self.fmt(unit)} ({self.text(node)})")
                return UNKNOWN
        return first

    def _logic(self, node):
        ops = list(node.operators)
        units = [self._infer(a) for a in node.arguments]
        if set(ops) <= {"=", "<>", "<", "<=", ">", ">="}:
            self.same(units, node.arguments, "compare", ops[0])
        return DMNL

    def _call(self, node):
        from pysd.translators.structures import abstract_expressions as ae

        func = norm(node.function.reference) if isinstance(node.function, ae.ReferenceStructure) else ""
        args = node.arguments
        el = self.eqs.elements.get(func)
        if el is not None and el.kind == "lookup":
            for arg in args[:1]:
                self.infer(arg, lookup_arg=True)
            return self.declared.get(func, UNKNOWN)
        handler = _CALLS.get(func)
        if handler is not None:
            return handler(self, args)
        if func in _SAME_UNITS:
            return self.same([self._infer(a) for a in args], args, "combine", ",")
        if func in _DMNL_FUNCS:
            for arg in args[:1]:
                unit = self._infer(arg)
                if isinstance(unit, Unit) and not unit.dimensionless:
                    self.report(f"{func.upper()} needs a dimensionless argument, but "
                                f"{self.text(arg)} is in {self.fmt(unit)}")
            return DMNL
        for arg in args:  # an unknown function: check inside, result unknown
            self._infer(arg)
        return UNKNOWN

    def time_arg(self, node, role: str) -> None:
        unit = self._infer(node)
        if isinstance(unit, Unit) and isinstance(self.time, Unit) and unit != self.time:
            self.report(f"{role} {self.text(node)} is in {self.fmt(unit)}, not in the time unit "
                        f"{self.fmt(self.time)}")


def ae_reference():
    from pysd.translators.structures import abstract_expressions as ae
    return ae.ReferenceStructure


def _product(left, right, op):
    if left is UNKNOWN or right is UNKNOWN:
        return UNKNOWN
    if left is ANY and right is ANY:
        return ANY
    left = DMNL if left is ANY else left
    right = DMNL if right is ANY else right
    return left * right if op == "*" else left / right


def _number(node):
    if isinstance(node, (int, float, np.number)):
        return float(node)
    return None


# -- functions with their own rules -------------------------------------------
def _if_then_else(c: _Checker, args):
    c._infer(args[0])
    return c.same([c._infer(a) for a in args[1:3]], args[1:3], "choose between", ",")


def _zidz(c: _Checker, args):
    ratio = _product(c._infer(args[0]), c._infer(args[1]), "/")
    if len(args) > 2:  # XIDZ(a, b, x): x has the units of a/b
        return c.same([ratio, c._infer(args[2])], [args[0], args[2]], "combine", ",")
    return ratio


def _step(c: _Checker, args):
    c.time_arg(args[1], "STEP time")
    return c._infer(args[0])


def _ramp(c: _Checker, args):
    for arg in args[1:]:
        c.time_arg(arg, "RAMP time")
    slope = c._infer(args[0])
    if slope is ANY:  # RAMP(1, ...): a number takes the units the equation needs
        return ANY
    return _product(slope, c.time, "*") if isinstance(c.time, Unit) else UNKNOWN


def _pulse(c: _Checker, args):
    for arg in args:
        c.time_arg(arg, "PULSE time")
    return DMNL


def _sqrt(c: _Checker, args):
    unit = c._infer(args[0])
    return unit ** Fraction(1, 2) if isinstance(unit, Unit) else unit


def _power_call(c: _Checker, args):
    return c._power(c._infer(args[0]), args[1])


def _lookup_call(c: _Checker, args):
    """LOOKUP INVERT / LOOKUP AREA etc.: result unknown, check the inside."""
    for arg in args:
        c._infer(arg)
    return UNKNOWN


_CALLS = {"if_then_else": _if_then_else, "zidz": _zidz, "xidz": _zidz, "step": _step,
          "ramp": _ramp, "pulse": _pulse, "pulse_train": _pulse, "sqrt": _sqrt,
          "power": _power_call, "lookup_invert": _lookup_call}


def _delay_like(c: _Checker, node):
    time_field = next(f for f in ("delay_time", "smooth_time", "average_time")
                      if hasattr(node, f))
    c.time_arg(getattr(node, time_field), "delay time")
    unit = c._infer(node.input)
    return c.same([unit, c._infer(node.initial)], [node.input, node.initial], "start",
                  ",") if hasattr(node, "initial") else unit


def _trend(c: _Checker, node):
    c.time_arg(node.average_time, "TREND averaging time")
    c._infer(node.input)
    c._infer(node.initial_trend)
    # TREND is a fractional rate of change: (input - average) / (average * time)
    return DMNL / c.time if isinstance(c.time, Unit) else UNKNOWN


def _forecast(c: _Checker, node):
    c.time_arg(node.average_time, "FORECAST averaging time")
    c.time_arg(node.horizon, "FORECAST horizon")
    return c._infer(node.input)


def _sample_if_true(c: _Checker, node):
    c._infer(node.condition)
    return c.same([c._infer(node.input), c._infer(node.initial)], [node.input, node.initial],
                  "start", ",")


def _initial(c: _Checker, node):
    return c._infer(node.initial)


def _inline_lookup(c: _Checker, node):
    c.infer(node.argument, lookup_arg=True)
    return ANY  # WITH LOOKUP returns the declared units of the variable


def _nested_integ(c: _Checker, node):
    return UNKNOWN


_STRUCTURES = {
    "DelayStructure": _delay_like, "DelayNStructure": _delay_like, "DelayFixedStructure": _delay_like,
    "SmoothStructure": _delay_like, "SmoothNStructure": _delay_like, "TrendStructure": _trend,
    "ForecastStructure": _forecast, "SampleIfTrueStructure": _sample_if_true,
    "InitialStructure": _initial, "InlineLookupsStructure": _inline_lookup,
    "IntegStructure": _nested_integ,
}


def _text(node, name) -> str:
    """Vensim-like text of an AST, for messages."""
    from pysd.translators.structures import abstract_expressions as ae

    if isinstance(node, ae.ReferenceStructure):
        return name(node.reference)
    if isinstance(node, (int, float, np.number)):
        return f"{float(node):g}"
    if isinstance(node, ae.ArithmeticStructure):
        ops, args = list(node.operators), node.arguments
        if ops == ["negative"]:
            return f"-{_text(args[0], name)}"
        def term(arg):
            inner = _text(arg, name)
            nested = isinstance(arg, ae.ArithmeticStructure) and list(arg.operators) != ["negative"]
            return f"({inner})" if nested else inner

        return " ".join([term(args[0])] + [f"{op} {term(a)}" for op, a in zip(ops, args[1:])])
    if isinstance(node, ae.LogicStructure):
        return f" {node.operators[0]} ".join(_text(a, name) for a in node.arguments)
    if isinstance(node, ae.CallStructure):
        fn = node.function.reference if isinstance(node.function, ae.ReferenceStructure) else "?"
        return f"{_ref_name(fn).upper() if fn in _KNOWN_FUNCS else name(fn)}(" \
               + ", ".join(_text(a, name) for a in node.arguments) + ")"
    return type(node).__name__.replace("Structure", "").upper() + "(...)"


_KNOWN_FUNCS = set(_CALLS) | _SAME_UNITS | _DMNL_FUNCS | _PULSES


def _ref_name(ref: str) -> str:
    return ref.replace("_", " ")


def check_units(eqs: Equations, synonyms=None) -> list[UnitFinding]:
    """Check the units of every equation of a model.

    Parameters
    ----------
    eqs : Equations
        From :func:`sd.equations.read_equations`.
    synonyms : iterable of tuple of str, optional
        Unit synonym groups; default: those declared in the model
        (:func:`sd.units.model_synonyms`).

    Returns
    -------
    list of UnitFinding
        Empty when the units are consistent.
    """
    system = UnitSystem(model_synonyms(eqs.path) if synonyms is None else synonyms)
    checker = _Checker(eqs, system)
    for el in eqs.elements.values():
        checker.check_element(el)
    return checker.findings
