"""sd: system-dynamics models of small-workshop clusters, Vensim files first.

The public API, imported lazily so that ``import sd`` (and the ``sd``
command's start-up) does not pay for PySD, numba or scipy until used:

- :func:`load` -- translate a ``.mdl`` once, describe its variables -> :class:`Model`
- :class:`Scenario` -- overrides of constants, lookups and time settings
- :func:`run` -- one run -> ``xarray.Dataset`` (dim ``time``) with units and provenance
- :func:`run_many` -- many runs -> ``Dataset(run, time)``
- :func:`calibrate` -- what documented outcomes decide: the behaviour-consistent set and
  conclusions as probabilities over it -> :class:`SetResult` (or a point fit -> :class:`FitResult`)
- :func:`accepted_set`, :func:`run_over_set` -- a calibration's set; a scenario run over it
- :func:`sensitivity` -- Monte Carlo, Sobol and Morris of a spec -> :class:`SensitivityResult`
- :func:`compare` -- scenarios side by side -> :class:`Comparison`
- :func:`read_results` -- a ``results.nc`` (or ``ensemble.nc``) back under its Vensim names
- :func:`experiment` -- policies over each case's behaviour-consistent set, statements
  answered as shares of it -> :class:`ExperimentResult` (``sd experiment SPEC``)
- :class:`SdInputError` (bad input), :class:`SdRuntimeError` (a run that failed)

Reports of the results are written by :mod:`sd.report`.
"""
__version__ = "0.1.0"

_LAZY = {
    "load": "sd.model",
    "Model": "sd.model",
    "Scenario": "sd.scenarios",
    "run": "sd.simulation",
    "run_many": "sd.simulation",
    "calibrate": "sd.calibration",
    "FitResult": "sd.calibration",
    "SetResult": "sd.calibration",
    "accepted_set": "sd.calibration",
    "run_over_set": "sd.calibration",
    "sensitivity": "sd.sensitivity_analysis",
    "SensitivityResult": "sd.sensitivity_analysis",
    "compare": "sd.comparison",
    "Comparison": "sd.comparison",
    "read_results": "sd.report.run",
    "experiment": "sd.experiments",
    "ExperimentResult": "sd.experiments",
    "SdInputError": "sd.errors",
    "SdRuntimeError": "sd.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sd' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
