"""Every figure of sd: runs, scenario comparisons, ensemble bands, histograms,
sensitivity indices. Imported lazily; ``ax=None`` in, Axes out."""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display is assumed
    import matplotlib.pyplot as plt

    return plt


def plot_variable(ds: xr.Dataset, name: str, ax=None, label: str | None = None):
    """Plot one variable of a run over time; return the Axes."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    da = ds[name]
    ax.plot(ds["time"].values, da.values, label=label or ds.attrs.get("scenario", name))
    units = da.attrs.get("units", "")
    ax.set_title(name)
    ax.set_xlabel("Time")
    ax.set_ylabel(f"{name} ({units})" if units else name)
    ax.grid(alpha=0.3)
    return ax


def save_figure(ax, path) -> None:
    """Save the figure holding ``ax`` to ``path`` atomically and close it."""
    from ._common import atomic_path

    plt = _pyplot()
    fig = ax.figure
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


#: Vensim's sensitivity-graph bands (percent of runs inside) and colours.
BANDS = (50, 75, 95, 100)
_COLOURS = {50: "#f2d100", 75: "#4caf50", 95: "#2f7fd1", 100: "#9e9e9e"}

#: Saved times read at once when computing bands: bounds memory for 10^6 runs.
_TIME_BLOCK = 8


def band_quantiles(da: xr.DataArray, levels=BANDS) -> pd.DataFrame:
    """Lower/upper percentiles of each band and the median over ``run``, per time.

    ``da`` (dims ``run``, ``time``) may be lazy (from
    :func:`sd.simulation.chunks.open_ensemble`); it is read a few times at a
    time so that a million runs never sit in memory at once.

    Returns
    -------
    pandas.DataFrame
        Index time; columns ``median`` and ``lo<L>``/``hi<L>`` per level.
    """
    qs = sorted({50.0} | {50 - L / 2 for L in levels} | {50 + L / 2 for L in levels})
    times = da["time"].values
    out = np.empty((len(times), len(qs)))
    for t0 in range(0, len(times), _TIME_BLOCK):
        block = np.asarray(da.isel(time=slice(t0, t0 + _TIME_BLOCK)).transpose("run", "time").values,
                           dtype=float)
        out[t0:t0 + block.shape[1]] = np.nanpercentile(block, qs, axis=0).T
    frame = pd.DataFrame(out, index=pd.Index(times, name="time"), columns=qs)
    cols = {"median": frame[50.0]}
    for L in levels:
        cols[f"lo{L}"], cols[f"hi{L}"] = frame[50 - L / 2], frame[50 + L / 2]
    return pd.DataFrame(cols)


def plot_bands(da: xr.DataArray, ax=None, levels=BANDS, title: str | None = None):
    """Nested shaded confidence bands of one variable over time (Vensim style).

    The widest band is drawn first so each narrower one sits on top of it.
    """
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    q = band_quantiles(da, levels)
    for L in sorted(levels, reverse=True):
        ax.fill_between(q.index, q[f"lo{L}"], q[f"hi{L}"], color=_COLOURS.get(L, "#cccccc"),
                        alpha=0.85, linewidth=0, label=f"{L}%")
    ax.plot(q.index, q["median"], color="black", linewidth=1, label="median")
    units = da.attrs.get("units", "")
    name = title or str(da.name)
    ax.set_title(f"{name} ({da.sizes['run']} runs)")
    ax.set_xlabel("Time")
    ax.set_ylabel(f"{name} ({units})" if units else name)
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_histogram(values, name: str, ax=None, bins: int | str = "auto", units: str = ""):
    """Histogram of one metric over the runs."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0 or np.ptp(values) == 0:
        bins = 1  # a metric that never varies: one bar, not a numpy error
    ax.hist(values, bins=bins, color="#2f7fd1", edgecolor="white")
    ax.set_title(name)
    ax.set_xlabel(f"{name} ({units})" if units else name)
    ax.set_ylabel("runs")
    ax.grid(alpha=0.3)
    return ax


def plot_sobol(table: pd.DataFrame, metric: str, ax=None):
    """First-order and total Sobol indices of one metric, 95 % intervals as error bars.

    ``table`` is :func:`sd.sensitivity_analysis.analysis.sobol_indices`'s result.
    """
    return _bars(table.loc[metric], [("S1", "S1_conf", "first order"),
                                     ("ST", "ST_conf", "total")], metric, "Sobol index", ax)


def plot_morris(table: pd.DataFrame, metric: str, ax=None):
    """Morris mu* (95 % interval) and sigma of one metric."""
    return _bars(table.loc[metric], [("mu_star", "mu_star_conf", "mu*"), ("sigma", None, "sigma")],
                 metric, "elementary effect (per quantile range)", ax)


def _bars(rows: pd.DataFrame, series, metric: str, ylabel: str, ax):
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    x = np.arange(len(rows))
    width = 0.8 / len(series)
    for k, (col, conf, label) in enumerate(series):
        err = rows[conf].to_numpy() if conf else None
        ax.bar(x + (k - (len(series) - 1) / 2) * width, rows[col].to_numpy(), width,
               yerr=err, capsize=3, label=label)
    ax.set_xticks(x, [_wrap(p) for p in rows.index], rotation=30, ha="right", fontsize="small")
    ax.set_title(metric)
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    return ax


def _wrap(name: str, width: int = 18) -> str:
    words, lines, line = name.split(), [], ""
    for w in words:
        if line and len(line) + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join(lines + [line])


def plot_scenarios(datasets: dict, variable: str, ax=None):
    """One variable of several scenario runs (name -> Dataset) on one Axes."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for name, ds in datasets.items():
        ax.plot(ds["time"].values, ds[variable].values, label=name)
    units = next(iter(datasets.values()))[variable].attrs.get("units", "")
    ax.set_title(variable)
    ax.set_xlabel("Time")
    ax.set_ylabel(f"{variable} ({units})" if units else variable)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax
