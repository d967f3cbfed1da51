"""A statement answered over a set: the share of members where it holds.

Every member of a behaviour-consistent set is a history the documented
outcomes allow; a statement is answered by the share of members in which
all its clauses hold, with the Monte Carlo standard error of that share
computed from the independent chains (:func:`sd.calibration.estimates.grouped`).
The verdict follows the calibration's rule (:func:`sd.calibration.estimates.verdict`):
decided when at least ``agree`` of the set agrees either way and the Monte
Carlo error cannot put it below; otherwise the documented outcomes cannot
decide it (the inputs that would are named), or, when the share is past
``agree`` but its error is not, the set holds too few independent chains to say.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..calibration.estimates import Share, grouped, ks, verdict
from .plan import CasePlan, cell_key, metric_name, sides
from .result import AGREES, DISAGREES, TOO_FEW, UNDECIDED, ClauseResult, Verdict
from .spec import Clause, Side, Statement


def side_values(values: pd.DataFrame, side: Side, variable: str, plan: CasePlan) -> np.ndarray:
    """The variable at the side's year under its cell, one value per member."""
    var = plan.model.variable(variable).name
    return values[column(cell_key(side.policy, side.variation),
                         metric_name(var, plan.year(side.year)))].to_numpy(dtype=float)


def column(cell: str, metric: str) -> str:
    return f"{cell} | {metric}"


def holds(statement: Statement, values: pd.DataFrame, plan: CasePlan) -> tuple[np.ndarray, list]:
    """Per member: does every clause hold; and each clause's (holds, difference)."""
    each = []
    for cl in statement.clauses:
        left = side_values(values, cl.left, cl.variable, plan)
        right = side_values(values, cl.right, cl.variable, plan)
        each.append((cl.holds(left, right), left - right))
    return np.logical_and.reduce([h for h, _ in each]), each


#: The calibration's verdicts (:func:`sd.calibration.estimates.verdict`) in the words of a model
#: judged against a statement.
_WORDS = {"holds": AGREES, "does not hold": DISAGREES, "undecided": UNDECIDED,
          "too few sets": TOO_FEW}


def verdict_of(share: Share, agree: float) -> str:
    return _WORDS[verdict(share, agree)]


def answer(statement: Statement, plan: CasePlan, values: pd.DataFrame, groups: np.ndarray,
           inputs: pd.DataFrame, agree: float, prior: pd.DataFrame | None = None) -> Verdict:
    """The statement over one case's set (and over its prior draws, when given)."""
    h, each = holds(statement, values, plan)
    share = grouped(h, groups)
    clauses = tuple(_clause(cl, hc, d, groups) for cl, (hc, d) in zip(statement.clauses, each))
    decided = verdict_of(share, agree)
    prior_share = None
    if prior is not None and len(prior):
        hp, _ = holds(statement, prior, plan)
        prior_share = grouped(hp, np.arange(len(hp)))
    deciding = _deciding(inputs, h) if decided in (UNDECIDED, TOO_FEW) else ()
    mechanism = []
    for var in plan.case.mechanism.get(statement.id, statement.mechanism):
        name = plan.model.variable(var).name
        for side in sides(statement):
            cell, year = cell_key(side.policy, side.variation), plan.year(side.year)
            x = values[column(cell, metric_name(name, year))].to_numpy(dtype=float)
            q = np.quantile(x, [0.5, 0.05, 0.95])
            mechanism.append((name, cell, year, *map(float, q)))
    return Verdict(plan.case.name, statement.id, decided, share, prior_share, clauses,
                   deciding, tuple(mechanism))


def _clause(cl: Clause, h: np.ndarray, d: np.ndarray, groups) -> ClauseResult:
    q05, med, q95 = np.quantile(d, [0.05, 0.5, 0.95])
    return ClauseResult(cl.describe(), cl.difference(), grouped(h, groups), float(med), float(q05), float(q95))


def _deciding(inputs: pd.DataFrame, h: np.ndarray, n: int = 3) -> tuple:
    """The inputs distributed most differently where the statement holds and where not."""
    if inputs.empty or h.all() or not h.any():
        return ()
    U = inputs.to_numpy(dtype=float)
    dist = ks(U, h)
    order = np.argsort(-np.nan_to_num(dist, nan=-1.0))[:n]
    return tuple((inputs.columns[j], float(dist[j]), float(np.median(U[h, j])),
                  float(np.median(U[~h, j]))) for j in order)
