"""Parameter distributions and sampling designs for ensembles.

Every design is drawn on the unit hypercube ``[0, 1)^D`` first (Latin
hypercube, Sobol sequence or plain random, all from :mod:`scipy.stats.qmc`,
seeded) and then mapped to parameter values through each distribution's
inverse CDF (``ppf``). Keeping the two halves apart means one design serves
every distribution, and the whole design for a seed is fixed before any run:
how the runs are later split into chunks (or across Dask workers) cannot
change a single number.

Distributions (keys of a ``[parameters]`` entry in a sensitivity spec):

==============  ============================  ==================================
kind            keys                          meaning
==============  ============================  ==================================
``uniform``     ``low``, ``high``             flat on [low, high]
``normal``      ``mean``, ``sd``              Gaussian
``triangular``  ``low``, ``mode``, ``high``   triangle peaking at mode
``lognormal``   ``median``, ``sigma``         log(X) ~ Normal(log(median), sigma)
``truncnormal`` ``mean``, ``sd``, ``low``,    Gaussian cut to [low, high]
                ``high``
==============  ============================  ==================================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

from ..errors import SdInputError, suggest
from .._common import number as _number

#: Distribution kind -> the keys it needs, in order.
KINDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "uniform": ("low", "high"),
    "normal": ("mean", "sd"),
    "triangular": ("low", "mode", "high"),
    "lognormal": ("median", "sigma"),
    "truncnormal": ("mean", "sd", "low", "high"),
})

#: Sampling designs on the unit hypercube.
METHODS = ("lhs", "sobol", "random")

#: Unit samples are kept this far from 0 and 1 so that unbounded
#: distributions (normal, lognormal) never map to an infinite value; a Morris
#: grid point at 0 or 1 becomes the 0.1 % or 99.9 % quantile.
EDGE = 1e-3


@dataclass(frozen=True)
class Distribution:
    """A univariate distribution of one model constant.

    Attributes
    ----------
    name : str
        Vensim name of the constant.
    kind : str
        One of :data:`KINDS`.
    params : Mapping[str, float]
        The keys :data:`KINDS` lists for ``kind``.
    """

    name: str
    kind: str
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def frozen(self):
        """The equivalent frozen :mod:`scipy.stats` distribution."""
        from scipy import stats

        p = self.params
        if self.kind == "uniform":
            return stats.uniform(loc=p["low"], scale=p["high"] - p["low"])
        if self.kind == "normal":
            return stats.norm(loc=p["mean"], scale=p["sd"])
        if self.kind == "triangular":
            width = p["high"] - p["low"]
            return stats.triang(c=(p["mode"] - p["low"]) / width, loc=p["low"], scale=width)
        if self.kind == "lognormal":
            return stats.lognorm(s=p["sigma"], scale=p["median"])
        a, b = (p["low"] - p["mean"]) / p["sd"], (p["high"] - p["mean"]) / p["sd"]
        return stats.truncnorm(a=a, b=b, loc=p["mean"], scale=p["sd"])

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Map unit samples ``u`` to values (``u`` clipped to [EDGE, 1 - EDGE])."""
        return self.frozen().ppf(np.clip(np.asarray(u, dtype=float), EDGE, 1 - EDGE))

    def describe(self) -> str:
        """``uniform(low=0.2, high=0.6)``, for reports."""
        inner = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.kind}({inner})"


