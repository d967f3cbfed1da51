"""Set-valued calibration: the pipeline.

spec -> uncertain inputs and acceptance rule -> prior screening -> the set
(Markov chains from the screening's members, or a sequential search when
they are too few) -> conclusions over the set -> structural variants -> what
data would settle the undecided conclusions -> numerics checks ->
:class:`~sd.calibration.result.SetResult`. Every phase is checkpointed
(:mod:`.checkpoint`), so a killed job resumes to the same result.
"""
from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

from .. import provenance
from .._common import run_limit
from ..errors import SdInputError
from . import (acceptance, conclusions, data_value, inputs as inputs_mod, marginals, numerics,
               questions as questions_mod, sampler, screening, variants as variants_mod, waves)
from .checkpoint import Store
from .counterfactuals import cases
from .estimates import Share
from .result import SetResult
from .spec import spec_digest

#: Prior draws of the outflow check.
OUTFLOW_DRAWS = 1000


def _check_member_runs(spec, questions) -> None:
    """Refuse, before any draw, questions whose runs over the set's members (at most
    max_starts x replicas x steps / thin, each run as documented and in every cell)
    exceed SD_RUN_LIMIT: each count may be within bounds and their product not."""
    o = spec.set
    members = o.max_starts * o.replicas * (o.steps // o.thin)
    cells = 1 + (len(questions.cells) if questions else 0)
    if members * cells > run_limit():
        raise SdInputError(f"{spec.path.name}: up to {members:,} members (max_starts x replicas "
                           f"x steps / thin) each run in {cells} cells of [explain] make "
                           f"{members * cells:,} runs, beyond the limit of {run_limit():,}; use "
                           "fewer counterfactuals or a smaller [set], or raise the limit with "
                           "the environment variable SD_RUN_LIMIT.")


def calibrate_set(spec, sim, checkpoint=None, resume=False, progress=None) -> SetResult:
    """Find the behaviour-consistent set of ``spec`` and what it decides (see the module)."""
    o = spec.set
    inputs = inputs_mod.resolve(sim.model, spec.uncertain, spec.fixed, spec.path.name)
    rule = acceptance.Rule(spec.targets, o.point_sigmas, o.interval_tolerance, o.points)
    questions = questions_mod.check(sim.model, spec.explain, spec.path, spec.targets)
    variant_cases = cases(sim.model, dict(spec.variants), spec.path, key="names",
                          where="[variants]") if spec.variants else []
    _check_member_runs(spec, questions)
    if sim.engine == "pysd":
        import warnings

        warnings.warn(f"{sim.model.path.name} runs on PySD ({sim.reason or 'as asked'}): the "
                      f"{o.draws:,} prior draws alone take about {o.draws * 0.3 / 3600:.1f} h at "
                      "~0.3 s a run; lower [set] draws, or make the model run on the fast engine.",
                      stacklevel=3)
    store = Store(checkpoint, _identity(spec, sim, inputs), resume)
    runner = acceptance.Runner(sim, inputs, rule, progress)
    clock = _Clock()

    scr = screening.screen(runner, store, spec.seed, o.draws, o.chunk,           # 1. screening
                           o.informative_share)
    clock("screening")
    mass, search, starts, V0, groups0 = _starting_points(runner, scr, spec, store)
    chains = None
    if len(starts):                                                              # 2. the set
        chains = sampler.run(lambda U: runner(U)[0], starts, V0, replicas=o.replicas,
                             steps=o.steps, thin=o.thin, seed=spec.seed, store=store)
        members, groups = chains.states, groups0[chains.groups]
    else:
        members, groups = np.zeros((0, len(inputs.inputs))), np.zeros(0, dtype=int)
    clock("set")
    X = inputs.to_values(members)
    outcomes, found, shap, voi = None, [], [], {}
    pick = _spread(len(members), o.check_members)   # mediators and the TIME STEP check
    if len(members):                                                             # 3. conclusions
        outcomes = conclusions.run_members(runner, members, questions, store,
                                           keep=runner.variables, held_rows=pick)
        if questions is not None:
            found = conclusions.answer(questions, outcomes, groups, X, inputs.names, o.agree)
            shap = conclusions.shapley_summary(questions, outcomes, groups)
    clock("conclusions")
    tested = variants_mod.test(runner, variant_cases, mass.share,                 # 4. variants
                               mass.se / mass.share if mass.share > 0 else 0.0,
                               scr.met_share, n=o.level_draws, seed=spec.seed, store=store)
    clock("variants")
    if found:                                                                    # 5. data value
        candidates = data_value.features(questions, outcomes, X, inputs.names)
        voi = {c.question: data_value.rank(c, candidates, o.agree) for c in found
               if c.verdict(o.agree) == "undecided"}
    clock("data value")
    halving = outflows = None                                                    # 6. numerics
    if len(members):
        halving = numerics.halving(
            runner, members[pick], questions,
            [(c.question, c.holds[pick] if c.rows is None else c.holds) for c in found],
            lambda half: [c.holds for c in conclusions.answer(
                questions, half, groups[pick], X[pick], inputs.names, o.agree)], store)
    outflows = numerics.outflows(runner, members[_spread(len(members), 200)], store,
                                 OUTFLOW_DRAWS, spec.seed)
    clock("numerics")
    return SetResult(
        spec=spec, inputs=inputs, rule=rule, screening=scr, mass=mass, members=members,
        groups=groups, acceptance=chains.acceptance if chains else float("nan"),
        marginals=marginals.marginals(inputs, members, o.identified_width,
                                      len(np.unique(groups))) if len(members) else [], representative=marginals.representative(members) if len(members) else -1,
        questions=questions, outcomes=outcomes, conclusions=tuple(found), shapley=shap,
        data_value=voi, variants=tuple(tested), halving=halving, outflows=outflows or [],
        search=search, runs=runner.runs, seconds=clock.seconds, resumed=store.resumed,
        notes=tuple(_notes(runner, scr, search, spec)),
        units={v: sim.model.variables[v].units for v in (outcomes.paths if outcomes else {})},
        provenance=provenance.record(
            sim.model, sha256=dict(spec.sha256), seed=spec.seed, approach="set",
            spec=str(spec.path), data=str(spec.data), settings=asdict(o),
            resumed=store.resumed, resumed_pieces=len(store.loaded), runs=runner.runs,
            **sim.provenance()))


def _starting_points(runner, scr, spec, store):
    """(mass, search, starts, their violations, group of each start).

    The screening's members are exact draws from the set; below
    ``min_starts`` of them the sequential search finds the set instead.
    """
    o = spec.set
    if len(scr.accepted) >= o.min_starts:
        pick = np.sort(np.random.default_rng([spec.seed, 2]).permutation(
            len(scr.accepted))[:o.max_starts])
        starts = scr.accepted[pick]
        piece = store.get("starts", {"V": (len(starts), len(runner.rule.targets))})
        V0 = piece["V"] if piece is not None else runner(starts)[0]
        if piece is None:
            store.put("starts", V=V0)
        return scr.mass, None, starts, V0, np.arange(len(starts))
    s = waves.search(lambda U: runner(U)[0], len(runner.inputs.inputs), o.level_draws,
                     spec.seed, store, key="search")
    mass = Share(s.mass, s.mass * s.cov, o.level_draws, o.level_draws) if s.found \
        else Share(0.0, float("nan"), scr.draws, scr.draws)
    if not s.found:
        return mass, s, np.zeros((0, len(runner.inputs.inputs))), None, np.zeros(0, dtype=int)
    pick = np.sort(np.random.default_rng([spec.seed, 2]).permutation(
        len(s.members))[:o.max_starts])
    return mass, s, s.members[pick], s.members_V[pick], s.groups[pick]


def _spread(n: int, k: int) -> np.ndarray:
    """``k`` member rows spread evenly over ``n`` (all when ``n <= k``)."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).astype(int)) if n else \
        np.zeros(0, dtype=int)


def _identity(spec, sim, inputs) -> dict:
    """What a checkpoint's pieces depend on (the most specific fields first, for messages)."""
    from .. import __version__

    return {"model_sha256": sim.model.sha256, "seed": spec.seed, "settings": asdict(spec.set),
            "engine": sim.engine, "inputs": [[i.name, i.low, i.high] for i in inputs.inputs],
            "fixed": dict(inputs.fixed), "sd_version": __version__,
            "spec_files": spec_digest(spec)}


def _notes(runner, scr, search, spec) -> list[str]:
    notes = list(runner.inputs.notes)
    if scr.failed:
        notes.append(f"{scr.failed} of {scr.draws} prior draws failed to simulate (NaN) and are "
                     "counted as missing every outcome; first: " + (runner.failures[0]
                                                                   if runner.failures else "?"))
    if search is not None and search.found:
        notes.append(f"the screening found {len(scr.accepted)} members (fewer than "
                     f"[set] min_starts = {spec.set.min_starts}); the set was found by a "
                     "sequential search, whose members share ancestors: standard errors may "
                     "be optimistic.")
    return notes


class _Clock:
    """Wall seconds per phase."""

    def __init__(self):
        self.last, self.seconds = time.perf_counter(), {}

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self.last, 2)
        self.last = now
