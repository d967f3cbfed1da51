"""Conclusions as probabilities over the behaviour-consistent set.

Every member of the set is run as documented (the *reference* run) and under
every counterfactual cell of the spec's ``[explain]`` table
(:mod:`.questions`). A question holds or not in each member; its answer is
the share of members in which it holds, with the Monte Carlo standard error
of :mod:`.estimates`, and with the inputs that decide it: those whose
distribution differs most between members where it holds and where it does
not (Kolmogorov-Smirnov distance, regional sensitivity). A share of at least
``agree`` (0.9 by default) either way is a conclusion the documented outcomes
decide; anything in between is reported as undecided, never resolved by
picking a member.

Several causes are compared with the full factorial design of their
removals and the Shapley value of each removal on the outcome (the average,
over every order of removing the causes, of the change its removal makes),
which does not depend on an order of removal and sums to the effect of
removing them all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from math import factorial

import numpy as np

from ..outcomes.metrics import Metric, matrix, values
from .estimates import Share, grouped, ks, verdict

#: Members per run batch (and checkpoint piece).
CHUNK = 400
#: Below this fall of the outcome (relative to its peak) a member has nothing to prevent.
NO_FALL = 1e-9


@dataclass(frozen=True)
class Outcomes:
    """The numbers of every member's runs.

    Attributes
    ----------
    late : mapping
        Cell name -> outcome (mean over the window) per member; ``""`` is the
        reference run.
    peak : ndarray
        Peak of the variable before the window in the reference run.
    times : ndarray
        Saved times of ``paths``.
    paths : mapping
        Observed variable -> reference trajectories (members, times).
    held : mapping
        Mediator cell name -> outcome on the members ``held_rows`` (runs that
        hold a variable on a path go one by one, so they use a subset).
    held_rows : ndarray
    """

    late: dict
    peak: np.ndarray
    times: np.ndarray
    paths: dict = field(default_factory=dict)
    held: dict = field(default_factory=dict)
    held_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))


@dataclass(frozen=True)
class Conclusion:
    """One question answered over the set.

    Attributes
    ----------
    question : str
    kind : str
        ``"counterfactual"``, ``"factorial"``, ``"largest"``, ``"direct"`` or
        ``"mediated"``.
    holds : ndarray of bool (members,)
    share : Share
    deciding : list of (input, KS distance, median where it holds, median where not)
    """

    question: str
    kind: str
    holds: np.ndarray = field(repr=False)
    share: Share = None
    deciding: list = field(default_factory=list)
    rows: np.ndarray | None = field(default=None, repr=False)   # members (None: all)

    def verdict(self, agree: float) -> str:
        """:func:`.estimates.verdict` of the share."""
        return verdict(self.share, agree)


def run_members(runner, U, questions, store, key: str = "members", time=None, keep=(),
                held_rows=None) -> Outcomes:
    """Reference and counterfactual runs of the members ``U`` (checkpointed by chunk).

    ``questions`` may be None (no ``[explain]``): then only the reference
    runs, keeping the variables ``keep``. Mediator cells run on the members
    ``held_rows`` only (default: all).
    """
    q = questions
    if q is None:
        return _reference_only(runner, U, store, key, time, list(dict.fromkeys(keep)))
    t0 = runner.simulator_start
    late_of = Metric("late", q.variable, "mean", start=q.window[0], end=q.window[1])
    peak_of = Metric("peak", q.variable, "max", start=t0, end=q.window[0])
    observed = list(dict.fromkeys([q.variable, *q.observe, *(m for m, _ in q.mediators),
                                   *keep]))
    cells = [c for c in q.cells if not c.forced]
    late = {"": [], **{c.name: [] for c in cells}}
    peaks, paths, times = [], {v: [] for v in observed}, None
    for c, start in enumerate(range(0, len(U), CHUNK)):
        rows = U[start:start + CHUNK]
        n = len(rows)
        piece = store.get(f"{key}-{c}", {"late": (len(cells) + 1, n), "peak": (n,),
                                           "paths": (len(observed), n, None), "times": (None,)})
        if piece is None:
            ref = runner.simulate(rows, variables=observed, time=time)
            times = ref["time"].values
            P = np.stack([matrix(ref, v) for v in observed])
            L = [values(late_of, times, P[0])]
            for cell in cells:
                ds = runner.simulate(rows, cell.constants, variables=[q.variable], time=time)
                L.append(_late(late_of, ds, q.variable))
            piece = {"late": np.array(L), "peak": values(peak_of, times, P[0]), "paths": P,
                     "times": times}
            store.put(f"{key}-{c}", **piece)
        times = piece["times"]
        late[""].append(piece["late"][0])
        for i, cell in enumerate(cells, start=1):
            late[cell.name].append(piece["late"][i])
        peaks.append(piece["peak"])
        for i, v in enumerate(observed):
            paths[v].append(piece["paths"][i])
    paths = {k: np.vstack(v) for k, v in paths.items()}
    rows = np.arange(len(U)) if held_rows is None else np.asarray(held_rows, dtype=int)
    held = _held(runner, U, q, rows, times, paths, store, key, time, late_of)
    return Outcomes(late={k: np.concatenate(v) for k, v in late.items()},
                    peak=np.concatenate(peaks), times=times, paths=paths, held=held,
                    held_rows=rows)


def _late(metric, ds, variable) -> np.ndarray:
    return values(metric, ds["time"].values, matrix(ds, variable))


def _held(runner, U, q, rows, times, paths, store, key, time, late_of) -> dict:
    """Mediator cells: each member of ``rows`` with a variable held on its
    reference path (saved times, interpolated between them)."""
    cells = [c for c in q.cells if c.forced]
    if not cells or not len(rows):
        return {}
    piece = store.get(f"{key}-held", {"late": (len(cells), len(rows))})
    if piece is None:
        L = []
        for cell in cells:
            forced = {cell.forced: (times, paths[cell.forced][rows])}
            ds = runner.simulate(U[rows], cell.constants, variables=[q.variable], time=time,
                                 forced=forced)
            L.append(_late(late_of, ds, q.variable))
        piece = {"late": np.array(L)}
        store.put(f"{key}-held", **piece)
    return {cell.name: piece["late"][i] for i, cell in enumerate(cells)}


def _reference_only(runner, U, store, key, time, observed) -> Outcomes:
    paths, times = {v: [] for v in observed}, None
    for c, start in enumerate(range(0, len(U), CHUNK)):
        rows = U[start:start + CHUNK]
        piece = store.get(f"{key}-{c}", {"paths": (len(observed), len(rows), None),
                                          "times": (None,)})
        if piece is None:
            ref = runner.simulate(rows, variables=observed, time=time)
            piece = {"paths": np.stack([matrix(ref, v)
                                        for v in observed]), "times": ref["time"].values}
            store.put(f"{key}-{c}", **piece)
        times = piece["times"]
        for i, v in enumerate(observed):
            paths[v].append(piece["paths"][i])
    return Outcomes(late={}, peak=np.zeros(len(U)), times=times,
                    paths={k: np.vstack(v) for k, v in paths.items()})


# -- statements ----------------------------------------------------------------------------
def changes(questions, out: Outcomes, name: str, rows=None) -> np.ndarray:
    """Whether cell ``name`` changes the outcome, per member (the ``[explain]``
    rule); on the members ``rows`` (a mediator cell: ``out.held_rows``)."""
    q = questions
    if name in out.held:
        rows, cf = out.held_rows, out.held[name]
    else:
        cf = out.late[name] if rows is None else out.late[name][rows]
    base = out.late[""] if rows is None else out.late[""][rows]
    peak = out.peak if rows is None else out.peak[rows]
    if q.rule == "threshold":
        return cf >= q.value
    if q.rule == "effect":
        return (cf - base) * np.sign(q.value) >= abs(q.value)
    fall = peak - base
    return (fall > NO_FALL * np.maximum(np.abs(peak), 1.0)) & (cf - base >= q.value * fall)


def shapley(questions, out: Outcomes) -> np.ndarray:
    """Shapley value of each cause's removal on the outcome, per member (members, causes)."""
    causes = list(questions.causes)
    k = len(causes)
    base = out.late[""]

    def v(subset) -> np.ndarray:
        if not subset:
            return np.zeros_like(base)
        return out.late[" + ".join(causes[i] for i in sorted(subset))] - base

    phi = np.zeros((len(base), k))
    for i in range(k):
        others = [j for j in range(k) if j != i]
        for size in range(k):
            w = factorial(size) * factorial(k - size - 1) / factorial(k)
            for S in combinations(others, size):
                phi[:, i] += w * (v(set(S) | {i}) - v(set(S)))
    return phi


