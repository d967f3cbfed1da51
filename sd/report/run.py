"""Files of one run (``sd run``): ``results.csv``, ``results.nc``, ``run.json``, plots."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import xarray as xr

from .._common import distinct_names, netcdf_safe
from ..plots import figure, plot_variable, save_figure
from .folder import write_json


def write_run(ds: xr.Dataset, folder: str | Path, plots=()) -> list[str]:
    """Write the run ``ds`` (from :func:`sd.run`) into ``folder``; return the names.

    ``results.csv`` has ``time`` first, then one column per variable under its
    Vensim name (``name[element]`` per element of a subscripted one);
    ``results.nc`` is ``ds`` itself, with units and comments as attributes;
    ``run.json`` is its provenance record plus the list of files; one PNG per
    variable in ``plots`` (Vensim names; :func:`sd._common.safe_name`).
    """
    folder = Path(folder)
    pngs = distinct_names(dict.fromkeys(plots), "{}.png", "--plot")
    names = ["results.csv", "results.nc", *pngs.values(), "run.json"]
    flat_frame(ds).to_csv(folder / "results.csv")
    netcdf_safe(ds).to_netcdf(folder / "results.nc")
    for var, png in pngs.items():
        fig, axes = figure()
        plot_variable(ds, var, ax=axes[0, 0])
        save_figure(fig, folder / png)
    record = json.loads(ds.attrs.get("provenance", "{}"))
    write_json(folder / "run.json", {**record, "files": names})
    return names


def flat_frame(ds: xr.Dataset) -> pd.DataFrame:
    """One column per variable (per element for a subscripted one), index ``time``."""
    columns = {}
    for name, da in ds.data_vars.items():
        extra = [d for d in da.dims if d != "time"]
        if not extra:
            columns[name] = da.values
            continue
        stacked = da.stack(_cell=extra).transpose("time", "_cell")
        for k, cell in enumerate(stacked["_cell"].values):
            label = ",".join(map(str, cell if isinstance(cell, tuple) else (cell,)))
            columns[f"{name}[{label}]"] = stacked.values[:, k]
    return pd.DataFrame(columns, index=pd.Index(ds["time"].values, name="time"))
