"""Designs and their analyses: Monte Carlo, Sobol (Saltelli) and Morris.

Each method is a pair: a design (rows on the unit cube, mapped to values
through the spec's distributions) and an analysis of the metrics computed on
its runs. SALib supplies both halves of Sobol and Morris.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from . import distributions as dist_mod
from .spec import SensitivitySpec


def monte_carlo_design(spec: SensitivitySpec, n: int | None = None) -> pd.DataFrame:
    """The Monte Carlo sample: ``n`` rows (default ``spec.n``), one column per parameter."""
    unit = dist_mod.unit_design(spec.method, n or spec.n, len(spec.parameters), spec.seed)
    return dist_mod.to_values(unit, list(spec.parameters))


def _problem(spec: SensitivitySpec) -> dict:
    # SALib works on the unit cube; the distributions' ppf maps it to values,
    # so the indices refer to the spec's distributions, not to uniform ranges.
    d = len(spec.parameters)
    return {"num_vars": d, "names": spec.names, "bounds": [[0.0, 1.0]] * d}


def sobol_design(spec: SensitivitySpec) -> np.ndarray:
    """SALib's Sobol (Saltelli) design on the unit cube: ``spec.sobol_runs()`` rows."""
    from SALib.sample import sobol

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SALib warns when n is not a power of 2
        return sobol.sample(_problem(spec), spec.sobol_n,
                            calc_second_order=spec.sobol_second_order, seed=spec.seed)


def morris_design(spec: SensitivitySpec) -> np.ndarray:
    """SALib's Morris trajectories on the unit cube: ``spec.morris_runs()`` rows."""
    from SALib.sample import morris

    return morris.sample(_problem(spec), spec.morris_trajectories,
                         num_levels=spec.morris_levels, seed=spec.seed)


def sobol_indices(spec: SensitivitySpec, table: pd.DataFrame) -> pd.DataFrame:
    """First-order and total Sobol indices with 95 % bootstrap intervals.

    ``table`` holds one column per metric, one row per run of :func:`sobol_design`.
    Rows: (metric, parameter); columns S1, S1_conf, ST, ST_conf.
    """
    from SALib.analyze import sobol

    rows = []
    for m in spec.metrics:
        y = table[m.name].to_numpy(dtype=float)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # a metric that never varies gives 0/0
            res = sobol.analyze(_problem(spec), y, calc_second_order=spec.sobol_second_order,
                                seed=spec.seed)
        for j, name in enumerate(spec.names):
            rows.append({"metric": m.name, "parameter": name,
                         **{k: float(res[k][j]) for k in ("S1", "S1_conf", "ST", "ST_conf")}})
    return pd.DataFrame(rows).set_index(["metric", "parameter"])


def morris_indices(spec: SensitivitySpec, x: np.ndarray, table: pd.DataFrame) -> pd.DataFrame:
    """Morris elementary-effect statistics: mu, mu_star (95 % interval), sigma.

    Effects are per unit of quantile (moving a parameter from its 0.1 % to
    its 99.9 % quantile counts as 1), so parameters are comparable.
    """
    from SALib.analyze import morris

    rows = []
    for m in spec.metrics:
        y = table[m.name].to_numpy(dtype=float)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            res = morris.analyze(_problem(spec), x, y, num_levels=spec.morris_levels,
                                 seed=spec.seed)
        for j, name in enumerate(spec.names):
            rows.append({"metric": m.name, "parameter": name,
                         **{k: float(res[k][j]) for k in ("mu", "mu_star", "mu_star_conf", "sigma")}})
    return pd.DataFrame(rows).set_index(["metric", "parameter"])