def answer(questions, out: Outcomes, groups, U, names, agree: float) -> list[Conclusion]:
    """Every question of ``questions`` as a share over the members, with what decides it."""
    q = questions
    found = []
    groups = np.asarray(groups)

    def add(text, kind, holds, rows=None):
        holds = np.asarray(holds, dtype=bool)
        g, X = (groups, U) if rows is None else (groups[rows], U[rows])
        found.append(Conclusion(text, kind, holds, grouped(holds, g), deciding(X, holds, names),
                                rows))

    for name in q.counterfactuals:
        add(q.statement(name), "counterfactual", changes(q, out, name))
    for cell in q.cells:
        if len(cell.causes) > 1 and not cell.forced and cell.name not in q.counterfactuals:
            add(q.statement(cell.name), "factorial", changes(q, out, cell.name))
        elif len(cell.causes) == 1 and not cell.forced and cell.name not in q.counterfactuals:
            add(q.statement(cell.name), "counterfactual", changes(q, out, cell.name))
    if len(q.causes) > 1:
        phi = shapley(q, out) * q.direction
        best = np.argmax(phi, axis=1)
        for i, cause in enumerate(q.causes):
            add(f"{cause} contributes most to the change of {q.variable} when "
                f"{', '.join(q.causes)} are applied together (Shapley value over the "
                f"{2 ** len(q.causes)} factorial cells)", "largest",
                (best == i) & (phi[:, i] > 0))
    for held, cause in q.mediators:
        rows = out.held_rows
        total = changes(q, out, cause, rows)
        direct = changes(q, out, f"{cause} | {held} held")
        add(q.statement(f"{cause} | {held} held"), "direct", direct, rows)
        add(f"{cause} changes the outcome only through {held} (it does with {held} free, not "
            f"with {held} held on its reference path)", "mediated", total & ~direct, rows)
    return found


def deciding(U, holds, names, limit: int = 3) -> list:
    """The inputs whose distribution differs most where ``holds`` and where not."""
    holds = np.asarray(holds, dtype=bool)
    if holds.all() or not holds.any():
        return []
    d = ks(U, holds)
    order = np.argsort(-np.nan_to_num(d))[:limit]
    return [(names[i], float(d[i]), float(np.median(U[holds, i])),
             float(np.median(U[~holds, i]))) for i in order]


def shapley_summary(questions, out: Outcomes, groups) -> list[tuple[str, Share, Share]]:
    """Per cause: mean Shapley value on the outcome and mean share of the total, with SEs."""
    if len(questions.causes) < 2:
        return []
    phi = shapley(questions, out)
    total = phi.sum(axis=1)
    ok = np.abs(total) > 1e-12
    rows = []
    for i, cause in enumerate(questions.causes):
        frac = np.where(ok, phi[:, i] / np.where(ok, total, 1.0), np.nan)
        keep = np.isfinite(frac)
        rows.append((cause, grouped(phi[:, i], groups),
                     grouped(frac[keep], np.asarray(groups)[keep]) if keep.any() else None))
    return rows
