"""Files of a sensitivity analysis: plots, tables, ``report.md``, provenance.

Reporting is a free function of :class:`sd.sensitivity_analysis.analysis.SensitivityResult`,
kept apart from the runs (as lmfit keeps ``fit_report`` apart from fitting).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .. import provenance


def write_outputs(result, model, base, folder: Path, *, dask: str | None = None) -> list[str]:
    """Write every output of ``result`` into ``folder``; return the file names.

    ``ensemble.nc`` is already there (written chunk by chunk); the rest is
    derived from it and from the metric tables.
    """
    from ..simulation.chunks import open_ensemble
    from ..plots import save_figure
    from ..plots import plot_bands, plot_histogram

    spec = result.spec
    names = ["ensemble.nc"]
    table = result.samples.join(result.metrics)
    table.index.name = "run"
    table.to_csv(folder / "metrics.csv")
    names.append("metrics.csv")
    with open_ensemble(folder / "ensemble.nc") as ds:
        for var in spec.bands:
            if var in ds:
                names.append(f"bands_{_stem(var)}.png")
                save_figure(plot_bands(ds[var]), folder / names[-1])
    for m in spec.metrics:
        names.append(f"hist_{_stem(m.name)}.png")
        save_figure(plot_histogram(result.metrics[m.name], m.name, units=_units(model, m)),
                    folder / names[-1])
    names += _indices(result.sobol, "sobol", folder, spec)
    names += _indices(result.morris, "morris", folder, spec)
    record = provenance.record(model, spec=str(spec.path), spec_sha256=spec.sha256,
                               seed=spec.seed, method=spec.method, n=spec.n,
                               scenario=base.name, chunk_size=spec.chunk_size,
                               dask=dask, seconds=round(result.seconds, 2),
                               versions_extra=_extra_versions())
    (folder / "provenance.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    names.append("provenance.json")
    names.append("report.md")
    (folder / "report.md").write_text(report_markdown(result, base, record, names),
                                      encoding="utf-8")
    return names


def _indices(frame, kind: str, folder: Path, spec) -> list[str]:
    if frame is None:
        return []
    from ..plots import _pyplot
    from ..plots import plot_morris, plot_sobol

    frame.to_csv(folder / f"{kind}.csv")
    plt = _pyplot()
    n = len(spec.metrics)
    cols = min(2, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 4.2 * rows), layout="constrained",
                             squeeze=False)
    draw = plot_sobol if kind == "sobol" else plot_morris
    for ax, m in zip(axes.flat, spec.metrics):
        draw(frame, m.name, ax=ax)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle("Sobol indices (95 % bootstrap intervals)" if kind == "sobol"
                 else "Morris screening (mu* with 95 % bootstrap interval)")
    from ..plots import save_figure

    save_figure(axes.flat[0], folder / f"{kind}.png")
    return [f"{kind}.csv", f"{kind}.png"]


def _units(model, metric) -> str:
    if metric.kind.startswith("time_of"):
        return model.variables["INITIAL TIME"].units if "INITIAL TIME" in model.variables else ""
    var = model.variables.get(metric.variable)
    return var.units if var else ""


def _extra_versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("SALib", "dask", "distributed", "netCDF4"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _stem(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def report_markdown(result, base, record: dict, files: list[str]) -> str:
    """The Markdown report of a sensitivity analysis."""
    spec = result.spec
    lines = [f"# Sensitivity analysis: {spec.path.name}", "",
             f"Model `{spec.model_path.name}` (sha256 `{record.get('model_sha256', '')[:16]}…`), "
             f"base scenario **{base.name}**. Spec sha256 `{spec.sha256[:16]}…`, seed {spec.seed}.",
             "", "## Parameters", "", "| parameter | distribution |", "|---|---|"]
    lines += [f"| {d.name} | {d.describe()} |" for d in spec.parameters]
    lines += ["", "## Monte Carlo ensemble", "",
              f"{spec.n} runs, {spec.method} design, chunks of {spec.chunk_size}; "
              f"stored in `ensemble.nc` (variables: {', '.join(spec.variables)}). "
              "Bands show the 50/75/95/100 % of runs around the median.", "",
              "| metric | meaning | mean | sd | 5 % | median | 95 % |", "|---|---|---|---|---|---|---|"]
    for m in spec.metrics:
        s = result.metrics[m.name]
        q = s.quantile([0.05, 0.5, 0.95])
        lines.append(f"| {m.name} | {m.describe()} | {s.mean():.4g} | {s.std():.4g} | "
                     f"{q[0.05]:.4g} | {q[0.5]:.4g} | {q[0.95]:.4g} |")
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
    lines += ["", "## Files", ""] + [f"- `{f}`" for f in files]
    versions = {**record.get("versions", {}), **record.get("versions_extra", {})}
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
