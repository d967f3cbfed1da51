"""Structural hypotheses tested against the documented outcomes.

A spec's ``[variants]`` table names scenarios (``names``, from
``scenarios = FILE``) that switch a mechanism off. Each variant's
behaviour-consistent set is searched over the same uncertain inputs and
ranges (:mod:`.waves`; its first wave is the same prior draws for every
variant). The evidence for a variant against the model as written is the
ratio of the prior masses of their consistent sets: with the same uniform
priors and outcomes that are met or not, that ratio is the Bayes factor of
the variant. Verdicts (95 % bounds from the Monte Carlo errors):

- **rejected**: no parameter set within the ranges met every outcome, or the
  Bayes factor is below 1/20 even at its upper bound;
- **disfavoured**: the upper bound is below 1/3;
- **not rejected**: otherwise: the outcomes cannot tell it apart from the
  model as written.

The targets the variant meets least often, compared with the model as
written, say why.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import waves

#: Bayes-factor bounds of the verdicts.
REJECT, DISFAVOUR = 1 / 20, 1 / 3
#: Normal quantile of the 95 % bounds.
Z95 = 1.96


@dataclass(frozen=True)
class Variant:
    """One structural variant and its verdict.

    Attributes
    ----------
    name, description : str
    constants : dict
    search : sd.calibration.waves.Search
    ratio : float
        Bayes factor against the model as written (mass ratio).
    ratio_bounds : (float, float)
        95 % bounds (upper bound only, low = 0, when no set was found).
    verdict : str
    why : list of (target index, variant pass share, model pass share)
    """

    name: str
    description: str
    constants: dict
    search: waves.Search
    ratio: float
    ratio_bounds: tuple
    verdict: str
    why: list


def test(runner, cases, base_mass: float, base_cov: float, base_met, *, n: int, seed: int,
         store, max_levels: int = 8) -> list[Variant]:
    """Search each variant's set and compare it with the model's.

    Parameters
    ----------
    cases : list of dict
        ``name``, ``description``, ``constants`` of each variant.
    base_mass, base_cov : float
        Prior mass of the model's own set and its coefficient of variation.
    base_met : ndarray (targets,)
        The model's per-target pass shares among prior draws.
    """
    d = len(runner.inputs.inputs)
    out = []
    for k, case in enumerate(cases):
        constants = case["constants"]
        s = waves.search(lambda U, c=constants: runner(U, c)[0], d, n, seed, store,
                         key=f"variant{k}", max_levels=max_levels,
                         stop_below=REJECT * base_mass * np.exp(-Z95 * base_cov))
        out.append(_verdict(case, s, base_mass, base_cov, base_met))
    return out


def _verdict(case, s: waves.Search, base_mass, base_cov, base_met) -> Variant:
    if s.found and base_mass > 0:
        ratio = s.mass / base_mass
        se = np.sqrt(s.cov ** 2 + base_cov ** 2)
        bounds = (ratio * np.exp(-Z95 * se), ratio * np.exp(Z95 * se))
    else:
        ratio = 0.0 if not s.found else float("inf")
        upper = s.mass / base_mass * np.exp(Z95 * base_cov) if base_mass > 0 else float("inf")
        bounds = (0.0, upper)
    if not s.found or bounds[1] < REJECT:
        verdict = "rejected"
    elif bounds[1] < DISFAVOUR:
        verdict = "disfavoured"
    else:
        verdict = "not rejected"
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(base_met > 0, s.met_share / base_met, 1.0)
    why = [(int(j), float(s.met_share[j]), float(base_met[j])) for j in np.argsort(rel)[:2]
           if rel[j] < 0.8]
    return Variant(case["name"], case["description"], dict(case["constants"]), s,
                   float(ratio), tuple(float(b) for b in bounds), verdict, why)
