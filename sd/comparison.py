"""5c COMPARE: named scenarios of a model side by side.

:func:`compare` runs every scenario (names from the ``*scenarios*.toml``
beside the model, ``NAME@FILE.toml``, or ``.cin``/``.toml`` files) on one
engine and reduces each chosen variable to the same key metrics
(:mod:`sd.outcomes.metrics`): final value, peak, time of the peak, trough and
time-weighted mean. Each scenario is summarised over its own time span, so
scenarios that end at different times compare without gaps. The figure and
tables are written by :mod:`sd.report.comparison`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pandas as pd

from . import provenance
from .errors import SdInputError
from .outcomes.metrics import Metric, compute
from .scenarios import Scenario, resolve
from .simulation import prepare, run

#: Metric kinds in the comparison table, in column order.
KEY_METRICS = ("final", "max", "time_of_max", "min", "mean")


@dataclass(frozen=True)
class Comparison:
    """Runs and key metrics of several scenarios.

    Attributes
    ----------
    runs : dict
        Scenario name -> Dataset (dim ``time``).
    table : pandas.DataFrame
        One row per scenario; columns ``"<variable>: <metric>"``.
    variables : tuple of str
    scenarios : tuple of Scenario
    provenance : mapping
    """

    runs: dict
    table: pd.DataFrame
    variables: tuple[str, ...]
    scenarios: tuple[Scenario, ...] = ()
    provenance: Mapping = field(default_factory=dict)


def default_variables(model) -> list[str]:
    """Variables a modeler marked as outputs ("(output)" in the comment), else the stocks."""
    marked = [v.name for v in model.variables.values() if "(output)" in v.comment.lower()]
    return marked or model.names("stock")


def compare(model, scenarios: Sequence[str], *, variables=None,
            engine: str = "auto") -> Comparison:
    """Run ``scenarios`` of a model and tabulate their key metrics.

    Parameters
    ----------
    model : str, Path or Model
        The Vensim ``.mdl``.
    scenarios : sequence of str
        Scenario names (or ``NAME@FILE.toml``, ``.cin``/``.toml`` paths), as
        ``sd run --scenario``.
    variables : sequence of str, optional
        Vensim names to plot and tabulate (default :func:`default_variables`).
    engine : {"auto", "fast", "pysd"}

    Returns
    -------
    Comparison
    """
    sim = prepare(model, engine)
    if not scenarios:
        raise SdInputError("sd compare needs at least one scenario name.")
    names = [sim.model.variable(v, what="variable to compare").name
             for v in (variables or default_variables(sim.model))]
    resolved = [resolve(s, sim.model.path) for s in scenarios]
    labels = [s.name for s in resolved]
    if len(set(labels)) != len(labels):
        raise SdInputError(f"scenario names repeat: {', '.join(labels)}.")
    runs = {s.name: run(sim, s, variables=names) for s in resolved}
    record = provenance.record(sim.model, scenarios={s.name: s.source for s in resolved},
                               variables=names, **sim.provenance())
    return Comparison(runs=runs, table=metrics_table(runs, names), variables=tuple(names),
                      scenarios=tuple(resolved), provenance=record)


def metrics_table(runs: dict, variables: Sequence[str]) -> pd.DataFrame:
    """Key metrics (:data:`KEY_METRICS`) of every variable for every scenario,
    each scenario over its own saved times."""
    metrics = [Metric(name=f"{v}: {k.replace('_', ' ')}", variable=v, kind=k)
               for v in variables for k in KEY_METRICS]
    rows = [compute(ds, metrics).to_pandas() for ds in runs.values()]
    frame = pd.DataFrame(rows, index=pd.Index(list(runs), name="scenario"))
    return frame[[m.name for m in metrics]]


def is_time(column: str) -> bool:
    """Whether a table column holds a time (printed exactly, not rounded)."""
    return column.endswith(": time of max")