def make(name: str, table, where: str) -> Distribution:
    """Build and check a :class:`Distribution` from a spec table.

    Parameters
    ----------
    name : str
        Vensim name of the constant.
    table : dict
        ``{"distribution": kind, <keys of that kind>: number}``.
    where : str
        Where the table was read (file and key), for error messages.

    Raises
    ------
    SdInputError
        Unknown kind, missing or extra keys, non-numbers, or impossible
        values (``low >= high``, ``sd <= 0``, mode outside [low, high], ...).
    """
    if not isinstance(table, dict):
        raise SdInputError(f"{where}: expected a table such as "
                           "{ distribution = \"uniform\", low = 0, high = 1 }.")
    kind = str(table.get("distribution", "")).lower()
    if kind not in KINDS:
        raise SdInputError(f"{where}: unknown distribution {table.get('distribution')!r}; "
                           f"expected one of {', '.join(KINDS)}." + suggest(kind, KINDS))
    keys = KINDS[kind]
    given = set(table) - {"distribution"}
    if set(keys) - given:
        raise SdInputError(f"{where}: a {kind} distribution needs "
                           f"{', '.join(keys)}; missing {', '.join(sorted(set(keys) - given))}.")
    if given - set(keys):
        extra = sorted(given - set(keys))[0]
        raise SdInputError(f"{where}: {kind} takes {', '.join(keys)}, not {extra!r}."
                           + suggest(extra, keys))
    params = {k: _number(table[k], f"{where}.{k}") for k in keys}
    _check(kind, params, where)
    dist = Distribution(name=name, kind=kind, params=params)
    with np.errstate(all="ignore"):
        edges = dist.ppf(np.array([0.0, 1.0]))
    if not np.isfinite(edges).all():
        raise SdInputError(f"{where}: {dist.describe()} reaches values that are not finite "
                           f"numbers within its {EDGE:.1%} to {1 - EDGE:.1%} quantiles "
                           f"({edges[0]:g} to {edges[1]:g}); narrow it.")
    return dist


def _check(kind: str, p: dict[str, float], where: str) -> None:
    if "low" in p and p["low"] >= p["high"]:
        raise SdInputError(f"{where}: low must be below high (got low={p['low']:g}, "
                           f"high={p['high']:g}).")
    if "sd" in p and p["sd"] <= 0:
        raise SdInputError(f"{where}: sd must be positive, got {p['sd']:g}.")
    if kind == "triangular" and not p["low"] <= p["mode"] <= p["high"]:
        raise SdInputError(f"{where}: mode must lie in [low, high], got {p['mode']:g}.")
    if kind == "lognormal" and (p["median"] <= 0 or p["sigma"] <= 0):
        raise SdInputError(f"{where}: lognormal needs median > 0 and sigma > 0 "
                           f"(got median={p['median']:g}, sigma={p['sigma']:g}).")
    if kind == "truncnormal" and (p["low"] > p["mean"] + 8 * p["sd"]
                                  or p["high"] < p["mean"] - 8 * p["sd"]):
        raise SdInputError(f"{where}: [low, high] lies more than 8 sd from the mean; "
                           "the truncated normal has (numerically) no mass there.")


def unit_design(method: str, n: int, d: int, seed: int) -> np.ndarray:
    """An ``(n, d)`` design on the unit hypercube, fixed by ``seed``.

    Parameters
    ----------
    method : {"lhs", "sobol", "random"}
        Latin hypercube, scrambled Sobol sequence, or independent uniforms.
    n, d : int
        Number of runs and of parameters.
    seed : int
        Seed of :func:`numpy.random.default_rng`; the same seed gives the
        same design.
    """
    from scipy.stats import qmc

    if n < 1:
        raise SdInputError(f"the number of samples must be at least 1, got {n}.")
    rng = np.random.default_rng(seed)
    if method == "lhs":
        return qmc.LatinHypercube(d=d, seed=rng).random(n)
    if method == "sobol":
        # Sobol points are balanced only in powers of two; a different n
        # still works but scipy warns, and the warning is not news here.
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return qmc.Sobol(d=d, scramble=True, seed=rng).random(n)
    if method == "random":
        return rng.random((n, d))
    raise SdInputError(f"unknown sampling method {method!r}; expected one of "
                       f"{', '.join(METHODS)}." + suggest(method, METHODS))


def to_values(unit: np.ndarray, dists: list[Distribution]):
    """Map a unit design to a :class:`pandas.DataFrame` of parameter values.

    One column per distribution (its Vensim name), one row per run.
    """
    import pandas as pd

    unit = np.asarray(unit, dtype=float)
    return pd.DataFrame({d.name: d.ppf(unit[:, j]) for j, d in enumerate(dists)})
