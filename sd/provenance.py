"""What every output records so that it can be reproduced."""
from __future__ import annotations

import datetime as _dt
import functools
import platform
from importlib import metadata

#: Packages whose versions change results.
_PACKAGES = ("sd", "pysd", "numpy", "scipy", "pandas", "xarray", "numba", "SALib", "dask",
             "distributed", "netCDF4")


@functools.lru_cache(maxsize=1)
def _versions() -> tuple:
    out = [("python", platform.python_version())]
    for name in _PACKAGES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(out)


def versions() -> dict[str, str]:
    """Installed versions of the packages that shape results (read once per process)."""
    return dict(_versions())


def record(model=None, **extra) -> dict:
    """A provenance record: model file and hash, versions, time, plus ``extra``.

    ``extra`` carries what the caller knows (data hashes, parameter values,
    seeds, the engine); values must be JSON-serialisable.
    """
    rec = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
    }
    if model is not None:
        rec["model_file"] = str(model.path)
        rec["model_sha256"] = model.sha256
        externals = getattr(model, "externals", ())      # known without a parse
        if externals:
            rec["external_files"] = {str(e.path): e.sha256 for e in externals}
        if getattr(model, "data_files", ()):
            rec["data_files"] = {str(d.path): d.sha256 for d in model.data_files}
    rec.update(extra)
    return rec
