"""Files of one run (``sd run``): ``results.csv``, ``results.nc``, ``run.json``, plots."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .._common import distinct_names, netcdf_safe, vensim_names
from ..plots import figure, plot_variable, save_figure
from ..simulation.simulate import UNDEFINED_ATTR
from .folder import write_json

#: Rows of results.csv formatted at a time: memory stays at one block of rows,
#: whatever the length of the run.
BLOCK_ROWS = 2048


def write_run(ds: xr.Dataset, folder: str | Path, plots=()) -> list[str]:
    """Write the run ``ds`` (from :func:`sd.run`) into ``folder``; return the names.

    ``results.csv`` has ``time`` first, then one column per variable under its
    Vensim name, ``name[a,b]`` per element of a subscripted one (as Vensim and
    PySD flatten them; the elements a variable does not define have none);
    ``results.nc`` is ``ds`` with units and comments as attributes, under
    NetCDF-safe names that :func:`sd.read_results` turns back into the Vensim
    names; ``run.json`` is its provenance record plus the list of files; one
    PNG per variable in ``plots`` (Vensim names; :func:`sd._common.safe_name`).
    """
    folder = Path(folder)
    pngs = distinct_names(dict.fromkeys(plots), "{}.png", "--plot")
    names = ["results.csv", "results.nc", *pngs.values(), "run.json"]
    write_csv(ds, folder / "results.csv")
    netcdf_safe(ds).to_netcdf(folder / "results.nc")
    for var, png in pngs.items():
        fig, axes = figure()
        plot_variable(ds, var, ax=axes[0, 0])
        save_figure(fig, folder / png)
    record = json.loads(ds.attrs.get("provenance", "{}"))
    write_json(folder / "run.json", {**record, "files": names})
    return names


def columns(ds: xr.Dataset) -> list[tuple[str, str, dict]]:
    """``(label, variable, {dim: element})`` of every column of the flat table,
    in dataset order: one per variable and element it defines."""
    out = []
    for name, da in ds.data_vars.items():
        extra = [d for d in da.dims if d != "time"]
        if not extra:
            out.append((str(name), name, {}))
            continue
        skip = {tuple(c) for c in json.loads(da.attrs.get(UNDEFINED_ATTR, "[]"))}
        coords = [[str(e) for e in da[d].values] for d in extra]
        for cell in itertools.product(*coords):
            if cell not in skip:
                out.append((f"{name}[{','.join(cell)}]", name, dict(zip(extra, cell))))
    return out


def write_csv(ds: xr.Dataset, path: str | Path, block: int = BLOCK_ROWS) -> None:
    """The flat table (:func:`columns`, index ``time``) written a block of rows
    at a time."""
    cols = columns(ds)
    labels = [c[0] for c in cols]
    times = ds["time"].values
    by_var: dict = {}
    for k, (_, name, _cell) in enumerate(cols):
        by_var.setdefault(name, []).append(k)
    with open(path, "w", encoding="utf-8", newline="") as f:
        for start in range(0, max(len(times), 1), block):
            part = ds.isel(time=slice(start, start + block))
            rows = np.empty((part.sizes["time"], len(cols)))
            for name, ks in by_var.items():
                da = part[name]
                extra = [d for d in da.dims if d != "time"]
                if not extra:
                    rows[:, ks[0]] = da.values
                    continue
                flat = da.transpose("time", *extra).values.reshape(part.sizes["time"], -1)
                index = _cell_index(da, extra, [cols[k][2] for k in ks])
                rows[:, ks] = flat[:, index]
            frame = pd.DataFrame(rows, columns=labels,
                                 index=pd.Index(part["time"].values, name="time"))
            frame.to_csv(f, header=start == 0)


def _cell_index(da: xr.DataArray, extra: list, cells: list[dict]) -> np.ndarray:
    """Row-major positions of ``cells`` in ``da``'s flattened element dims."""
    position = [{str(e): i for i, e in enumerate(da[d].values)} for d in extra]
    shape = [da.sizes[d] for d in extra]
    idx = [[position[j][cell[d]] for j, d in enumerate(extra)] for cell in cells]
    return np.ravel_multi_index(np.array(idx).T, shape) if idx else np.array([], int)


def read_results(path):
    """Open a results file written by ``sd`` (``results.nc`` of ``sd run``,
    ``ensemble.nc`` of ``sd sensitivity``) under its Vensim names.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    xarray.Dataset
        Loaded into memory (the file is closed); every variable under the
        Vensim name it has in the model (NetCDF-safe names turned back,
        :func:`sd._common.netcdf_safe`).
    """
    with xr.open_dataset(Path(path)) as ds:
        return vensim_names(ds.load())
