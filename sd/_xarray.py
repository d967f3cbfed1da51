"""xarray without importing dask until something uses dask.

xarray asks "is this a dask array?" of every array it wraps
(``array_type("dask")``, ``is_dask_collection``) and "which dask scheduler
is active?" before writing a NetCDF file (``get_dask_scheduler``), and
answers by importing dask, and with it distributed and scipy: ~1 s, the
largest single cost of a plain ``sd run``. Until dask has been imported no
object can be a dask array or collection and no dask scheduler can be
active, so until then these questions are answered "no" / "none" without
the import; from the moment dask is in ``sys.modules`` (``sd sensitivity
--dask``, a user's own code) xarray's own answers are used again. If xarray
changes these internals, nothing is changed and xarray imports dask as before.
"""
from __future__ import annotations

import sys


class _DaskTypes:
    """Stands in for xarray's cached ``DuckArrayModule("dask")``."""

    def __init__(self, pycompat):
        self._pycompat = pycompat
        self._real = None

    def _module(self):
        if self._real is None:
            self._real = self._pycompat.DuckArrayModule("dask")
        return self._real

    @property
    def type(self):
        return self._module().type if "dask" in sys.modules else ()

    def __getattr__(self, name):            # module, version, available
        return getattr(self._module(), name)


def install() -> None:
    if "dask" in sys.modules:
        return
    try:
        from xarray.namedarray import pycompat, utils
        original = utils.is_dask_collection
        cached = pycompat._cached_duck_array_modules
    except (ImportError, AttributeError):
        return
    if getattr(original, "_sd_lazy", False):
        return

    def is_dask_collection(x) -> bool:
        return "dask" in sys.modules and original(x)

    is_dask_collection._sd_lazy = True
    utils.is_dask_collection = is_dask_collection
    cached.setdefault("dask", _DaskTypes(pycompat))
    try:
        from xarray.backends import locks, writers
    except ImportError:
        return
    for module in (locks, writers):
        scheduler = getattr(module, "get_dask_scheduler", None)
        if scheduler is not None:
            module.get_dask_scheduler = _no_scheduler_without_dask(scheduler)


def _no_scheduler_without_dask(original):
    def get_dask_scheduler(get=None, collection=None):
        return original(get, collection) if "dask" in sys.modules else None

    return get_dask_scheduler


install()
