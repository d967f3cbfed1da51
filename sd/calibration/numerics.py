"""Numerics that protect the conclusions.

- **TIME STEP halving**: members of the set are run again with half the TIME
  STEP (SAVEPER unchanged); the report gives the share that leave the set and,
  per conclusion, the share of members whose answer changes. A conclusion
  that depends on the integration step is an artefact, not a finding.
- **Fast outflows**: Euler integration of a first-order outflow
  ``stock * rate`` is stable and accurate only while ``rate * TIME STEP`` is
  small; above 0.5 a step removes more than half of the stock. For every
  outflow of every stock the largest ``outflow * TIME STEP / stock`` found
  over prior draws and members (at the saved times) is compared with 0.5.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..outcomes.metrics import matrix
from .acceptance import met

#: Random stream of the outflow check's prior draws (see :mod:`.checkpoint`).
STREAM = 20
#: Largest fraction of a stock one Euler step may remove without a warning.
MAX_FRACTION = 0.5


@dataclass(frozen=True)
class Halving:
    """The TIME STEP halving check.

    Attributes
    ----------
    members : int
        Members rerun.
    time_step : float
        The halved step.
    left_set : float
        Share of them that no longer meet every documented outcome.
    changed : dict
        Question -> share of members whose answer changes.
    """

    members: int
    time_step: float
    left_set: float
    changed: dict = field(default_factory=dict)

    @property
    def any_changed(self) -> float:
        """Share of (member, question) answers that change."""
        return float(np.mean(list(self.changed.values()))) if self.changed else 0.0


@dataclass(frozen=True)
class Outflow:
    """The fastest a stock's outflow was seen to drain it in one TIME STEP."""

    flow: str
    stock: str
    fraction: float          # outflow * TIME STEP / stock, at most
    at: dict                 # input values of that run


def halving(runner, U, questions, before, answer, store) -> Halving:
    """Rerun the members ``U`` with half the TIME STEP and compare.

    ``before`` lists (question, holds per member of ``U``) at the model's
    TIME STEP; ``answer(outcomes_half)`` recomputes the holds, in the same
    order, from the halved runs.
    """
    from .conclusions import run_members

    s = runner.time
    time = {"time_step": s.time_step / 2, "saveper": s.saveper}
    piece = store.get("halving-targets", {"V": (len(U), None)})
    if piece is None:
        V = runner.rule.violations(runner.simulate(U, time=time))[0]
        store.put("halving-targets", V=V)
    else:
        V = piece["V"]
    left = float(1 - met(V).all(axis=1).mean())
    changed = {}
    if questions is not None and before:
        half = run_members(runner, U, questions, store, key="halving-members", time=time)
        for (question, old), new in zip(before, answer(half)):
            changed[question] = float(np.mean(old != new))
    return Halving(len(U), s.time_step / 2, left, changed)


def outflows(runner, members, store, draws: int, seed: int) -> list[Outflow]:
    """The largest share of its stock each outflow removes in one TIME STEP."""
    from ..model.equations import read_equations

    eq = read_equations(runner.simulator.model)
    pairs = [(eq.name(f), eq.name(s)) for s, flows in eq.flows.items()
             for f, sign in flows if sign < 0]
    names = set(runner.simulator.model.variables)
    pairs = [(f, s) for f, s in pairs if f in names and s in names]
    if not pairs:
        return []
    d = len(runner.inputs.inputs)
    U = np.vstack([np.random.default_rng([seed, STREAM]).random((draws, d)), members])
    variables = list(dict.fromkeys(v for p in pairs for v in p))
    piece = store.get("outflows", {"F": (len(pairs), len(U))})
    if piece is None:
        ds = runner.simulate(U, variables=variables)
        dt = runner.time.time_step
        F = []
        for f, s in pairs:
            flow = matrix(ds, f)
            stock = matrix(ds, s)
            with np.errstate(divide="ignore", invalid="ignore"):
                frac = np.where(stock > 1e-12, flow * dt / stock, 0.0)
            F.append(np.nanmax(np.where(np.isfinite(frac), frac, 0.0), axis=1))
        F = np.array(F)
        store.put("outflows", F=F)
    else:
        F = piece["F"]
    out = []
    X = runner.inputs.to_values(U)
    for k, (f, s) in enumerate(pairs):
        i = int(np.argmax(F[k]))
        out.append(Outflow(f, s, float(F[k, i]), dict(zip(runner.inputs.names, X[i]))))
    out.sort(key=lambda o: -o.fraction)
    return out
