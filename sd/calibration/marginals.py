"""What the set says about each input: accepted range, shrinkage, identification.

Per input, over the members of the behaviour-consistent set: the 90 %
interval and the full range of accepted values, the shrinkage from prior to
set (posterior standard deviation over prior standard deviation, 1 = the
outcomes say nothing about it), and whether the outcomes identify it. An
input is *identified* when its 90 % accepted interval spans at most
``identified_width`` of its prior range, measured on members from at least
:data:`MIN_GROUPS` independent chain starts; only then is a point value (the
median over the set) reported. Otherwise the report gives the accepted range
and no point value: the outcomes do not pick one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Marginal:
    """One input over the set (model units)."""

    name: str
    low: float
    high: float
    q05: float
    median: float
    q95: float
    min: float
    max: float
    sd_ratio: float          # sd over the set / sd of the uniform prior
    width: float             # (q95 - q05) / (high - low)
    identified: bool
    source: str = "mdl"

    @property
    def value(self) -> float | None:
        """The point value, only for an identified input."""
        return self.median if self.identified else None


#: Independent groups of members below which no input is called identified (a spread
#: measured on fewer says too little about the set's).
MIN_GROUPS = 20


def marginals(inputs, members: np.ndarray, identified_width: float,
              groups: int = MIN_GROUPS) -> list[Marginal]:
    """The :class:`Marginal` of every input from the unit-cube members (from
    ``groups`` independent chain starts)."""
    X = inputs.to_values(members)
    out = []
    for i, inp in enumerate(inputs.inputs):
        x = X[:, i]
        span = inp.high - inp.low
        q05, q50, q95 = np.quantile(x, [0.05, 0.5, 0.95])
        width = (q95 - q05) / span
        out.append(Marginal(inp.name, inp.low, inp.high, float(q05), float(q50), float(q95),
                            float(x.min()), float(x.max()),
                            float(x.std() / (span / np.sqrt(12.0))), float(width),
                            bool(width <= identified_width and groups >= MIN_GROUPS),
                            inp.source))
    return out


def representative(members: np.ndarray) -> int:
    """Index of the member nearest (unit coordinates) to the per-input medians."""
    centre = np.median(members, axis=0)
    return int(np.argmin(((members - centre) ** 2).sum(axis=1)))
