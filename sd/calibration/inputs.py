"""The uncertain inputs of a set-valued calibration: where their ranges come from.

A modeler declares a constant's plausible range where Vensim keeps it, in the
units field of the ``.mdl`` (``~ Dmnl [0.05,0.5]``, the range Vensim uses for
its sliders). Every constant with a finite range is an uncertain input, with a
uniform prior over that range, unless the spec says otherwise in its
``[uncertain]`` table:

``exclude = ["Switch *", "Policy *", "Boycott Enforcement"]``
    constants that are not uncertain: structural switches, policy levers,
    counterfactual knobs. Names or shell patterns (``*``, ``?``) matched as
    Vensim matches names (case, blanks and ``_`` ignored); every entry must
    match at least one constant, so a typo is refused, never ignored.
``[uncertain.ranges]`` ``"Name" = [low, high]``
    narrows the ``.mdl`` range (it must lie inside it: the model file is the
    one source of a plausible range), or gives one to a constant without a
    range in the ``.mdl``.

Constants in ``[fixed]`` are held at the spec's value; every other constant
(no range, excluded, subscripted) keeps its value in the ``.mdl``. Why each
constant is or is not uncertain is recorded (:attr:`Inputs.held`).

Which constants are switches or policy levers is the spec's to declare
(``exclude``): sd does not guess it from names or comments. A sampled
constant that looks like one (a range of [0, 1] and a value of 0 or 1 in the
``.mdl``) gets a note in the report asking for the declaration
(:attr:`Inputs.notes`).
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from .._common import number
from ..errors import SdInputError, canon, suggest


@dataclass(frozen=True)
class Input:
    """One uncertain constant with a uniform prior on ``[low, high]``.

    Attributes
    ----------
    name : str
        Vensim name.
    low, high : float
    source : str
        ``"mdl"`` (the units-field range), ``"spec"`` (added by the spec) or
        ``"mdl, narrowed by the spec"``.
    units : str
    """

    name: str
    low: float
    high: float
    source: str = "mdl"
    units: str = ""

    def from_unit(self, u):
        return self.low + np.asarray(u, dtype=float) * (self.high - self.low)

    def to_unit(self, x):
        return (np.asarray(x, dtype=float) - self.low) / (self.high - self.low)


@dataclass(frozen=True)
class Inputs:
    """The uncertain inputs, the fixed values, and why other constants are held.

    Attributes
    ----------
    inputs : tuple of Input
        In model-file order.
    fixed : mapping
        Vensim name -> value set by the spec's ``[fixed]`` table.
    held : mapping
        Vensim name -> why it is not uncertain (``"no range in the .mdl"``,
        ``"excluded by the spec"``, ``"fixed by the spec"``, ...).
    notes : tuple of str
        Sampled constants that look like switches (for the report).
    """

    inputs: tuple
    fixed: Mapping[str, float] = field(default_factory=dict)
    held: Mapping[str, str] = field(default_factory=dict)
    notes: tuple = ()

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def low(self) -> np.ndarray:
        return np.array([i.low for i in self.inputs])

    @property
    def high(self) -> np.ndarray:
        return np.array([i.high for i in self.inputs])

    def to_values(self, U) -> np.ndarray:
        """Unit-cube rows ``U`` (n, d) -> model values (n, d)."""
        U = np.atleast_2d(np.asarray(U, dtype=float))
        return self.low + U * (self.high - self.low)

    def frame(self, U) -> pd.DataFrame:
        """The runs of unit-cube rows ``U``: one column per input, plus the fixed values."""
        X = self.to_values(U)
        df = pd.DataFrame(X, columns=self.names)
        for name, value in self.fixed.items():
            df[name] = value
        return df


def resolve(model, table: Mapping, fixed: Mapping[str, float], where: str) -> Inputs:
    """The uncertain inputs of ``model`` under a spec's ``[uncertain]`` table.

    Parameters
    ----------
    model : sd.model.Model
    table : mapping
        The spec's ``[uncertain]`` table (``exclude``, ``ranges``), checked
        when the spec loaded.
    fixed : mapping
        The spec's ``[fixed]`` values, by (resolved) Vensim name.
    where : str
        The spec file, for messages.

    Raises
    ------
    SdInputError
        An exclusion that matches no constant, a range for a name that is not
        a constant, a range outside the ``.mdl`` range, reversed bounds, or no
        uncertain input at all.
    """
    constants = [v for v in model.variables.values() if v.kind == "constant"]
    excluded = _excluded(constants, table.get("exclude", ()), where)
    ranges = {}
    for name, bounds in dict(table.get("ranges", {})).items():
        var = model.variable(name, kinds=("constant",), what="constant",
                             where=f" ([uncertain.ranges] in {where})")
        ranges[var.name] = _bounds(bounds, f"{where}: [uncertain.ranges] {name!r}")
        if var.name in fixed:
            raise SdInputError(f"{where}: {var.name!r} is both given a range ([uncertain.ranges]) "
                               "and held ([fixed]); keep it in one of them.")
    inputs, held = [], {}
    for var in constants:
        reason = _held(var, excluded, fixed, ranges)
        if reason:
            held[var.name] = reason
            continue
        lo, hi = var.limits
        source = "mdl"
        if var.name in ranges:
            nlo, nhi = ranges[var.name]
            if lo is not None and hi is not None:
                if nlo < lo - 1e-12 or nhi > hi + 1e-12:
                    raise SdInputError(
                        f"{where}: [uncertain.ranges] {var.name!r} = [{nlo:g}, {nhi:g}] is "
                        f"outside its range [{lo:g}, {hi:g}] in {model.path.name}; the spec may "
                        "only narrow a range (widen it in the .mdl's units field, with its "
                        "source).")
                source = "mdl, narrowed by the spec"
            else:
                source = "spec"
            lo, hi = nlo, nhi
        inputs.append(Input(var.name, float(lo), float(hi), source, var.units))
    if not inputs:
        raise SdInputError(f"{where}: no uncertain input: no constant of {model.path.name} "
                           "has a range in its units field (e.g. '~ Dmnl [0.05,0.5]') that the "
                           "spec does not exclude or fix; give ranges in the .mdl or in "
                           "[uncertain.ranges].")
    switches = [i.name for i in inputs if (i.low, i.high) == (0.0, 1.0)
                and _value(model, i.name) in (0.0, 1.0)]
    notes = (f"sampled as uncertain inputs although they look like switches or policy levers "
             f"(range [0, 1], value 0 or 1 in the .mdl): {', '.join(switches)}; if they are, "
             "declare them in the spec's [uncertain] exclude.",) if switches else ()
    return Inputs(tuple(inputs), dict(fixed), held, notes)


def _value(model, name: str):
    """The literal value of a scalar constant in the .mdl (None if it is not one number)."""
    for el in model.abstract.sections[0].elements:
        if el.name == name and len(el.components) == 1:
            ast = el.components[0].ast
            if isinstance(ast, (int, float)) and not isinstance(ast, bool):
                return float(ast)
    return None


def _held(var, excluded: set, fixed, ranges) -> str:
    """Why ``var`` is not an uncertain input ("" when it is one)."""
    if var.name in fixed:
        return "fixed by the spec"
    if var.name in excluded:
        return "excluded by the spec"
    if var.subscripts:
        return "subscripted (held at its values in the .mdl)"
    if var.name in ranges:
        return ""
    lo, hi = var.limits
    if lo is None or hi is None:
        return "no finite range in the .mdl"
    if not hi > lo:
        return f"empty range [{lo:g}, {hi:g}] in the .mdl"
    return ""


def _excluded(constants, patterns, where: str) -> set:
    if isinstance(patterns, str) or not isinstance(patterns, (list, tuple)):
        raise SdInputError(f"{where}: [uncertain] exclude must be a list of constant names or "
                           'patterns, e.g. exclude = ["Switch *", "Policy Enforcement"].')
    names = {canon(v.name): v.name for v in constants}
    out = set()
    for pattern in patterns:
        key = canon(str(pattern))
        hits = [n for k, n in names.items() if fnmatch.fnmatchcase(k, key)]
        if not hits:
            raise SdInputError(f"{where}: [uncertain] exclude {pattern!r} matches no constant."
                               + suggest(str(pattern), list(names.values())))
        out.update(hits)
    return out


def _bounds(value, where: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SdInputError(f"{where}: expected [low, high].")
    lo, hi = (number(v, where) for v in value)
    if not lo < hi:
        raise SdInputError(f"{where}: low {lo:g} must be below high {hi:g}.")
    return lo, hi
