"""Files of a sensitivity analysis: ensemble, plots, tables, ``report.md``, provenance.

Reporting is a free function of :class:`sd.sensitivity_analysis.SensitivityResult`,
kept apart from the runs (as lmfit keeps ``fit_report`` apart from fitting).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import xarray as xr

from .._common import netcdf_safe, number_text, safe_name
from ..plots import figure, plot_bands, plot_histogram, plot_morris, plot_sobol, save_figure
from ..simulation.chunks import open_ensemble
from .folder import write_json


def write_sensitivity(result, folder: str | Path) -> list[str]:
    """Write every output of ``result`` into ``folder``; return the file names.

    ``ensemble.nc`` is the streamed file when it is already there, else it is
    copied or written from memory; the rest is derived from it and from the
    metric tables.
    """
    folder = Path(folder)
    names = ["ensemble.nc", "metrics.csv"]
    _ensemble(result.ensemble, folder / "ensemble.nc")
    table = result.samples.join(result.metrics)
    table.index.name = "run"
    table.to_csv(folder / "metrics.csv")
    names += _bands(result, folder)
    for m in result.spec.metrics:
        names.append(hist_name(m.name))
        fig, axes = figure(size=(6, 4))
        plot_histogram(result.metrics[m.name], m.name, ax=axes[0, 0],
                       units=result.units.get(m.name, ""))
        save_figure(fig, folder / names[-1])
    names += _indices(result.sobol, "sobol", folder, result.spec)
    names += _indices(result.morris, "morris", folder, result.spec)
    names += ["provenance.json", "report.md"]
    record = {**result.provenance, "files": names}
    write_json(folder / "provenance.json", record)
    (folder / "report.md").write_text(report_markdown(result, record, names), encoding="utf-8")
    return names


def hist_name(metric: str) -> str:
    """File of a metric's histogram (the spec refuses two metrics with one file)."""
    return f"hist_{safe_name(metric, lower=True)}.png"


def bands_name(variable: str) -> str:
    """File of a variable's confidence bands."""
    return f"bands_{safe_name(variable, lower=True)}.png"


def _ensemble(ensemble, target: Path) -> None:
    if isinstance(ensemble, xr.Dataset):
        # As the streamed file stores them: parameters as variables listed in the
        # sd_parameters attribute (NetCDF coordinates cannot hold Vensim names).
        netcdf_safe(ensemble.reset_coords()).to_netcdf(target)
    elif Path(ensemble).resolve() != target.resolve():
        shutil.copyfile(ensemble, target)


def _bands(result, folder: Path) -> list[str]:
    names = []
    with open_ensemble(folder / "ensemble.nc") as ds:
        for var in result.spec.bands:
            if var in ds:
                names.append(bands_name(var))
                fig, axes = figure()
                plot_bands(ds[var], ax=axes[0, 0],
                           title=f"{var} ({ds.sizes['run']} runs, scenario {result.scenario.name})")
                save_figure(fig, folder / names[-1])
    return names


def _indices(frame, kind: str, folder: Path, spec) -> list[str]:
    if frame is None:
        return []
    frame.to_csv(folder / f"{kind}.csv")
    n = len(spec.metrics)
    cols = min(2, n)
    fig, axes = figure((n + cols - 1) // cols, cols, size=(7, 4.2))
    draw = plot_sobol if kind == "sobol" else plot_morris
    for ax, m in zip(axes.flat, spec.metrics):
        draw(frame, m.name, ax=ax)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle("Sobol indices (95 % bootstrap intervals)" if kind == "sobol"
                 else "Morris screening (mu* with 95 % bootstrap interval)")
    save_figure(fig, folder / f"{kind}.png")
    return [f"{kind}.csv", f"{kind}.png"]


def report_markdown(result, record: dict, files: list[str]) -> str:
    """The Markdown report of a sensitivity analysis."""
    spec, base = result.spec, result.scenario
    lines = [f"# Sensitivity analysis: {spec.path.name}", "",
             f"Model `{spec.model_path.name}` (sha256 `{record.get('model_sha256', '')[:16]}…`), "
             f"base scenario **{base.name}**. Spec sha256 `{spec.sha256[:16]}…`, seed {spec.seed}; "
             f"engine {record.get('engine', '?')}.",
             "", "## Parameters", "", "| parameter | distribution |", "|---|---|"]
    lines += [f"| {d.name} | {d.describe()} |" for d in spec.parameters]
    lines += ["", "## Monte Carlo ensemble", "",
              f"{spec.n} runs, {spec.method} design, chunks of {spec.chunk_size}; "
              f"stored in `ensemble.nc` (variables: {', '.join(spec.variables)}); "
              f"{len(result.failures.get('monte carlo', {}))} failed runs, excluded. "
              "Bands show the 50/75/95/100 % of runs around the median.", "",
              "| metric | meaning | mean | sd | 5 % | median | 95 % |", "|---|---|---|---|---|---|---|"]
    for m in spec.metrics:
        s = result.metrics[m.name]
        q = s.quantile([0.05, 0.5, 0.95])
        lines.append(f"| {m.name} | {m.describe()} | " + " | ".join(
            number_text(v) for v in (s.mean(), s.std(), q[0.05], q[0.5], q[0.95])) + " |")
    if result.sobol is not None:
        lines += ["", "## Sobol indices", "",
                  f"SALib Sobol design, base N = {spec.sobol_n}, {spec.sobol_runs()} runs "
                  f"({'with' if spec.sobol_second_order else 'without'} second order). "
                  "S1: share of the metric's variance due to the parameter alone; ST: including "
                  "its interactions. *_conf: half-width of the 95 % bootstrap interval; with small N the "
                  "intervals are wide and small negative values are noise.", "",
                  _table(result.sobol, ["S1", "S1_conf", "ST", "ST_conf"])]
    if result.morris is not None:
        lines += ["", "## Morris screening", "",
                  f"{spec.morris_trajectories} trajectories, {spec.morris_levels} levels, "
                  f"{spec.morris_runs()} runs. mu*: mean absolute elementary effect per "
                  "quantile range of the parameter (its importance); sigma: spread of the "
                  "effects (non-linearity or interactions).", "",
                  _table(result.morris, ["mu", "mu_star", "mu_star_conf", "sigma"])]
    if result.notes:
        lines += ["", "## Warnings", ""] + [f"- {n}" for n in result.notes]
    lines += ["", "## Files", ""] + [f"- `{f}`" for f in files]
    versions = record.get("versions", {})
    lines += ["", "## Provenance", "",
              f"Created {record['created']}; {result.seconds:.1f} s"
              + (f" on Dask ({record['dask']})" if record.get("dask") else " in one process")
              + ". Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".", ""]
    return "\n".join(lines)


def _table(frame: pd.DataFrame, cols: list[str]) -> str:
    head = "| metric | parameter | " + " | ".join(cols) + " |"
    rows = [head, "|" + "---|" * (len(cols) + 2)]
    for (metric, param), row in frame.iterrows():
        rows.append(f"| {metric} | {param} | " + " | ".join(f"{row[c]:.3g}" for c in cols) + " |")
    return "\n".join(rows)
