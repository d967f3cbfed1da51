"""Matplotlib views of results. Imported lazily; ``ax=None`` in, Axes out."""
from __future__ import annotations

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
    from .io import atomic_path

    plt = _pyplot()
    fig = ax.figure
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
