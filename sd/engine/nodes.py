"""The compiler's records (nodes, statefuls, emission contexts) and small
helpers shared by the compiler, the vector functions and the macros (a leaf
module, so those never import each other)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pysd.translators.structures.abstract_expressions as ae

from ..model.structure import walk


@dataclass
class Node:
    """One scalar value per run: a variable slot or a stateful's output."""

    name: str
    dyn: str                     # code of the value during the run
    init: str                    # code during initialisation (ACTIVE INITIAL)
    deps_dyn: set
    deps_init: set
    timed: bool = False
    stateful: int | None = None  # index of the stateful whose output it is
    const: bool = False


@dataclass
class Stateful:
    """A stateful object (INTEG, SMOOTH, DELAY, ...) of one slot."""

    k: int
    kind: str
    where: str
    args: dict = field(default_factory=dict)    # name -> code
    deps_init: set = field(default_factory=set)
    order: str = "1"                            # code of the (max) order
    group: list = field(default_factory=list)   # delay-time codes of sibling slots
    deps_dyn: set = field(default_factory=set)


@dataclass
class Ctx:
    var: object                  # model_ir.Var
    slot: int
    binding: dict
    phase: str                   # "init" or "dyn"
    deps: set
    where: str
    timed: bool = False
    scope: object = None         # the macro instance being expanded, if any


STATEFUL_KINDS = {
    ae.IntegStructure: "integ", ae.SmoothStructure: "smooth",
    ae.SmoothNStructure: "smooth_n", ae.DelayStructure: "delay",
    ae.DelayNStructure: "delay_n", ae.DelayFixedStructure: "delay_fixed",
    ae.TrendStructure: "trend", ae.ForecastStructure: "forecast",
    ae.SampleIfTrueStructure: "sample_if_true", ae.InitialStructure: "initial",
}


def num(x) -> str:
    x = float(x)
    if np.isnan(x):
        return "np.nan"
    if np.isinf(x):
        return "np.inf" if x > 0 else "(-np.inf)"
    return repr(x)


def as_float(code: str, isbool: bool) -> str:
    return f"(1.0 * {code})" if isbool else code


def has_active_initial(ast) -> bool:
    return any(isinstance(n, ae.CallStructure) and n.function.reference == "active_initial"
               for n in walk(ast))
