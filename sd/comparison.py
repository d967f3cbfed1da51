"""Named scenarios side by side: one figure and one table of key metrics.

:func:`compare` runs every scenario of a model (names from the
``*scenarios*.toml`` beside it, or ``.cin``/``.toml`` files) and reduces each
chosen variable to the same key metrics (:mod:`sd.outcomes.metrics`): final value,
peak, year of the peak, trough and time-weighted mean.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
import xarray as xr

from .errors import SdInputError
from .outcomes.metrics import Metric, compute

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
    files : tuple of Path
    """

    runs: dict
    table: pd.DataFrame
    variables: tuple[str, ...]
    files: tuple = ()


def default_variables(model) -> list[str]:
    """Variables a modeler marked as outputs ("(output)" in the comment), else the stocks."""
    marked = [v.name for v in model.variables.values() if "(output)" in v.comment.lower()]
    return marked or model.names("stock")


def compare(model_path: str | Path, scenarios: Sequence[str], *, variables=None,
            out: str | Path | None = None, engine: str = "auto") -> Comparison:
    """Run ``scenarios`` of a model and write the figure and tables to ``out``.

    Parameters
    ----------
    model_path : str or Path
        Vensim ``.mdl``.
    scenarios : sequence of str
        Scenario names (or ``.cin``/``.toml`` paths), as ``sd run --scenario``.
    variables : sequence of str, optional
        Vensim names to plot and tabulate (default :func:`default_variables`).
    out : str or Path, optional
        Output folder (default ``results/compare-<model stem>``); files are
        written to a scratch folder and moved in only when all succeeded.
    engine : str
        ``auto``, ``fast`` or ``pysd``.

    Returns
    -------
    Comparison
    """
    from .model import model as model_mod
    from . import scenarios as sc_mod
    from .simulation.simulate import simulate

    model = model_mod.load(model_path)
    if not scenarios:
        raise SdInputError("sd compare needs at least one scenario name.")
    names = [model.variable(v, what="variable to compare").name
             for v in (variables or default_variables(model))]
    resolved = [sc_mod.resolve(s, model.path) for s in scenarios]
    labels = [s.name for s in resolved]
    if len(set(labels)) != len(labels):
        raise SdInputError(f"scenario names repeat: {', '.join(labels)}.")
    runs = {s.name: simulate(model, s, engine=engine, variables=names)[0] for s in resolved}
    table = metrics_table(runs, names)
    result = Comparison(runs=runs, table=table, variables=tuple(names))
    out = Path(out) if out else Path("results") / f"compare-{model.path.stem}"
    files = _write(result, model, resolved, out)
    return Comparison(runs=runs, table=table, variables=tuple(names), files=tuple(files))


def metrics_table(runs: dict, variables: Sequence[str]) -> pd.DataFrame:
    """Key metrics (:data:`KEY_METRICS`) of every variable for every scenario."""
    metrics = [Metric(name=f"{v}: {k.replace('_', ' ')}", variable=v, kind=k)
               for v in variables for k in KEY_METRICS]
    ds = xr.concat([r[list(variables)] for r in runs.values()], dim="run", join="outer")
    frame = compute(ds, metrics).to_dataframe()
    frame.index = pd.Index(list(runs), name="scenario")
    return frame[[m.name for m in metrics]]


def markdown(table: pd.DataFrame, descriptions: dict[str, str]) -> str:
    """The table as Markdown, one block per variable, with scenario descriptions."""
    lines = ["# Scenario comparison", ""]
    for name, text in descriptions.items():
        lines.append(f"- **{name}**: {text or '(no description)'}")
    variables = list(dict.fromkeys(c.split(": ", 1)[0] for c in table.columns))
    for var in variables:
        cols = [c for c in table.columns if c.startswith(f"{var}: ")]
        lines += ["", f"## {var}", "", "| scenario | " + " | ".join(c.split(': ', 1)[1] for c in cols)
                  + " |", "|---|" + "---|" * len(cols)]
        for scen, row in table[cols].iterrows():
            lines.append(f"| {scen} | " + " | ".join(f"{row[c]:.4g}" for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _write(result: Comparison, model, resolved, out: Path) -> list[Path]:
    from . import provenance
    from .plots import _pyplot, save_figure
    from .plots import plot_scenarios

    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".sd-compare-", dir=out))
    try:
        result.table.to_csv(scratch / "comparison.csv")
        (scratch / "comparison.md").write_text(
            markdown(result.table, {s.name: s.description for s in resolved}), encoding="utf-8")
        plt = _pyplot()
        n = len(result.variables)
        fig, axes = plt.subplots(n, 1, figsize=(8, 3.2 * n), layout="constrained", squeeze=False)
        for ax, var in zip(axes.flat, result.variables):
            plot_scenarios(result.runs, var, ax=ax)
        save_figure(axes.flat[0], scratch / "comparison.png")
        record = provenance.record(model, scenarios={s.name: s.source for s in resolved},
                                   variables=list(result.variables))
        (scratch / "provenance.json").write_text(json.dumps(record, indent=2) + "\n",
                                                 encoding="utf-8")
        names = ["comparison.csv", "comparison.md", "comparison.png", "provenance.json"]
        for name in names:
            (scratch / name).replace(out / name)
        return [out / n for n in names]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
