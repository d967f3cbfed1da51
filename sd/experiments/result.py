"""The results of an experiment (frozen; written by :mod:`sd.report.experiment`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import pandas as pd

from ..calibration.estimates import Share
from .sets import SetSource
from .spec import ExperimentSpec

#: Verdicts of a statement in a case.
AGREES, DISAGREES, UNDECIDED = "agrees", "disagrees", "cannot decide"
TOO_FEW = "too few sets"
NOT_APPLICABLE, NO_SET = "not applicable", "no consistent set"


@dataclass(frozen=True)
class ClauseResult:
    """One condition of a statement over a set: how often it holds, and the
    distribution of the difference it compares."""

    text: str
    difference: str
    share: Share
    median: float
    q05: float
    q95: float


@dataclass(frozen=True)
class Verdict:
    """A statement in one case.

    Attributes
    ----------
    case, statement : str
    verdict : str
        :data:`AGREES` (at least ``agree`` of the set), :data:`DISAGREES` (at
        most ``1 - agree``), :data:`UNDECIDED` (the documented outcomes cannot
        decide it), :data:`TOO_FEW` (past ``agree`` but not by more than its
        Monte Carlo error: more prior draws would tell), :data:`NOT_APPLICABLE`
        or :data:`NO_SET` (``reason`` says why).
    share : Share or None
        Share of the set where every clause holds, with its standard error.
    prior : Share or None
        The same over independent draws from the prior ranges: what the
        statement's answer would be without the documented outcomes.
    clauses : tuple of ClauseResult
    deciding : tuple of (input, KS distance, median where it holds, median where not)
        The inputs whose values differ most between members where it holds
        and where not (undecided statements).
    mechanism : tuple of (variable, cell, year, median, q05, q95)
        The mechanism variables on the statement's first policy at its year.
    reason : str
    """

    case: str
    statement: str
    verdict: str
    share: Share | None = None
    prior: Share | None = None
    clauses: tuple[ClauseResult, ...] = ()
    deciding: tuple[tuple[str, float, float, float], ...] = ()
    mechanism: tuple[tuple[str, str, float, float, float, float], ...] = ()
    reason: str = ""

    @property
    def record_moves_it(self) -> bool | None:
        """Does the share over the set differ from the share over the prior ranges
        by more than two standard errors? None without both."""
        if self.share is None or self.prior is None:
            return None
        se = math.hypot(*(s.se if math.isfinite(s.se) else 0.0 for s in (self.share, self.prior)))
        return abs(self.share.share - self.prior.share) > 2 * se


@dataclass(frozen=True)
class ExperimentResult:
    """An experiment's table, verdicts and provenance.

    Attributes
    ----------
    spec : ExperimentSpec
    sets : tuple of SetSource
        Where each case's set came from (reused or calibrated now).
    table : pandas.DataFrame
        One row per case, policy, output and year: ``median``, ``q05``,
        ``q95`` over the set, ``p_beats`` and ``p_beats_se`` (the share of
        the set where the policy beats the baseline, with its Monte Carlo
        standard error; empty for the baseline), ``n`` members, ``groups``.
    verdicts : tuple of Verdict
    members : mapping
        Case -> one row per member: its chain (``group``), its inputs
        (``input | name``) and every metric of every cell (``cell | variable @ year``).
    runs : int
    seconds : mapping
        Wall-clock seconds per stage (``calibration``, ``runs``).
    provenance : mapping
    """

    spec: ExperimentSpec
    sets: tuple[SetSource, ...]
    table: pd.DataFrame
    verdicts: tuple[Verdict, ...]
    members: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    runs: int = 0
    seconds: Mapping[str, float] = field(default_factory=dict)
    provenance: Mapping = field(default_factory=dict)
