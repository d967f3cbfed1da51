"""sd: system-dynamics models of small-workshop clusters, Vensim files first.

The public entry points are imported lazily, so ``import sd`` (and the
``sd`` command's start-up) does not pay for PySD, numba or scipy until used:

- :func:`sd.load` -- translate a ``.mdl`` once, describe its variables
- :func:`sd.run` -- one isolated PySD run of a scenario -> ``xarray.Dataset``
- :func:`sd.run_many` -- many runs at once on the fast engine -> ``Dataset(run, time)``
- :func:`sd.calibrate` -- fit a calibration spec to documented outcomes
"""
__version__ = "0.1.0"

_LAZY = {
    "load": ("sd.model", "load"),
    "run": ("sd.simulation.pysd_backend", "run"),
    "run_many": ("sd.simulation.ensemble", "run_many"),
    "calibrate": ("sd.calibration.calibrate", "calibrate"),
    "Scenario": ("sd.scenarios", "Scenario"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'sd' has no attribute {name!r}")
