"""What data would settle an undecided conclusion.

A candidate observation is a number that could be documented: a variable at
a whole year (``Propane Share in 1994``), the peak of the questions' variable,
its timing, the speed of its fall (years from the peak to half of it), or
one of the uncertain inputs itself (measuring an assumption). Over the
members of the set, knowing the observation to within its quartile would
split the members into four groups; the expected reduction of the entropy of
the conclusion (the mutual information of the conclusion and the binned
observation, in bits) ranks the candidates, and the probability that the
observation leaves one of the groups with at least ``agree`` agreement says
how likely it is to settle the question outright. Computed on the same
members as the conclusion (correlated chain states: an estimate, not exact).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._common import time_text
from ..outcomes.metrics import Metric, values
from .estimates import entropy, information

#: Quantile bins of an observation ("known to within its quartile").
BINS = 4


@dataclass(frozen=True)
class Candidate:
    """One candidate observation and what it would tell about one conclusion."""

    observation: str
    gain: float       # expected entropy reduction, bits
    settle: float     # probability of settling the conclusion
    entropy: float    # the conclusion's entropy now, bits


def features(questions, outcomes, X, names) -> list[tuple[str, np.ndarray]]:
    """Every candidate observation's value per member."""
    out = [(f"measure {n}", X[:, i]) for i, n in enumerate(names)]
    times = outcomes.times
    years = [t for t in times if abs(t - round(t)) < 1e-9]
    for var, P in outcomes.paths.items():
        for t in years:
            out.append((f"{var} in {time_text(t)}", P[:, list(times).index(t)]))
    y = outcomes.paths[questions.variable]
    whole = {"start": float(times[0]), "end": float(times[-1])}
    v = questions.variable
    out.append((f"peak of {v}", values(Metric("p", v, "max", **whole), times, y)))
    out.append((f"time of the peak of {v}", values(Metric("t", v, "time_of_max", **whole),
                                                   times, y)))
    fall = values(Metric("f", v, "halving_time", **whole), times, y)
    # never halving in the run is the slowest fall, not a missing value
    out.append((f"speed of the fall of {v} (years from its peak to half of it)",
                np.where(np.isnan(fall), float(times[-1] - times[0]) + 1.0, fall)))
    return out


def rank(conclusion, candidates, agree: float, limit: int = 5) -> list[Candidate]:
    """The ``limit`` candidates that would narrow ``conclusion`` most, the best
    year only of each variable (neighbouring years say nearly the same)."""
    h = conclusion.holds
    now = float(entropy(h.mean()))
    scored = []
    rows = conclusion.rows
    for name, y in candidates:
        if rows is not None:
            y = y[rows]
        gain, settle = information(h, y, BINS, agree)
        scored.append(Candidate(name, gain, settle, now))
    scored.sort(key=lambda c: (-c.gain, -c.settle, c.observation))
    seen, out = set(), []
    for c in scored:
        what = c.observation.rsplit(" in ", 1)[0]
        if what not in seen:
            seen.add(what)
            out.append(c)
    return out[:limit]
